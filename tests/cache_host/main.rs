//! The page-cache commands through the real binary, on this machine's real disk and page cache
//! (no GPU needed): `cache --fill 1GiB` raises Cached by about 1 GiB, `cache --evict` brings it
//! back down, and no file is left behind; a held fill ends on Ctrl-C (exit 0) and removes its
//! file; `cache --drop` without root (a real unprivileged user where `setpriv` allows, and a
//! simulated refusal at the file write) is one sentence naming the fix, exit 2, nothing changed;
//! bad input is exit 2; `watch` streams JSON lines and ends cleanly on `--count` and on Ctrl-C;
//! `probe` and `cache effect` without a GPU are usage errors that leave nothing behind.
//!
//! The tests that read the page cache's size take a lock, so they do not see each other's files.
//! `status`, `watch` and the GPU commands without a GPU are in [`others`].

#[path = "../common/mod.rs"]
mod common;
use common::run_env;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cumemlab::units::{GIB, MIB};
use serde_json::Value;

/// Serialises the tests that change or measure the page cache.
static CACHE: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

fn json(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{v} is not an unsigned number"))
}

/// Cached now, through `cache --json`.
fn cached_now() -> u64 {
    let v = json(&common::run(&["cache", "--json", "--host-only"]));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["label"], "now");
    u(&rows[0]["cached_bytes"])
}

/// A folder on a disk filesystem for fills (where `cache --fill` puts them by default: the
/// temporary folder, or the current one when that is a tmpfs), or `None` (with a SKIP line) when
/// it is a tmpfs too or lacks space.
fn disk_dir(test: &str, need: u64) -> Option<tempfile::TempDir> {
    let base = cumemlab::host::cache::default_fill_dir();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let fs = nix::sys::statfs::statfs(dir.path()).unwrap();
    if fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC {
        common::skip(&format!("{test}: {} is a tmpfs", base.display()));
        return None;
    }
    let free = cumemlab::host::cache::free_disk_bytes(dir.path()).unwrap();
    if free < need + GIB {
        common::skip(&format!(
            "{test}: {} has {free} bytes free, fewer than {need} + 1 GiB",
            base.display()
        ));
        return None;
    }
    Some(dir)
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn fill_puts_the_file_in_the_page_cache_and_evict_takes_it_out() {
    let _g = lock();
    let Some(dir) = disk_dir(
        "fill_puts_the_file_in_the_page_cache_and_evict_takes_it_out",
        GIB,
    ) else {
        return;
    };
    let d = dir.path().to_str().unwrap();
    let slack = 8 * GIB / 10; // other activity on the machine moves Cached too
    let before = cached_now();

    // Fill and keep: the file stays, fully resident.
    let fill = json(&common::run(&[
        "cache",
        "--fill",
        "1GiB",
        "--keep",
        "--dir",
        d,
        "--json",
        "--host-only",
        "--quiet",
    ]));
    let rows = fill["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{fill}");
    assert_eq!(rows[0]["label"], "before fill");
    assert_eq!(rows[1]["label"], "after fill");
    let path = PathBuf::from(rows[1]["file"].as_str().unwrap());
    assert_eq!(path.parent().unwrap(), dir.path());
    assert!(path.exists(), "--keep leaves {}", path.display());
    assert_eq!(u(&rows[1]["file_bytes"]), GIB);
    assert!(
        u(&rows[1]["file_resident_bytes"]) >= GIB * 95 / 100,
        "the whole file is in the page cache: {}",
        rows[1]["file_resident_bytes"]
    );
    assert!(
        fill["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("--evict")),
        "the notes say how to evict: {}",
        fill["notes"]
    );

    // The host-wide Cached holds the file's pages. By how much it rose is printed, not
    // asserted: on a busy host the kernel reclaims other cache while the fill adds this one (seen
    // on a 24 GiB CI machine: Cached +0.52 GB for a fully resident 1 GiB file), so the file's own
    // residency (mincore, above) is what proves the fill.
    let filled = cached_now();
    let resident = u(&rows[1]["file_resident_bytes"]);
    assert!(
        filled >= resident,
        "Cached {filled} must hold the file's {resident} resident bytes"
    );
    eprintln!(
        "Cached {before} -> {filled} ({:+} bytes; the file: {resident} resident; about {slack} expected on a quiet host)",
        filled as i64 - before as i64
    );

    // Evict and remove: the file's pages go, Cached comes back down, the file is gone.
    let ev = json(&common::run(&[
        "cache",
        "--evict",
        path.to_str().unwrap(),
        "--remove",
        "--json",
        "--host-only",
    ]));
    let rows = ev["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{ev}");
    assert_eq!(rows[0]["label"], "before evict");
    assert_eq!(rows[1]["label"], "after evict");
    assert!(u(&rows[0]["file_resident_bytes"]) >= GIB * 95 / 100);
    assert!(
        u(&rows[1]["file_resident_bytes"]) <= GIB / 20,
        "evicted pages are gone: {}",
        rows[1]["file_resident_bytes"]
    );
    // As above: the file's own pages prove the eviction; the host-wide figures are printed.
    let (c0, c1) = (u(&rows[0]["cached_bytes"]), u(&rows[1]["cached_bytes"]));
    eprintln!(
        "Cached around the eviction {c0} -> {c1} ({:+} bytes), {} now",
        c1 as i64 - c0 as i64,
        cached_now()
    );
    assert!(!path.exists(), "--remove deleted {}", path.display());
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn held_fill_ends_on_ctrl_c_and_removes_its_file() {
    let _g = lock();
    let Some(dir) = disk_dir("held_fill_ends_on_ctrl_c_and_removes_its_file", 64 * MIB) else {
        return;
    };
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("hold.json");
    let child = Command::new(common::bin())
        .args([
            "cache",
            "--fill",
            "64MiB",
            "--host-only",
            "--quiet",
            "--dir",
        ])
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the fill is held (its "after fill" state is written).
    let t = Instant::now();
    let held = loop {
        let rows = std::fs::read_to_string(&out)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .map(|v| v["rows"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default();
        if rows.iter().any(|r| r["label"] == "after fill") {
            break true;
        }
        if t.elapsed() > Duration::from_secs(120) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let files = files_in(dir.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(held, "the fill was never held");
    assert_eq!(files.len(), 1, "one fill file while held: {files:?}");
    assert!(files[0].starts_with("cumemlab-fill-"), "{files:?}");
    assert_eq!(
        o.status.code(),
        Some(0),
        "Ctrl-C is the normal end of a hold: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("until Ctrl-C"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(files_in(dir.path()).is_empty(), "the file is removed");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["complete"], true);
    let labels: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["before fill", "after fill", "after removal"]);
}

#[test]
fn held_fill_for_a_duration_ends_by_itself() {
    let _g = lock();
    let Some(dir) = disk_dir("held_fill_for_a_duration_ends_by_itself", 16 * MIB) else {
        return;
    };
    let o = common::run(&[
        "cache",
        "--fill",
        "16MiB",
        "--hold",
        "300ms",
        "--host-only",
        "--quiet",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("after removal") && text.contains("for the time asked"),
        "{text}"
    );
    assert!(files_in(dir.path()).is_empty());
}

/// Asserts exit 2 with one line on stderr containing every phrase.
fn assert_usage(o: &Output, phrases: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for p in phrases {
        assert!(err.contains(p), "`{p}` not in: {err}");
    }
}

#[test]
fn drop_refused_at_the_write_changes_nothing() {
    // A read-only sysctl refuses the write even to root (EACCES): the refusal the kernel gives
    // to a non-root user, or in a container with a read-only /proc/sys.
    let target = "/proc/sys/kernel/osrelease";
    let Ok(release) = std::fs::read_to_string(target) else {
        common::skip(&format!(
            "drop_refused_at_the_write_changes_nothing: cannot read {target}"
        ));
        return;
    };
    let o = run_env(
        &["cache", "--drop", "--host-only"],
        &[("CUMEMLAB_DROP_CACHES_PATH", target)],
    );
    assert_usage(&o, &["sudo", "drop_caches"]);
    assert!(o.stdout.is_empty(), "nothing measured or printed");
    assert_eq!(std::fs::read_to_string(target).unwrap(), release);
}

#[test]
fn drop_as_an_unprivileged_user_is_one_sentence_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for drop_caches that anyone could write: it must stay untouched.
    let stand_in = dir.path().join("drop_caches");
    std::fs::write(&stand_in, "untouched").unwrap();
    let perms = |p: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    perms(&stand_in, 0o666);
    let o = if nix::unistd::geteuid().is_root() {
        let Ok(setpriv) = which("setpriv") else {
            common::skip(
                "drop_as_an_unprivileged_user_is_one_sentence_and_exit_2: running as root without setpriv",
            );
            return;
        };
        // The binary where the unprivileged user can run it: in place when every folder above it
        // lets others through, else a copy (whose exec can meet ETXTBSY while another test
        // forks with the copy's write handle open: retried).
        let mut bin = common::bin();
        if !others_can_run(&bin) {
            let copy = dir.path().join("cumemlab");
            std::fs::copy(&bin, &copy).unwrap();
            perms(&copy, 0o755);
            perms(dir.path(), 0o755);
            bin = copy;
        }
        let mut tries = 0;
        loop {
            let o = Command::new(&setpriv)
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&bin)
                .args(["cache", "--drop", "--host-only"])
                .env("CUMEMLAB_DROP_CACHES_PATH", &stand_in)
                .output()
                .unwrap();
            tries += 1;
            if tries < 10 && String::from_utf8_lossy(&o.stderr).contains("Text file busy") {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            break o;
        }
    } else {
        run_env(
            &["cache", "--drop", "--host-only"],
            &[("CUMEMLAB_DROP_CACHES_PATH", stand_in.to_str().unwrap())],
        )
    };
    assert_usage(
        &o,
        &[
            "needs root",
            "sudo cumemlab cache --drop",
            "sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'",
        ],
    );
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&stand_in).unwrap(), "untouched");
}

/// Whether a user other than the owner can reach and run `bin`.
fn others_can_run(bin: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(bin) = bin.canonicalize() else {
        return false;
    };
    bin.ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

#[test]
fn drop_as_root_writes_3_into_the_switch() {
    // Into a stand-in file (this test never drops the machine's cache).
    if !nix::unistd::geteuid().is_root() {
        common::skip("drop_as_root_writes_3_into_the_switch: not root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stand_in = dir.path().join("drop_caches");
    std::fs::write(&stand_in, "").unwrap();
    let o = run_env(
        &["cache", "--drop", "--host-only", "--json"],
        &[("CUMEMLAB_DROP_CACHES_PATH", stand_in.to_str().unwrap())],
    );
    let v = json(&o);
    let labels: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["before drop", "after drop"]);
    assert_eq!(std::fs::read_to_string(&stand_in).unwrap(), "3\n");
}

#[test]
fn bad_input_is_exit_2_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let user_file = dir.path().join("model.bin");
    std::fs::write(&user_file, b"weights").unwrap();
    let uf = user_file.to_str().unwrap();
    let missing = dir.path().join("missing");
    let m = missing.to_str().unwrap();
    let bad_out = format!("{m}/out.json");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["cache", "--fill", "1G"], vec!["ambiguous", "1GiB"]),
        (vec!["cache", "--fill", "-1GiB"], vec!["negative"]),
        (
            vec!["cache", "--fill", "1GiB", "--dir", m],
            vec!["no such folder"],
        ),
        (
            vec!["cache", "--fill", "1TiB", "--dir", d],
            vec!["--fill 1 TiB"],
        ),
        (vec!["cache", "--evict", m], vec!["no such file"]),
        (vec!["cache", "--evict", d], vec!["not a regular file"]),
        (
            vec!["cache", "--evict", uf, "--remove"],
            vec!["--remove deletes only files made by"],
        ),
        (vec!["cache", "--keep"], vec!["--fill"]),
        (vec!["cache", "--drop", "--fill", "1GiB"], vec!["--drop"]),
        (
            vec!["cache", "--fill", "1GiB", "--hold", "0s"],
            vec!["zero"],
        ),
        (vec!["cache", "effect", "--size", "4G"], vec!["ambiguous"]),
        (
            vec!["cache", "effect", "--resolution", "100MB"],
            vec!["2 MiB"],
        ),
        (
            vec!["probe", "--resolution", "100MB"],
            vec!["--resolution", "2 MiB"],
        ),
        (vec!["probe", "--chunk", "1GB"], vec!["--chunk", "2 MiB"]),
        (vec!["probe", "--max", "16G"], vec!["ambiguous"]),
        (
            vec!["probe", "--strategies", "cudaMalloc"],
            vec!["unknown strategy"],
        ),
        (vec!["probe", "--kind", "largest"], vec!["largest"]),
        (vec!["probe", "--touch", "--no-touch"], vec!["--no-touch"]),
        (vec!["probe", "--device", "-1"], vec!["-1"]),
        (vec!["probe", "--out", &bad_out], vec!["does not exist"]),
        (vec!["watch", "--interval", "0"], vec!["not positive"]),
        (vec!["watch", "--interval", "1ms"], vec!["50ms"]),
        (vec!["watch", "--count", "0"], vec!["--count"]),
    ];
    for (args, phrases) in cases {
        let o = common::run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        for p in phrases {
            assert!(err.contains(p), "{args:?}: `{p}` not in: {err}");
        }
    }
    assert!(user_file.exists(), "a refused --remove deletes nothing");
    let mut left = files_in(dir.path());
    left.sort();
    assert_eq!(left, ["model.bin"], "nothing created");
}

mod others;
