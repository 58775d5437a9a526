//! Shared helpers of the integration tests: the GPU gate (skip with one line, or fail under
//! `CUMEMLAB_REQUIRE_GPU=1`), the GPU lock every GPU test holds for its whole life, the record of
//! skipped tests that `scripts/test.sh` counts, and the path of the binary under test.
//!
//! The lock has two parts because GPU tests share one card and compare its free memory before and
//! after: a static `Mutex` (libtest runs the tests of one binary on parallel threads) and an
//! exclusive `flock` on a file in the system temporary folder (cargo runs test binaries one after
//! another, but nextest, two `cargo test` runs or the GPU bundle's runner may run them at once).
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use cumemlab::driver::Driver;
use cumemlab::experiments::Gpu;

/// Set by a test for a child process that runs a GPU test while the parent holds the lock (the
/// child takes no lock and records nothing: its parent does both).
pub const LOCK_HELD_ENV: &str = "CUMEMLAB_TEST_GPU_LOCK_HELD";

/// The file skips are appended to (`scripts/test.sh` and the GPU bundle's runner set it, one file
/// per run); unset, skips are only printed.
pub const SKIP_LOG_ENV: &str = "CUMEMLAB_TEST_SKIP_LOG";

/// The file whose `flock` serialises GPU tests across processes.
pub const LOCK_FILE: &str = "cumemlab-gpu-tests.lock";

static GPU: Mutex<()> = Mutex::new(());

/// Held while a test uses the GPU: the in-process mutex and the cross-process file lock.
pub struct GpuLock {
    // Dropped in this order: the file lock first, then the mutex.
    file: Option<File>,
    guard: Option<MutexGuard<'static, ()>>,
}

/// Takes the GPU lock, waiting for any other test (in this process or another) that holds it.
pub fn gpu_lock() -> GpuLock {
    if std::env::var_os(LOCK_HELD_ENV).is_some() {
        return GpuLock {
            file: None,
            guard: None,
        };
    }
    // A test that panicked while holding the lock poisons the mutex; the card is still usable.
    let guard = GPU.lock().unwrap_or_else(|p| p.into_inner());
    let path = std::env::temp_dir().join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        // Another user's lock file can still be opened to lock it.
        .or_else(|_| File::open(&path))
        .unwrap_or_else(|e| panic!("cannot open the GPU test lock {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    GpuLock {
        file: Some(file),
        guard: Some(guard),
    }
}

/// An open device 0 and the GPU lock, held together for the test's whole life (the device is
/// closed before the lock is released). Derefs to [`Gpu`].
pub struct GpuTest {
    gpu: Gpu,
    _lock: GpuLock,
}

impl GpuTest {
    /// Closes the device and keeps the lock (for a test whose child process uses the GPU: give
    /// the child [`LOCK_HELD_ENV`]).
    pub fn into_lock(self) -> GpuLock {
        drop(self.gpu);
        self._lock
    }
}

impl Deref for GpuTest {
    type Target = Gpu;
    fn deref(&self) -> &Gpu {
        &self.gpu
    }
}

/// Takes the GPU lock and opens device 0, or returns `None` after printing and recording
/// `SKIP: <test>: no CUDA device (<reason>)`. With `CUMEMLAB_REQUIRE_GPU=1` a missing GPU fails
/// the test instead.
pub fn gpu_or_skip(test: &str) -> Option<GpuTest> {
    record(&format!("gpu\t{}", key(test)));
    let lock = gpu_lock();
    let reason = match Driver::load() {
        Ok(drv) => match drv.device_count() {
            Ok(n) if n > 0 => match Gpu::open(&drv, 0) {
                Ok(gpu) => return Some(GpuTest { gpu, _lock: lock }),
                Err(e) => format!("opening device 0 failed: {e}"),
            },
            Ok(_) => "the driver reports no device".to_string(),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    drop(lock);
    if std::env::var("CUMEMLAB_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("{test}: CUMEMLAB_REQUIRE_GPU=1 but there is no usable GPU: {reason}");
    }
    skip(&format!("{test}: no CUDA device ({reason})"));
    None
}

/// Prints `SKIP: <what>` straight to stderr (the test harness captures `println!`) and records
/// it; `what` starts with the test's name and a colon.
pub fn skip(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP: {what}");
    let (test, reason) = what.split_once(": ").unwrap_or((what, "no reason given"));
    // One line per skip: tabs and newlines inside the reason would break the record.
    let reason = reason.replace(['\t', '\n'], " ");
    record(&format!("skip\t{}\t{reason}", key(test)));
}

/// `<test binary>::<test>`, so equal test names in two binaries stay apart.
fn key(test: &str) -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // cargo names test executables `<target>-<hash>`; the GPU bundle names them `<target>`.
    let target = match stem.rsplit_once('-') {
        Some((t, h)) if h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()) => t,
        _ => &stem,
    };
    format!("{target}::{test}")
}

/// Appends one line to the skip record, if this run keeps one (one `write` of a line opened for
/// appending, so lines of parallel tests do not interleave).
fn record(line: &str) {
    if std::env::var_os(LOCK_HELD_ENV).is_some() {
        return;
    }
    let Some(path) = std::env::var_os(SKIP_LOG_ENV) else {
        return;
    };
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        panic!(
            "cannot append to the skip record {}: {e}",
            PathBuf::from(path).display()
        );
    }
}

/// The `cumemlab` binary: `$CUMEMLAB_BIN` (the GPU bundle sets it), else cargo's build of it.
pub fn bin() -> PathBuf {
    std::env::var_os("CUMEMLAB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cumemlab")))
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// Runs the binary with `args` and extra environment variables.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the cumemlab binary runs")
}

/// A run's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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

/// Compares `got` with the expected file `tests/fixtures/snapshots/NAME`, or writes it when
/// `UPDATE_SNAPSHOTS` is set (after an intended change of a renderer; review the diff, then
/// commit it). A mismatch names the first differing line.
pub fn snapshot(name: &str, got: &str) {
    let path = repo().join("tests/fixtures/snapshots").join(name);
    let again = format!(
        "after an intended change: UPDATE_SNAPSHOTS=1 cargo test --test {}",
        env!("CARGO_CRATE_NAME")
    );
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} ({again} writes it)", path.display()));
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\n  got:  {:?}\n  want: {:?}\n({again})",
            path.display(),
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
}
