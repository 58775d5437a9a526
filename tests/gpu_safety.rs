//! The guards, end to end through the binary on a GPU host: managed memory past the card's free
//! memory is refused on a discrete GPU, with and without --force; a host whose MemAvailable is
//! simulated small (CUMEMLAB_MEMINFO points at a fixture) refuses pinned memory past MemAvailable
//! minus the headroom. Nothing is allocated in either case, and a sweep of which nothing could
//! run exits 2 with one sentence quoting the refusal, writing no result file.

mod common;

use cumemlab::units::GIB;

/// Runs a sweep: `Ok(document)` when it measured something (exit 0), `Err(stderr)` when nothing
/// could run (exit 2, one line, no result file).
fn sweep(args: &[&str], meminfo: Option<&std::path::Path>) -> Result<serde_json::Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep.json");
    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("sweep")
        .args(args)
        .arg("--quiet")
        .arg("--out")
        .arg(&out);
    if let Some(m) = meminfo {
        cmd.env("CUMEMLAB_MEMINFO", m);
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    match o.status.code() {
        Some(0) => Ok(serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()),
        Some(2) => {
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            assert!(err.contains("nothing was measured"), "{err}");
            assert!(!out.exists(), "no result file when nothing was measured");
            Err(err)
        }
        c => panic!("exit {c:?}: {err}"),
    }
}

#[test]
fn managed_past_free_memory_is_refused_even_with_force() {
    let Some(gpu) = common::gpu_or_skip("managed_past_free_memory_is_refused_even_with_force")
    else {
        return;
    };
    if gpu.arch.is_unified() {
        common::skip(
            "managed_past_free_memory_is_refused_even_with_force: unified memory (the rule is for discrete cards)",
        );
        return;
    }
    let size = format!("{}GiB", gpu.free_bytes().unwrap() / GIB + 2);
    let start = gpu.free_bytes().unwrap();
    for force in [false, true] {
        let mut args = vec!["--strategies", "managed", "--sizes", size.as_str()];
        if force {
            args.push("--force");
        }
        // Every combination refused: exit 2, the refusal quoted.
        let skipped = sweep(&args, None).expect_err("nothing may be allocated");
        assert!(
            skipped.contains("refused") && skipped.contains("managed"),
            "{skipped}"
        );
        if force {
            assert!(
                skipped.contains("--force does not lift this one"),
                "{skipped}"
            );
        }
    }
    assert!((gpu.free_bytes().unwrap() as i64 - start as i64).abs() < (64 << 20));
}

#[test]
fn a_small_host_refuses_pinned_memory_past_the_headroom() {
    let Some(_gpu) = common::gpu_or_skip("a_small_host_refuses_pinned_memory_past_the_headroom")
    else {
        return;
    };
    let fixture = common::repo().join("tests/fixtures/meminfo/small-host.txt");
    // MemAvailable 10 GiB - headroom 8 GiB = 2 GiB allowed.
    let skipped = sweep(
        &["--strategies", "pinned", "--sizes", "4GiB"],
        Some(&fixture),
    )
    .expect_err("nothing may be allocated");
    assert!(
        skipped.contains("refused") && skipped.contains("headroom"),
        "{skipped}"
    );
    // 1 GiB fits under the same simulated host.
    let v = sweep(
        &["--strategies", "pinned", "--sizes", "1GiB", "--runs", "1"],
        Some(&fixture),
    )
    .expect("1 GiB fits");
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["phase"] == "verify" && r["mismatches"] == 0),
        "{v}"
    );
}
