//! The guards, end to end through the binary on a GPU host: managed memory past the card's free
//! memory is refused on a discrete GPU, with and without --force; a host whose MemAvailable is
//! simulated small (CUMEMLAB_MEMINFO points at a fixture) refuses pinned memory past MemAvailable
//! minus the headroom. Nothing is allocated in either case.

mod common;

use cumemlab::units::GIB;

fn sweep(args: &[&str], meminfo: Option<&std::path::Path>) -> serde_json::Value {
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
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
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
        let v = sweep(&args, None);
        assert!(
            v["rows"].as_array().unwrap().is_empty(),
            "nothing may be allocated: {v}"
        );
        let skipped = v["skipped"].to_string();
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
    let v = sweep(
        &["--strategies", "pinned", "--sizes", "4GiB"],
        Some(&fixture),
    );
    assert!(
        v["rows"].as_array().unwrap().is_empty(),
        "nothing may be allocated: {v}"
    );
    let skipped = v["skipped"].to_string();
    assert!(
        skipped.contains("refused") && skipped.contains("headroom"),
        "{skipped}"
    );
    // 1 GiB fits under the same simulated host.
    let v = sweep(
        &["--strategies", "pinned", "--sizes", "1GiB", "--runs", "1"],
        Some(&fixture),
    );
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["phase"] == "verify" && r["mismatches"] == 0),
        "{v}"
    );
}
