//! Shared helpers of the integration tests: the GPU gate (skip with one line, or fail under
//! `CUMEMLAB_REQUIRE_GPU=1`) and the path of the binary under test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use cumemlab::driver::Driver;
use cumemlab::experiments::Gpu;

/// Opens device 0, or returns `None` after printing `SKIP: <test>: no CUDA device (<reason>)`.
/// With `CUMEMLAB_REQUIRE_GPU=1` a missing GPU fails the test instead.
pub fn gpu_or_skip(test: &str) -> Option<Gpu> {
    let reason = match Driver::load() {
        Ok(drv) => match drv.device_count() {
            Ok(n) if n > 0 => match Gpu::open(&drv, 0) {
                Ok(g) => return Some(g),
                Err(e) => format!("opening device 0 failed: {e}"),
            },
            Ok(_) => "the driver reports no device".to_string(),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    if std::env::var("CUMEMLAB_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("{test}: CUMEMLAB_REQUIRE_GPU=1 but there is no usable GPU: {reason}");
    }
    skip(&format!("{test}: no CUDA device ({reason})"));
    None
}

/// Prints `SKIP: <what>` straight to stderr (the test harness captures `println!`).
pub fn skip(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {what}");
}

/// The `cumemlab` binary: `$CUMEMLAB_BIN` (the GPU bundle sets it), else cargo's build of it.
pub fn bin() -> PathBuf {
    std::env::var_os("CUMEMLAB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cumemlab")))
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("the cumemlab binary runs")
}

/// Runs the binary with `args`, asserts it succeeded, and returns its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// The repository root (fixtures live under it).
pub fn repo() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
}
