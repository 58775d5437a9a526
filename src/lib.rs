//! cumemlab: what GPU memory really costs. The library behind the `cumemlab` command; see the
//! README for the commands and DESIGN.md for the layers.
pub mod cli;
pub mod driver;
pub mod env;
pub mod error;
pub mod experiments;
pub mod host;
pub mod memory;
pub mod plan;
pub mod report;
pub mod stats;
pub mod units;

/// Test support shared by the unit tests of several modules.
#[cfg(test)]
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
