//! The fixtures and the independent arithmetic of the headline tests (`tests/headline.rs`: every
//! cell against values computed here from the raw rows; `tests/headline_sentences.rs`: the
//! sentences, thresholds and `compare`). Shared by both test binaries; each uses a part.
#![allow(dead_code)]

use cumemlab::experiments::info::StrategySupport;
use cumemlab::experiments::lab::LabResults;
use cumemlab::experiments::probe::ProbeRow;
use cumemlab::experiments::sweep::SweepRow;
use cumemlab::experiments::sweep::headline::{self, Headline, Inputs};
use serde_json::{Value, json};

use super::common;

pub const GIB: f64 = 1073741824.0;

pub fn h200_path() -> std::path::PathBuf {
    common::repo().join("tests/fixtures/results/h200-2026-11-26-lab-old-build/results.json")
}

pub fn h200() -> LabResults {
    LabResults::read(&h200_path()).unwrap()
}

pub fn h200_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(h200_path()).unwrap()).unwrap()
}

// ------------------------------------------------------------ expected values, from raw JSON

pub fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

pub fn rows_of<'a>(sweep: &'a [Value], st: &str, phase: &str) -> Vec<&'a Value> {
    sweep
        .iter()
        .filter(|r| r["device"] == 0 && r["strategy"] == st && r["phase"] == phase)
        .collect()
}

pub fn at<'a>(sweep: &'a [Value], st: &str, phase: &str, bytes: f64) -> Option<&'a Value> {
    rows_of(sweep, st, phase)
        .into_iter()
        .find(|r| f(r, "bytes") == bytes)
}

/// Slope, intercept and the slope's standard error by the uncentred normal equations.
pub fn fit(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = points.len() as f64;
    let (sx, sy): (f64, f64) = (
        points.iter().map(|p| p.0).sum(),
        points.iter().map(|p| p.1).sum(),
    );
    let sxx: f64 = points.iter().map(|p| p.0 * p.0).sum();
    let sxy: f64 = points.iter().map(|p| p.0 * p.1).sum();
    let slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    let icpt = (sy - slope * sx) / n;
    let ssr: f64 = points
        .iter()
        .map(|p| (p.1 - icpt - slope * p.0).powi(2))
        .sum();
    let se = (ssr / (n - 2.0) / (sxx - sx * sx / n)).sqrt();
    (slope, icpt, se)
}

/// Value, then min and max when n > 1 and they differ, then n.
pub fn with_spread(v: f64, lo: f64, hi: f64, n: f64) -> Vec<f64> {
    if n > 1.0 && hi > lo {
        vec![v, lo, hi, n]
    } else {
        vec![v, n]
    }
}

/// What a cell must hold: its numbers in order, and text it must start with.
pub struct Want {
    pub nums: Vec<f64>,
    pub starts: &'static str,
}

pub fn want(nums: Vec<f64>) -> Want {
    Want { nums, starts: "" }
}

/// The expected cells (columns 1..=7) of strategy `st`, from the raw rows.
pub fn expected(sweep: &[Value], probe: Option<&[Value]>, st: &str) -> Vec<Want> {
    let allocs = rows_of(sweep, st, "alloc");
    let pts: Vec<(f64, f64)> = allocs
        .iter()
        .map(|r| (f(r, "bytes") / GIB, f(r, "ms_median")))
        .collect();
    let (slope, icpt, se) = fit(&pts);
    let big = allocs.iter().map(|r| f(r, "bytes")).fold(0.0, f64::max);
    let device_big = rows_of(sweep, "device", "alloc")
        .iter()
        .map(|r| f(r, "bytes"))
        .fold(0.0, f64::max);
    let ceiling = f(
        at(sweep, "device", "baseline_cuMemsetD32", device_big).unwrap(),
        "gbps",
    );
    let g = big / GIB;
    let per_gib = |r: &Value| {
        with_spread(
            f(r, "ms_median") / g,
            f(r, "ms_min") / g,
            f(r, "ms_max") / g,
            f(r, "runs"),
        )
    };
    let gpu = if let Some(p) = at(sweep, st, "prefetch", big) {
        Want {
            nums: per_gib(p),
            starts: "populated by prefetch:",
        }
    } else {
        let first = at(sweep, st, "gpu_first_touch", big).unwrap();
        let second = at(sweep, st, "gpu_second_touch", big).unwrap();
        let extra = f(first, "ms_median") - f(second, "ms_median");
        if extra > 0.5 * f(first, "ms_median") && extra > 1.0 {
            want(with_spread(
                extra / g,
                (f(first, "ms_min") - f(second, "ms_max")) / g,
                (f(first, "ms_max") - f(second, "ms_min")) / g,
                f(first, "runs").min(f(second, "runs")),
            ))
        } else {
            Want {
                nums: vec![],
                starts: "populated at allocation",
            }
        }
    };
    let cpu = match at(sweep, st, "cpu_first_touch", big) {
        Some(r) => want(per_gib(r)),
        None => Want {
            nums: vec![],
            starts: "not host-accessible",
        },
    };
    let bw = |phase: &str| {
        let r = at(sweep, st, phase, big).unwrap();
        let v = f(r, "gbps");
        let med = f(r, "ms_median");
        let mut nums = with_spread(
            v,
            v * med / f(r, "ms_max"),
            v * med / f(r, "ms_min"),
            f(r, "runs"),
        );
        nums.push(100.0 * v / ceiling);
        want(nums)
    };
    let largest = match probe.and_then(|p| {
        p.iter()
            .find(|x| x["device"] == 0 && x["strategy"] == st && x["kind"] == "single")
    }) {
        Some(p) => Want {
            nums: vec![
                f(p, "max_bytes") / GIB,
                100.0 * f(p, "max_bytes") / f(p, "device_free_bytes"),
            ],
            starts: if p["stop_reason"] == "failure" {
                ""
            } else {
                ">= "
            },
        },
        None => Want {
            nums: vec![],
            starts: if probe.is_some() {
                "not probed"
            } else {
                "no probe"
            },
        },
    };
    vec![
        want(vec![slope, se, pts.len() as f64]),
        want(vec![icpt]),
        gpu,
        cpu,
        bw("fill"),
        bw("read"),
        largest,
    ]
}

/// The numbers of a cell, each with its printed decimals ("n=5" gives 5; the en dash of a range
/// is not a minus sign).
pub fn numbers(cell: &str) -> Vec<(f64, i32)> {
    let b: Vec<char> = cell.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let neg = b[i] == '-' && i + 1 < b.len() && b[i + 1].is_ascii_digit();
        if b[i].is_ascii_digit() || neg {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == '.') {
                i += 1;
            }
            let s: String = b[start..i].iter().collect();
            let s = s.trim_end_matches('.');
            let dec = s.split_once('.').map_or(0, |(_, d)| d.len() as i32);
            out.push((s.parse().unwrap(), dec));
        } else {
            i += 1;
        }
    }
    out
}

/// Every cell of every row of `h` against the raw rows; returns the number of values checked.
pub fn check_table(h: &Headline, sweep: &[Value], probe: Option<&[Value]>) -> usize {
    let (header, body) = h.table();
    assert_eq!(header.len(), 9, "{header:?}");
    let mut strategies: Vec<String> = Vec::new();
    for r in sweep
        .iter()
        .filter(|r| r["device"] == 0 && r["phase"] == "alloc")
    {
        let s = r["strategy"].as_str().unwrap().to_string();
        if !strategies.contains(&s) {
            strategies.push(s);
        }
    }
    let got: Vec<&str> = body.iter().map(|l| l[0].as_str()).collect();
    assert_eq!(
        got, strategies,
        "one row per measured strategy, in run order"
    );
    let mut checked = 0;
    for line in &body {
        let st = &line[0];
        for (col, w) in expected(sweep, probe, st).iter().enumerate() {
            let cell = &line[col + 1];
            assert!(
                cell.starts_with(w.starts),
                "{st} / {}: {cell:?} should start with {:?}",
                header[col + 1],
                w.starts
            );
            let nums = numbers(cell);
            assert_eq!(
                nums.len(),
                w.nums.len(),
                "{st} / {}: {cell:?} against {:?}",
                header[col + 1],
                w.nums
            );
            for ((g, dec), e) in nums.iter().zip(&w.nums) {
                let tol = 0.5 * 10f64.powi(-dec) * 1.000_001 + 1e-12;
                assert!(
                    (g - e).abs() <= tol,
                    "{st} / {}: {cell:?}: printed {g} but the rows give {e}",
                    header[col + 1]
                );
                checked += 1;
            }
        }
        assert!(line[8].ends_with('.') && !line[8].is_empty(), "{line:?}");
    }
    checked
}

// ------------------------------------------------------------ the constructed GB10-shaped fixture

/// Strategy, alloc ms = a + b * GiB, first touch ms/GiB, CPU touch ms/GiB, fill GB/s.
type Plan = (&'static str, f64, f64, f64, Option<f64>, f64);

/// A CONSTRUCTED GB10-shaped result (numbers made up with the shape of a unified-memory machine;
/// DESIGN.md's platform table: 273 GB/s LPDDR5x, pageable memory reachable by the GPU): four sizes,
/// `device`, `managed`, `pinned`, `pageable`, a memset ceiling, and a probe.
pub fn gb10_fixture() -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let sizes = [1.0, 4.0, 16.0, 32.0];
    let mut sweep = Vec::new();
    let mut row = |st: &str, phase: &str, g: f64, ms: [f64; 3], runs: u32, gbps: Option<f64>| {
        sweep.push(json!({
            "device": 0, "strategy": st, "bytes": (g * GIB) as u64, "phase": phase, "runs": runs,
            "ms_median": ms[0], "ms_min": ms[1], "ms_max": ms[2], "ms_cv": 0.01, "gbps": gbps,
        }));
    };
    let plan: [Plan; 4] = [
        ("device", 0.4, 41.0, 0.2, None, 231.0),
        ("managed", 0.05, 0.0004, 38.0, Some(120.0), 226.0),
        ("pinned", 3.0, 190.0, 0.3, Some(95.0), 224.0),
        ("pageable", 0.02, 0.0001, 44.0, Some(110.0), 219.0),
    ];
    for (st, a, b, touch, cpu, fill) in plan {
        for (k, g) in sizes.iter().enumerate() {
            // A little noise, so the fit has a standard error.
            let noise = 1.0 + 0.03 * ((k as f64) - 1.5);
            let al = (a + b * g) * noise;
            row(st, "alloc", *g, [al, al, al], 1, None);
            let warm = 0.9 * g / 100.0;
            let first = warm + touch * g;
            row(st, "gpu_first_touch", *g, [first, first, first], 1, None);
            row(st, "gpu_second_touch", *g, [warm, warm, warm], 1, None);
            if let Some(c) = cpu {
                let ms = c * g;
                row(st, "cpu_first_touch", *g, [ms, ms, ms], 1, None);
            }
            let ms = g * GIB / 1e9 / fill * 1e3;
            row(st, "fill", *g, [ms, ms * 0.99, ms * 1.04], 5, Some(fill));
            let rd = fill * 1.05;
            let ms = g * GIB / 1e9 / rd * 1e3;
            row(st, "read", *g, [ms, ms * 0.98, ms * 1.01], 5, Some(rd));
            if st == "device" {
                let m = 250.0;
                let ms = g * GIB / 1e9 / m * 1e3;
                row(st, "baseline_cuMemsetD32", *g, [ms, ms, ms], 5, Some(m));
            }
        }
    }
    let probe_row = |st: &str, max_gib: f64, stop: &str| {
        json!({
            "device": 0, "strategy": st, "kind": "single", "max_bytes": (max_gib * GIB) as u64,
            "stop_reason": stop, "stop_detail": "", "attempts": 9, "failures": 1, "touched": false,
            "step_bytes": 268435456u64, "ceiling_bytes": 0, "limit_bytes": 0,
            "device_free_bytes": (108.0 * GIB) as u64, "device_total_bytes": (119.7 * GIB) as u64,
            "mem_free_bytes": 0, "mem_available_bytes": 0, "cached_bytes": 0,
            "swap_free_bytes": 0, "elapsed_ms": 1.0, "tried": "",
        })
    };
    let probe = vec![
        probe_row("device", 104.25, "failure"),
        probe_row("managed", 99.5, "safety_ceiling"),
        probe_row("pinned", 80.0, "max_cap"),
    ];
    let support = vec![json!({"device": 0, "strategy": "vmm", "supported": false,
        "reason": "constructed: this fixture leaves vmm out to show a skipped line"})];
    (sweep, probe, support)
}

pub fn gb10_headline(sweep: &[Value], probe: &[Value], support: &[Value]) -> Headline {
    let rows: Vec<SweepRow> = sweep
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let probe: Vec<ProbeRow> = probe
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let support: Vec<StrategySupport> = support
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    headline::build(
        &Inputs {
            rows: &rows,
            probe: Some(&probe),
            selftest: &[],
            support: &support,
            skipped: &[],
        },
        0,
        "NVIDIA GB10 (constructed fixture)",
    )
}

// ------------------------------------------------------------ the sentence follows the numbers

pub fn sentence(r: &LabResults, st: &str) -> String {
    r.headlines()[0]
        .rows
        .iter()
        .find(|x| x.strategy == st)
        .unwrap()
        .use_when
        .clone()
}

pub fn mutate(r: &mut LabResults, st: &str, phase: &str, f: impl Fn(&mut SweepRow)) {
    let rows = &mut r.sweep.as_mut().unwrap().rows;
    let mut n = 0;
    for x in rows
        .iter_mut()
        .filter(|x| x.strategy == st && x.phase == phase)
    {
        f(x);
        n += 1;
    }
    assert!(n > 0, "no {st} {phase} rows");
}
