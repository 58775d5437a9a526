//! The host-side commands besides the page-cache actions, through the real binary: `cache`
//! status side by side, `watch` streaming JSON lines (ending on `--count` and on Ctrl-C), and
//! `probe` / `cache effect` without a GPU. Helpers come from the parent test file.

use super::*;

#[test]
fn gpu_commands_without_a_gpu_fail_with_exit_1_and_leave_nothing() {
    if cumemlab::driver::Driver::load().is_ok_and(|d| d.device_count().is_ok_and(|n| n > 0)) {
        common::skip(
            "gpu_commands_without_a_gpu_fail_with_exit_1_and_leave_nothing: a GPU is present",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["probe"],
        vec!["probe", "--strategies", "device", "--kind", "single"],
        vec!["cache", "effect", "--fill", "64MiB", "--dir", d],
    ] {
        let o = common::run(&args);
        // The input was fine; the machine lacks a GPU: exit 1, one line.
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "stderr: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains("needs a GPU"), "{err}");
    }
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn status_shows_the_fields_side_by_side() {
    let o = common::run(&["cache", "--host-only"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = String::from_utf8_lossy(&o.stdout);
    for f in [
        "| Buffers",
        "| Cached",
        "| SReclaimable",
        "| Shmem",
        "| Dirty",
        "| MemFree",
        "| MemAvailable",
        "No GPU part (--host-only)",
    ] {
        assert!(t.contains(f), "`{f}` not in:\n{t}");
    }
    // The table agrees with /proc/meminfo (MemTotal does not move).
    let v = json(&common::run(&["cache", "--host-only", "--json"]));
    let m = cumemlab::host::MemInfo::read().unwrap();
    assert_eq!(u(&v["rows"][0]["mem_total_bytes"]), m.mem_total);
    let r = &v["rows"][0];
    assert_eq!(
        u(&r["reclaimable_cache_bytes"]),
        u(&r["cached_bytes"]) - u(&r["shmem_bytes"]) + u(&r["buffers_bytes"])
    );
    assert_eq!(v["experiment"], "cache");
    assert!(v["environment"]["host"]["kernel_release"].is_string());
}

#[test]
fn watch_streams_json_lines_and_stops_at_count() {
    let o = common::run(&[
        "watch",
        "--count",
        "3",
        "--interval",
        "100ms",
        "--json",
        "--host-only",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let total = cumemlab::host::MemInfo::read().unwrap().mem_total;
    for (i, s) in lines.iter().enumerate() {
        assert_eq!(u(&s["sample"]), i as u64 + 1);
        assert_eq!(u(&s["mem_total_bytes"]), total);
        assert!(u(&s["mem_available_bytes"]) <= total && u(&s["mem_free_bytes"]) <= total);
        assert!(
            s["device_free_bytes"].is_null(),
            "no device with --host-only"
        );
    }
    let t: Vec<f64> = lines.iter().map(|s| s["t_s"].as_f64().unwrap()).collect();
    assert!(
        t[1] - t[0] >= 0.09 && t[2] - t[1] >= 0.09,
        "samples every 100 ms: {t:?}"
    );
    // The bars: one per quantity, the device part said absent.
    let o = common::run(&["watch", "--count", "1", "--host-only"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("device: absent (--host-only)"), "{text}");
    for q in ["MemAvailable", "MemFree", "Cached", "SwapFree"] {
        assert!(text.contains(q), "{q} not in {text}");
    }
}

#[test]
fn watch_ends_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("watch.json");
    let child = Command::new(common::bin())
        .args([
            "watch",
            "--interval",
            "100ms",
            "--host-only",
            "--json",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let n = std::fs::read_to_string(&out)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["rows"].as_array().map(|a| a.len()))
            .unwrap_or(0);
        if n >= 2 || t.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "Ctrl-C is a watch's normal end");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["complete"], true);
    let rows = v["rows"].as_array().unwrap().len();
    assert!(rows >= 2);
    // Every sample went to stdout too, one line each.
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), rows);
}
