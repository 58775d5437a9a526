//! GPU tests of `layout`: the 13b-sim preset and a model preset allocate every tensor, free every
//! tensor (by the pattern, then at cleanup), and leave free memory at its baseline; the totals
//! agree with the request (the overhead within 2 MiB rounding per tensor on a discrete card); the
//! fragmentation search is consistent with its own probes, never above the free total and never
//! below the largest tensor freed; `vmm` maps whole granules; `managed` takes memory only when
//! touched; an oversized layout is refused before anything is allocated; Ctrl-C frees everything
//! and keeps the rows. Each test skips with one line without a GPU (fails under
//! CUMEMLAB_REQUIRE_GPU=1). Timings are recorded, never asserted.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cumemlab::error::Error;
use cumemlab::experiments::Gpu;
use cumemlab::experiments::layout::{
    self, AllocRow, FreePattern, KvCache, Layout, LayoutOptions, LayoutReport, LayoutRow, Moment,
    Phase, TensorSpec,
};
use cumemlab::host::MemInfo;
use cumemlab::memory::Strategy;
use cumemlab::plan::{Precision, find_model};
use cumemlab::units::{GIB, MIB};

const SLACK: i64 = 64 * MIB as i64;

fn rows(r: &LayoutReport, ph: Phase) -> Vec<&LayoutRow> {
    r.rows.iter().filter(|x| x.phase() == ph).collect()
}

fn allocs(r: &LayoutReport) -> Vec<&AllocRow> {
    r.rows.iter().filter_map(LayoutRow::as_alloc).collect()
}

fn indices(rows: &[&LayoutRow]) -> Vec<usize> {
    rows.iter().map(|r| r.index().unwrap() as usize).collect()
}

/// Runs `opts` unless the layout is beyond this device's safety ceiling (then SKIP). Returns the
/// report and `cuMemGetInfo` free before and after.
fn measure(test: &str, gpu: &Gpu, opts: &LayoutOptions) -> Option<(LayoutReport, u64, u64)> {
    if let Err(reason) = opts.strategy.supported(&gpu.attrs) {
        common::skip(&format!(
            "{test}: {} not supported: {reason}",
            opts.strategy
        ));
        return None;
    }
    if let Err(e) = layout::preflight(gpu, opts) {
        common::skip(&format!("{test}: the layout does not fit this device: {e}"));
        return None;
    }
    let start = gpu.free_bytes().unwrap();
    let r = layout::measure(gpu, opts).unwrap();
    let end = gpu.free_bytes().unwrap();
    Some((r, start, end))
}

/// What every complete run must show.
fn check_run(gpu: &Gpu, opts: &LayoutOptions, r: &LayoutReport, start: u64, end: u64) {
    let tensors = &opts.layout.tensors;
    let n = tensors.len();
    assert!(!r.interrupted);
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    // Every tensor allocated, in layout order, with its size and a time.
    let allocs = allocs(r);
    assert_eq!(allocs.len(), n);
    for (t, a) in tensors.iter().zip(&allocs) {
        assert_eq!(a.name, t.name);
        assert_eq!(a.bytes, t.bytes);
        assert!(a.mapped_bytes >= t.bytes, "{}", t.name);
        let ms = a.alloc_ms;
        assert!(ms > 0.0 && ms.is_finite(), "{}: {ms}", t.name);
    }
    // Every tensor freed exactly once: the pattern's, then the rest at cleanup.
    let sizes: Vec<u64> = tensors.iter().map(|t| t.bytes).collect();
    let freed = indices(&rows(r, Phase::Free));
    let cleaned = indices(&rows(r, Phase::Cleanup));
    assert_eq!(freed, opts.free_pattern.select(&sizes));
    let mut all: Vec<usize> = freed.iter().chain(&cleaned).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "each tensor freed once");
    assert_eq!(r.summary.freed as usize, n);

    // Totals.
    let t = r.summary.totals.unwrap();
    let requested = opts.layout.total_bytes();
    assert_eq!((t.tensors as usize, t.requested_bytes), (n, requested));
    assert!(t.mapped_bytes >= t.requested_bytes);
    assert_eq!(
        t.overhead_bytes,
        t.device_free_drop_bytes - t.requested_bytes as i64
    );
    let backing = opts.strategy.info().backing;
    if gpu.arch.is_unified() {
        // cuMemGetInfo free is MemFree there, and device memory is system memory.
        assert!(
            t.device_free_drop_bytes > requested as i64 / 2,
            "free fell by {} for {requested}",
            t.device_free_drop_bytes
        );
        assert!(t.mem_available_drop_bytes > requested as i64 / 2, "{t:?}");
    } else if backing == cumemlab::memory::Backing::Device {
        // At most 2 MiB of rounding per tensor (small ones share pages), nothing else.
        assert!(
            t.overhead_bytes >= -SLACK
                && t.overhead_bytes
                    <= (t.rounding_2mib_bytes + t.mapped_bytes - requested) as i64 + SLACK,
            "overhead {} vs rounding {}: {t:?}",
            t.overhead_bytes,
            t.rounding_2mib_bytes
        );
        // The host barely moves.
        assert!(
            t.mem_available_drop_bytes.unsigned_abs() < requested / 10,
            "MemAvailable fell by {}",
            t.mem_available_drop_bytes
        );
    }

    // Fragmentation: consistent with its probes, within the free total, and at least the
    // largest tensor freed (that memory is free again).
    if opts.free_pattern != FreePattern::None {
        let f = r.summary.fragmentation.clone().unwrap();
        let res = f.resolution_bytes;
        assert_eq!(res, opts.resolution);
        assert_eq!(f.freed_tensors as usize, freed.len());
        assert_eq!(f.freed_bytes, freed.iter().map(|&i| sizes[i]).sum::<u64>());
        assert!(
            f.largest_bytes <= f.bound_bytes && f.bound_bytes <= f.free_total_bytes,
            "{f:?}"
        );
        if opts.strategy.info().backing == cumemlab::memory::Backing::Host {
            assert_eq!(f.free_total_of, "MemAvailable");
        } else {
            assert_eq!(f.free_total_of, "cuMemGetInfo free");
            assert_eq!(f.free_total_bytes, f.device_free_bytes);
        }
        assert!(
            f.largest_bytes >= f.largest_freed_bytes.min(f.bound_bytes) / res * res,
            "largest {} below the largest tensor freed {}",
            f.largest_bytes,
            f.largest_freed_bytes
        );
        let probes: Vec<_> = r.rows.iter().filter_map(LayoutRow::as_probe).collect();
        assert_eq!(probes.len() as u32, f.attempts);
        for p in &probes {
            assert_eq!(p.bytes % res, 0);
            if p.ok {
                assert!(
                    p.bytes <= f.largest_bytes,
                    "{p:?} succeeded above {}",
                    f.largest_bytes
                );
            } else {
                assert!(
                    p.bytes > f.largest_bytes,
                    "{p:?} failed at or below {}",
                    f.largest_bytes
                );
            }
        }
        if f.reached_bound {
            assert_eq!(f.largest_bytes, f.bound_bytes / res * res);
        } else {
            assert!(
                probes
                    .iter()
                    .any(|p| !p.ok && p.bytes == f.largest_bytes + res),
                "one resolution step above the result failed"
            );
        }
    }

    // Nothing left allocated.
    let residual = r.summary.residual_bytes.unwrap();
    assert!(
        residual.abs() < SLACK,
        "after cleanup free is {residual} below the baseline"
    );
    assert!(
        (end as i64 - start as i64).abs() < SLACK,
        "free memory {start} -> {end}"
    );
}

#[test]
fn preset_13b_sim_every_other() {
    let test = "preset_13b_sim_every_other";
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    let opts = LayoutOptions::new(layout::preset("13b-sim").unwrap());
    let Some((r, start, end)) = measure(test, &gpu, &opts) else {
        return;
    };
    check_run(&gpu, &opts, &r, start, end);
    // every-other frees attention, layer norms and activations.
    let f = r.summary.fragmentation.unwrap();
    assert_eq!(f.freed_bytes, 12_500_000_000);
    assert_eq!(f.largest_freed_bytes, 8_000_000_000);
}

#[test]
fn model_preset_llama_8b_random_half() {
    let test = "model_preset_llama_8b_random_half";
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    let arch = find_model("llama-3.1-8b").unwrap().architecture();
    let kv = KvCache {
        context: 8192,
        batch: 1,
        dtype: Precision::Fp16,
    };
    let mut opts = LayoutOptions::new(layout::from_architecture(&arch, Precision::Bf16, Some(kv)));
    opts.free_pattern = FreePattern::Random(7);
    let Some((r, start, end)) = measure(test, &gpu, &opts) else {
        return;
    };
    assert_eq!(r.summary.allocated, 227);
    check_run(&gpu, &opts, &r, start, end);
    assert_eq!(rows(&r, Phase::Free).len(), 113);
}

fn small(names_sizes: &[(&str, u64)]) -> Layout {
    Layout {
        source: "test".into(),
        notes: vec![],
        tensors: names_sizes
            .iter()
            .map(|&(n, b)| TensorSpec {
                name: n.into(),
                component: n.into(),
                bytes: b,
                dtype: None,
                elements: None,
            })
            .collect(),
    }
}

#[test]
fn vmm_maps_whole_granules() {
    let test = "vmm_maps_whole_granules";
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    let mut opts = LayoutOptions::new(small(&[
        ("a", 3 * MIB + 5),
        ("b", 10 * MIB),
        ("c", 1),
        ("d", GIB + 4096),
    ]));
    opts.strategy = Strategy::Vmm;
    opts.free_pattern = FreePattern::Largest;
    opts.resolution = GIB;
    let Some((r, start, end)) = measure(test, &gpu, &opts) else {
        return;
    };
    let g = cumemlab::memory::vmm::granularity(&gpu.ctx).unwrap();
    for a in allocs(&r) {
        assert_eq!(a.mapped_bytes, a.bytes.div_ceil(g) * g, "{a:?}");
    }
    check_run(&gpu, &opts, &r, start, end);
    let t = r.summary.totals.unwrap();
    if !gpu.arch.is_unified() {
        assert!(
            t.device_free_drop_bytes >= t.mapped_bytes as i64 - SLACK,
            "free fell by {} for {} mapped",
            t.device_free_drop_bytes,
            t.mapped_bytes
        );
    }
}

#[test]
fn managed_takes_memory_only_when_touched() {
    let test = "managed_takes_memory_only_when_touched";
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    let layout = small(&[
        ("a", 512 * MIB),
        ("b", 512 * MIB),
        ("c", 512 * MIB),
        ("d", 512 * MIB),
    ]);
    let mut opts = LayoutOptions::new(layout);
    opts.strategy = Strategy::Managed;
    opts.free_pattern = FreePattern::None;
    let Some((cold, _, _)) = measure(test, &gpu, &opts) else {
        return;
    };
    opts.touch = true;
    let Some((hot, start, end)) = measure(test, &gpu, &opts) else {
        return;
    };
    check_run(&gpu, &opts, &hot, start, end);
    assert!(allocs(&hot).iter().all(|a| a.touch_ms.is_some()));
    let (c, h) = (cold.summary.totals.unwrap(), hot.summary.totals.unwrap());
    let want = (2 * GIB) as i64;
    if !gpu.arch.is_unified() {
        assert!(c.device_free_drop_bytes.abs() < SLACK, "untouched: {c:?}");
        assert!(
            (h.device_free_drop_bytes - want).abs() < SLACK,
            "touched: {h:?}"
        );
    } else {
        assert!(h.mem_available_drop_bytes > want / 2, "touched: {h:?}");
    }
}

#[test]
fn an_oversized_layout_is_refused_before_anything_is_allocated() {
    let test = "an_oversized_layout_is_refused_before_anything_is_allocated";
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    let start = gpu.free_bytes().unwrap();
    let opts = LayoutOptions::new(small(&[("w", GIB), ("everything", 64 << 40)]));
    match layout::measure(&gpu, &opts) {
        Err(Error::Usage(m)) => {
            assert!(
                m.contains("safety ceiling") && m.contains("nothing was allocated"),
                "{m}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The binary: exit 2, one sentence, no result file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refused.json");
    let spec = common::repo().join("tests/fixtures/layout/beyond-any-gpu.toml");
    let o = std::process::Command::new(common::bin())
        .args(["layout", "--quiet", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("safety ceiling") && e.contains("--force"), "{e}");
    assert!(!out.exists(), "no result file for a refused layout");
    let end = gpu.free_bytes().unwrap();
    assert!((end as i64 - start as i64).abs() < SLACK);
}

#[test]
fn the_command_writes_totals_and_fragmentation() {
    let test = "the_command_writes_totals_and_fragmentation";
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    if layout::preflight(
        &gpu,
        &LayoutOptions::new(layout::preset("13b-sim").unwrap()),
    )
    .is_err()
    {
        common::skip(&format!("{test}: 13b-sim does not fit this device"));
        return;
    }
    let start = gpu.free_bytes().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("layout.csv");
    let o = std::process::Command::new(common::bin())
        .args([
            "layout", "--preset", "13b-sim", "--free", "largest", "--quiet", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "totals",
        "drop in cuMemGetInfo free",
        "fragmentation",
        "largest single allocation",
        "What this shows",
    ] {
        assert!(text.contains(want), "stdout lacks {want:?}:\n{text}");
    }
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.lines().any(|l| l.contains(",total,")), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.contains(",fragmentation,") && l.contains(",largest,")),
        "{csv}"
    );
    assert_eq!(csv.lines().filter(|l| l.contains(",alloc,")).count(), 6);
    let end = gpu.free_bytes().unwrap();
    assert!(
        (end as i64 - start as i64).abs() < SLACK,
        "free memory {start} -> {end}"
    );
}

#[test]
fn sigint_mid_layout_frees_everything_and_keeps_the_rows() {
    let test = "sigint_mid_layout_frees_everything_and_keeps_the_rows";
    let Some(gpu) = common::gpu_or_skip(test) else {
        return;
    };
    // Pinned memory: slow enough to interrupt between tensors (page-locking is ~0.3 s per GB).
    if let Err(reason) = Strategy::Pinned.supported(&gpu.attrs) {
        common::skip(&format!("{test}: pinned not supported: {reason}"));
        return;
    }
    let avail = MemInfo::read().unwrap().mem_available;
    if avail < 40 * GIB {
        common::skip(&format!(
            "{test}: needs 40 GiB of MemAvailable, the host has {avail}"
        ));
        return;
    }
    let start = gpu.free_bytes().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("partial.json");
    let child = std::process::Command::new(common::bin())
        .args([
            "layout",
            "--model",
            "llama-3.1-8b",
            "--strategy",
            "pinned",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count_allocs = || {
        std::fs::read_to_string(&out)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| {
                v["rows"]
                    .as_array()
                    .map(|a| a.iter().filter(|r| r["phase"] == "alloc").count())
            })
            .unwrap_or(0)
    };
    let t = Instant::now();
    while count_allocs() < 20 && t.elapsed() < Duration::from_secs(120) {
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
    let rows: Vec<LayoutRow> = serde_json::from_value(v["rows"].clone()).unwrap();
    let allocated: BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.phase() == Phase::Alloc)
        .filter_map(LayoutRow::index)
        .collect();
    assert!(
        allocated.len() >= 20 && allocated.len() < 227,
        "{} allocated",
        allocated.len()
    );
    let freed: Vec<u64> = rows
        .iter()
        .filter(|r| matches!(r.phase(), Phase::Free | Phase::Cleanup))
        .filter_map(LayoutRow::index)
        .collect();
    assert_eq!(
        freed.len(),
        allocated.len(),
        "each allocated tensor freed once"
    );
    assert_eq!(freed.iter().copied().collect::<BTreeSet<u64>>(), allocated);
    let s = layout::summarize(&rows);
    assert!(
        s.after_cleanup_device_free_bytes.is_some(),
        "the last snapshot was written"
    );
    // Pinned memory is host memory: MemAvailable comes back (within host noise).
    let snap = |m: Moment| {
        rows.iter()
            .filter_map(LayoutRow::as_snapshot)
            .find(|s| s.moment == m)
            .map(|s| s.mem_available_bytes)
            .unwrap() as i64
    };
    let back = snap(Moment::AfterCleanup) - snap(Moment::Baseline);
    assert!(
        back.abs() < 2 * GIB as i64,
        "MemAvailable moved by {back} after cleanup"
    );
    let end = gpu.free_bytes().unwrap();
    assert!(
        (end as i64 - start as i64).abs() < SLACK,
        "free memory {start} -> {end}"
    );
}
