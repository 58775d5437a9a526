//! cumemlab: what GPU memory really costs. The library behind the `cumemlab` command; see the
//! README for the commands and DESIGN.md for the layers.
//!
//! `unsafe` lives only in [`driver`]: every other module forbids it here, so a new `unsafe` block
//! elsewhere does not compile (and `scripts/check-unsafe.sh` checks the source as well).
// No `#![forbid(unsafe_code)]` at the crate root: it would forbid the driver layer too.
#[forbid(unsafe_code)]
pub mod cli;
// Every `unsafe` block and impl there carries its `// SAFETY:` reasoning; clippy checks it.
#[deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
pub mod driver;
#[forbid(unsafe_code)]
pub mod env;
#[forbid(unsafe_code)]
pub mod error;
#[forbid(unsafe_code)]
pub mod experiments;
#[forbid(unsafe_code)]
pub mod host;
#[forbid(unsafe_code)]
pub mod memory;
#[forbid(unsafe_code)]
pub mod plan;
#[forbid(unsafe_code)]
pub mod report;
#[forbid(unsafe_code)]
pub mod stats;
#[forbid(unsafe_code)]
pub mod units;

/// Test support shared by the unit tests of several modules.
#[cfg(test)]
#[forbid(unsafe_code)]
pub(crate) mod test_support {
    /// The path of a file under `tests/fixtures`. The repository root comes from
    /// `CARGO_MANIFEST_DIR` at run time (cargo sets it; the GPU bundle's runner sets it too), else
    /// from the build.
    pub fn fixture(rel: &str) -> std::path::PathBuf {
        let root = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        std::path::Path::new(&root).join("tests/fixtures").join(rel)
    }

    /// A parsed meminfo fixture.
    pub fn meminfo(name: &str) -> crate::host::MemInfo {
        let text = std::fs::read_to_string(fixture(&format!("meminfo/{name}"))).unwrap();
        crate::host::MemInfo::parse(&text).unwrap()
    }
}
