//! GPU tests of the strategies and the sweep: every supported strategy allocates, touches, fills,
//! verifies and frees at 1 GiB and at an odd size; `pageable` is skipped with its reason where the
//! GPU cannot read pageable memory; `managed` populates on first touch (first touch slower than the
//! second, `cuMemGetInfo` free moving only once touched) while `device` moves it at allocation;
//! free memory is back after the sweep; a SIGINT mid-sweep leaves nothing allocated.

mod common;

use std::time::{Duration, Instant};

use cumemlab::experiments::env::Environment;
use cumemlab::experiments::sweep::{self, SweepOptions, SweepRow, phase};
use cumemlab::memory::Strategy;
use cumemlab::memory::safety::DEFAULT_HEADROOM;
use cumemlab::report::ResultSink;
use cumemlab::units::{GIB, MIB};

const ODD: u64 = 96 * MIB + 4100;
const SLACK: i64 = 64 * MIB as i64;

fn opts(strategies: Vec<Strategy>, sizes: Vec<u64>) -> SweepOptions {
    SweepOptions {
        strategies: Some(strategies),
        sizes: Some(sizes),
        runs: 2,
        page_stride: 4096,
        cpu_threads: 2,
        headroom: DEFAULT_HEADROOM,
        force: false,
        alloc: Default::default(),
        quiet: true,
        repeat: 3,
        cpu_single_max: 512 * MIB,
        caps: Default::default(),
    }
}

fn row<'a>(rows: &'a [SweepRow], st: &str, bytes: u64, ph: &str) -> &'a SweepRow {
    rows.iter()
        .find(|r| r.strategy == st && r.bytes == bytes && r.phase == ph)
        .unwrap_or_else(|| panic!("no {ph} row for {st} at {bytes}"))
}

#[test]
fn every_supported_strategy_round_trips_and_memory_comes_back() {
    let Some(gpu) =
        common::gpu_or_skip("every_supported_strategy_round_trips_and_memory_comes_back")
    else {
        return;
    };
    let start_free = gpu.free_bytes().unwrap();
    let mut sink = ResultSink::new("sweep", Environment::host_only("test".into()), None).unwrap();
    sweep::run(&[0], &opts(Strategy::all(), vec![GIB, ODD]), &mut sink).unwrap();
    let rows = &sink.doc.rows;
    for st in Strategy::all() {
        let supported = st.supported(&gpu.attrs);
        for bytes in [GIB, ODD] {
            if let Err(reason) = &supported {
                assert!(
                    sink.doc
                        .skipped
                        .iter()
                        .any(|s| s.contains(st.key()) && s.contains(reason.as_str())),
                    "{st} should be skipped with its reason: {:?}",
                    sink.doc.skipped
                );
                continue;
            }
            for ph in [
                phase::ALLOC,
                phase::GPU_FIRST_TOUCH,
                phase::GPU_SECOND_TOUCH,
                phase::FILL,
                phase::READ,
                phase::FREE,
            ] {
                let r = row(rows, st.key(), bytes, ph);
                assert!(
                    r.ms_median > 0.0 && r.ms_median.is_finite(),
                    "{st} {bytes} {ph}: {r:?}"
                );
                // Three fresh allocations: one sample each for one-shot phases, two runs on
                // each for bandwidth phases.
                let per_alloc = if ph == phase::FILL || ph == phase::READ {
                    2
                } else {
                    1
                };
                assert_eq!(
                    r.samples_ms.len(),
                    3 * per_alloc,
                    "{st} {bytes} {ph}: {r:?}"
                );
                assert_eq!(r.allocations, Some(3), "{st} {bytes} {ph}");
                assert!(r.ms_min <= r.ms_median && r.ms_median <= r.ms_max);
            }
            let fill = row(rows, st.key(), bytes, phase::FILL);
            assert_eq!(fill.alloc_gbps.len(), 3, "{st} {bytes}");
            assert!(fill.between_alloc_cv.is_some() && fill.within_alloc_cv.is_some());
            assert_eq!(
                row(rows, st.key(), bytes, phase::VERIFY).mismatches,
                Some(0),
                "{st} at {bytes}"
            );
            if st.info().host_accessible {
                let cpu = row(rows, st.key(), bytes, phase::CPU_FIRST_TOUCH);
                assert!(cpu.pages.unwrap() >= bytes / 4096);
                assert_eq!(cpu.samples_ms.len(), 3, "{st} {bytes}");
                // One thread at or below 512 MiB (the single-thread rate), two above.
                let threads = if bytes <= 512 * MIB { 1 } else { 2 };
                assert_eq!(cpu.threads, Some(threads), "{st} {bytes}");
            }
        }
    }
    if !gpu.attrs.flag("pageable_memory_access") {
        assert!(
            sink.doc
                .skipped
                .iter()
                .any(|s| s.contains("pageable") && s.contains("PAGEABLE_MEMORY_ACCESS = 0"))
        );
    }
    let end_free = gpu.free_bytes().unwrap();
    assert!(
        (end_free as i64 - start_free as i64).abs() < SLACK,
        "free memory {start_free} -> {end_free}"
    );
}

#[test]
fn managed_populates_on_first_touch_device_at_allocation() {
    let Some(gpu) = common::gpu_or_skip("managed_populates_on_first_touch_device_at_allocation")
    else {
        return;
    };
    let bytes = 2 * GIB;
    let mut sink = ResultSink::new("sweep", Environment::host_only("test".into()), None).unwrap();
    sweep::run(
        &[0],
        &opts(vec![Strategy::Device, Strategy::Managed], vec![bytes]),
        &mut sink,
    )
    .unwrap();
    let rows = &sink.doc.rows;
    let b = bytes as i64;
    // device: cuMemGetInfo free drops by the size at allocation.
    let d = row(rows, "device", bytes, phase::ALLOC)
        .delta_device_free_bytes
        .unwrap();
    assert!((d + b).abs() < SLACK, "device alloc moved free by {d}");
    let m_alloc = row(rows, "managed", bytes, phase::ALLOC)
        .delta_device_free_bytes
        .unwrap();
    let m_touch = row(rows, "managed", bytes, phase::GPU_FIRST_TOUCH)
        .delta_device_free_bytes
        .unwrap();
    if gpu.arch.is_unified() {
        // On unified memory both take host memory; cuMemGetInfo is MemFree there.
        assert!(m_touch < -(b / 2), "managed touch moved free by {m_touch}");
    } else {
        assert!(
            m_alloc.abs() < SLACK,
            "managed alloc moved free by {m_alloc}"
        );
        assert!(
            (m_touch + b).abs() < SLACK,
            "managed first touch moved free by {m_touch}"
        );
    }
    let first = row(rows, "managed", bytes, phase::GPU_FIRST_TOUCH).ms_median;
    let second = row(rows, "managed", bytes, phase::GPU_SECOND_TOUCH).ms_median;
    assert!(
        first > 1.5 * second,
        "managed first touch {first} ms vs second {second} ms"
    );
}

#[test]
fn sigint_mid_sweep_frees_everything_and_keeps_finished_rows() {
    let Some(gpu) =
        common::gpu_or_skip("sigint_mid_sweep_frees_everything_and_keeps_finished_rows")
    else {
        return;
    };
    let start_free = gpu.free_bytes().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("partial.json");
    let child = std::process::Command::new(common::bin())
        .args([
            "sweep",
            "--strategies",
            "device,managed,pinned",
            "--sizes",
            "1GiB,4GiB,8GiB",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first finished rows, then interrupt in the middle.
    let t = Instant::now();
    loop {
        let n = std::fs::read_to_string(&out)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["rows"].as_array().map(|a| a.len()))
            .unwrap_or(0);
        if n >= 3 || t.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(130), "exit status after SIGINT");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["complete"], false);
    assert!(v["rows"].as_array().unwrap().len() >= 3);
    let end_free = gpu.free_bytes().unwrap();
    assert!(
        (end_free as i64 - start_free as i64).abs() < SLACK,
        "free memory {start_free} -> {end_free} after SIGINT"
    );
}

#[test]
fn caps_leave_out_linear_costs_and_say_why() {
    let Some(_gpu) = common::gpu_or_skip("caps_leave_out_linear_costs_and_say_why") else {
        return;
    };
    let mut o = opts(
        vec![Strategy::Device, Strategy::Managed, Strategy::Pinned],
        vec![256 * MIB, GIB],
    );
    o.caps = sweep::Caps {
        host_max: Some(256 * MIB),
        managed_max: Some(256 * MIB),
        cpu_first_max: Some(256 * MIB),
    };
    let mut sink = ResultSink::new("sweep", Environment::host_only("test".into()), None).unwrap();
    sweep::run(&[0], &o, &mut sink).unwrap();
    let rows = &sink.doc.rows;
    let has = |st: &str, b: u64, ph: &str| {
        rows.iter()
            .any(|r| r.strategy == st && r.bytes == b && r.phase == ph)
    };
    assert!(has("device", GIB, phase::FILL));
    assert!(has("pinned", 256 * MIB, phase::ALLOC) && !has("pinned", GIB, phase::ALLOC));
    assert!(has("managed", 256 * MIB, phase::CPU_FIRST_TOUCH));
    assert!(!has("managed", GIB, phase::ALLOC));
    let skipped = sink.doc.skipped.join("\n");
    assert!(
        skipped.contains("pinned@1 GiB: capped") && skipped.contains("managed@1 GiB: capped"),
        "{skipped}"
    );
}
