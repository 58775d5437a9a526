//! The driver layer's allocations on a machine without a GPU: a stand-in libcuda with real
//! allocations (tests/fixtures/stub-driver/libcuda-alloc-stub.c, built here with `cc`) records
//! every acquisition and release in a ledger, and every strategy of `src/memory` is allocated,
//! checked and freed through it, in a child process (the driver is chosen by `CUMEMLAB_LIBCUDA`,
//! which a test cannot set in its own process without `unsafe`).
//!
//! What it shows: each strategy's timed steps keep the names the result files carry; its span
//! covers exactly the bytes requested; the CPU slice exists exactly for the host-accessible
//! strategies; everything acquired is released by the tool itself, through `free` and through
//! `Drop`; and when a driver call in the middle of an allocation fails, the error names that call
//! and what the earlier calls acquired is released.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cumemlab::driver::{Context, Driver, Stream};
use cumemlab::memory::{AllocOptions, Strategy, allocate};

const CHILD: &str = "child_allocates_through_the_stub";

fn stub_lib() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Under cargo's scratch folder for tests; elsewhere (a GPU bundle run on another
            // host) a per-process temporary folder.
            let dir = [
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("alloc-stub"),
                std::env::temp_dir().join(format!("cumemlab-alloc-stub-{}", std::process::id())),
            ]
            .into_iter()
            .find(|d| std::fs::create_dir_all(d).is_ok())?;
            let lib = dir.join("libcuda-alloc-stub.so");
            let src = common::repo().join("tests/fixtures/stub-driver/libcuda-alloc-stub.c");
            Command::new("cc")
                .args(["-shared", "-fPIC", "-Wall", "-Werror", "-o"])
                .arg(&lib)
                .arg(&src)
                .status()
                .is_ok_and(|s| s.success())
                .then_some(lib)
        })
        .clone()
}

/// Runs the child with the stub, `fail` (a symbol made to fail) and `strategy` (the one the
/// child allocates then; all of them without `fail`); returns the ledger's unbalanced entries and
/// the kinds it saw.
fn run_child(lib: &Path, fail: Option<(&str, &str)>) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        CHILD,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CUMEMLAB_LIBCUDA", lib)
    .env("STUB_LEDGER", &ledger)
    .env_remove("STUB_FAIL");
    if let Some((symbol, strategy)) = fail {
        cmd.env("STUB_FAIL", symbol).env("CHILD_STRATEGY", strategy);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("CHILD-OK"),
        "child with {fail:?}:\n{text}"
    );
    let mut held: BTreeMap<String, i64> = BTreeMap::new();
    let mut kinds = Vec::new();
    for line in std::fs::read_to_string(&ledger).unwrap_or_default().lines() {
        let (sign, what) = line.split_at(2);
        *held.entry(what.to_string()).or_default() += if sign == "+ " { 1 } else { -1 };
        let kind = what.split(' ').next().unwrap().to_string();
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let unbalanced = held
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(k, n)| format!("{k}: {n:+}"))
        .collect();
    (unbalanced, kinds)
}

#[test]
fn every_strategy_releases_what_it_acquired_also_when_a_call_fails() {
    let Some(lib) = stub_lib() else {
        common::skip(
            "every_strategy_releases_what_it_acquired_also_when_a_call_fails: no C compiler (cc) to build the stand-in driver",
        );
        return;
    };
    let (unbalanced, mut kinds) = run_child(&lib, None);
    assert!(unbalanced.is_empty(), "not released: {unbalanced:?}");
    kinds.sort();
    assert_eq!(
        kinds,
        ["ctx", "handle", "host", "map", "mem", "reg", "stream", "va"],
        "the child reached every kind of driver object"
    );
    for (symbol, strategy) in [
        ("cuMemAlloc_v2", "device"),
        ("cuMemAdvise_v2", "managed+advise"),
        ("cuMemHostGetDevicePointer_v2", "pinned"),
        ("cuMemHostRegister_v2", "registered"),
        ("cuMemAllocAsync", "pool"),
        ("cuMemCreate", "vmm"),
        ("cuMemMap", "vmm"),
        ("cuMemSetAccess", "vmm"),
    ] {
        let (unbalanced, _) = run_child(&lib, Some((symbol, strategy)));
        assert!(
            unbalanced.is_empty(),
            "{strategy} with {symbol} failing left {unbalanced:?}"
        );
    }
}

/// The steps (allocation, free) each strategy reports, as the result files name them.
fn expected_steps(st: Strategy) -> (&'static [&'static str], &'static [&'static str]) {
    match st {
        Strategy::Device => (&["cuMemAlloc"], &["cuMemFree"]),
        Strategy::Managed | Strategy::ManagedPrefetch => (&["cuMemAllocManaged"], &["cuMemFree"]),
        Strategy::ManagedAdvise => (&["cuMemAllocManaged", "cuMemAdvise"], &["cuMemFree"]),
        Strategy::Pinned => (
            &["cuMemHostAlloc", "cuMemHostGetDevicePointer"],
            &["cuMemFreeHost"],
        ),
        Strategy::Registered => (
            &["mmap", "cuMemHostRegister"],
            &["cuMemHostUnregister", "munmap"],
        ),
        Strategy::Pageable => (&["mmap"], &["munmap"]),
        Strategy::Pool => (&["cuMemAllocAsync"], &["cuMemFreeAsync"]),
        Strategy::Vmm => (
            &[
                "cuMemAddressReserve",
                "cuMemCreate",
                "cuMemMap",
                "cuMemSetAccess",
            ],
            &["cuMemUnmap", "cuMemRelease", "cuMemAddressFree"],
        ),
    }
}

fn names(steps: &[cumemlab::memory::Step]) -> Vec<&'static str> {
    steps.iter().map(|s| s.name).collect()
}

#[test]
#[ignore = "the child of every_strategy_releases_what_it_acquired_also_when_a_call_fails"]
fn child_allocates_through_the_stub() {
    let drv = Driver::load().unwrap();
    assert!(
        drv.library_path().contains("alloc-stub"),
        "run by the parent test"
    );
    let ctx = Context::new(&drv.device(0).unwrap()).unwrap();
    let stream = Arc::new(Stream::new(&ctx).unwrap());
    let opts = AllocOptions::default();
    let bytes = (1 << 20) + 12_345;
    if let Ok(key) = std::env::var("CHILD_STRATEGY") {
        let st = Strategy::parse(&key).unwrap();
        let symbol = std::env::var("STUB_FAIL").unwrap();
        let err = match allocate(&ctx, &stream, st, bytes, &opts) {
            Ok(_) => panic!("{key} allocated although {symbol} failed"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.starts_with(&format!("{symbol} failed: CUDA_ERROR_OUT_OF_MEMORY")),
            "{err}"
        );
    } else {
        for st in Strategy::all() {
            let (alloc_steps, free_steps) = expected_steps(st);
            let mut a = allocate(&ctx, &stream, st, bytes, &opts).unwrap();
            assert_eq!(names(a.alloc_steps()), alloc_steps, "{st}");
            let span = a.span();
            assert_eq!(span.bytes(), bytes, "{st}: the span is the request");
            assert!(span.is_writable(), "{st}");
            let want_mapped = if st == Strategy::Vmm { 2 << 20 } else { bytes };
            assert_eq!(a.mapped_bytes(), want_mapped, "{st}");
            assert_eq!(a.host_slice().is_some(), st.info().host_accessible, "{st}");
            if let Some(mem) = a.host_slice() {
                assert_eq!(mem.len() as u64, bytes);
                mem[bytes as usize - 1] = 7;
            }
            assert_eq!(names(&a.free().unwrap()), free_steps, "{st}");
            // The Drop path releases as well.
            drop(allocate(&ctx, &stream, st, bytes, &opts).unwrap());
        }
    }
    drop(stream);
    drop(ctx);
    assert!(
        cumemlab::driver::take_drop_failures().is_empty(),
        "a release failed"
    );
    println!("CHILD-OK");
}
