//! The headline table ("what memory costs on this machine", issue 16), without a GPU: rendered
//! from the committed H200 lab results (`tests/fixtures/results/h200-2026-11-26-lab-old-build/results.json`) and from
//! a GB10-shaped fixture that is CONSTRUCTED here (made-up numbers with the shape of a unified-
//! memory machine: `pageable` reachable by the GPU, every host strategy at near device bandwidth,
//! a probe that ends in an out-of-memory failure; not a measurement). Every numeric cell is
//! checked against a value the test computes itself from the raw JSON rows (its own least-squares
//! formula, its own per-GiB arithmetic), to the digits printed. The "use it when" sentence must
//! change when the numbers do, the table must open report.md/report.html before the findings, and
//! no percentage next to a threshold may read as if on the other side of it.

mod common;

use cumemlab::experiments::headline::{self, Headline, Inputs};
use cumemlab::experiments::info::StrategySupport;
use cumemlab::experiments::lab::{self, LabResults};
use cumemlab::experiments::probe::ProbeRow;
use cumemlab::experiments::sweep::SweepRow;
use cumemlab::report::markdown::parse_markdown_tables;
use serde_json::{Value, json};

const GIB: f64 = 1073741824.0;

fn h200_path() -> std::path::PathBuf {
    common::repo().join("tests/fixtures/results/h200-2026-11-26-lab-old-build/results.json")
}

fn h200() -> LabResults {
    LabResults::read(&h200_path()).unwrap()
}

fn h200_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(h200_path()).unwrap()).unwrap()
}

// ------------------------------------------------------------ expected values, from raw JSON

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn rows_of<'a>(sweep: &'a [Value], st: &str, phase: &str) -> Vec<&'a Value> {
    sweep
        .iter()
        .filter(|r| r["device"] == 0 && r["strategy"] == st && r["phase"] == phase)
        .collect()
}

fn at<'a>(sweep: &'a [Value], st: &str, phase: &str, bytes: f64) -> Option<&'a Value> {
    rows_of(sweep, st, phase)
        .into_iter()
        .find(|r| f(r, "bytes") == bytes)
}

/// Slope, intercept and the slope's standard error by the uncentred normal equations.
fn fit(points: &[(f64, f64)]) -> (f64, f64, f64) {
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
fn with_spread(v: f64, lo: f64, hi: f64, n: f64) -> Vec<f64> {
    if n > 1.0 && hi > lo {
        vec![v, lo, hi, n]
    } else {
        vec![v, n]
    }
}

/// What a cell must hold: its numbers in order, and text it must start with.
struct Want {
    nums: Vec<f64>,
    starts: &'static str,
}

fn want(nums: Vec<f64>) -> Want {
    Want { nums, starts: "" }
}

/// The expected cells (columns 1..=7) of strategy `st`, from the raw rows.
fn expected(sweep: &[Value], probe: Option<&[Value]>, st: &str) -> Vec<Want> {
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
fn numbers(cell: &str) -> Vec<(f64, i32)> {
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
fn check_table(h: &Headline, sweep: &[Value], probe: Option<&[Value]>) -> usize {
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

#[test]
fn h200_every_cell_equals_the_value_computed_from_results_json() {
    let r = h200();
    let v = h200_json();
    let hs = headline::from_lab(&r);
    assert_eq!(hs.len(), 1);
    let sweep = v["sweep"]["rows"].as_array().unwrap();
    let probe = v["probe"]["rows"].as_array().unwrap();
    let n = check_table(&hs[0], sweep, Some(probe));
    // 8 strategies, each with at least alloc (3), fixed (1), fill and read (3 or more each).
    assert!(n >= 8 * 10, "only {n} numbers checked");
    // The strategy the H200 cannot use is listed with its reason, not as a row.
    assert!(hs[0].rows.iter().all(|r| r.strategy != "pageable"));
    assert_eq!(hs[0].skipped.len(), 1);
    assert!(
        hs[0].skipped[0].starts_with("pageable: ")
            && hs[0].skipped[0].contains("PAGEABLE_MEMORY_ACCESS = 0"),
        "{:?}",
        hs[0].skipped
    );
    let ceil = hs[0].ceiling.as_ref().unwrap();
    assert!(ceil.what.starts_with("cuMemsetD32 at 34.8 GiB"), "{ceil:?}");
}

// ------------------------------------------------------------ the constructed GB10-shaped fixture

/// Strategy, alloc ms = a + b * GiB, first touch ms/GiB, CPU touch ms/GiB, fill GB/s.
type Plan = (&'static str, f64, f64, f64, Option<f64>, f64);

/// A CONSTRUCTED GB10-shaped result (numbers made up with the shape of a unified-memory machine;
/// DESIGN.md's platform table: 273 GB/s LPDDR5x, pageable memory reachable by the GPU): four sizes,
/// `device`, `managed`, `pinned`, `pageable`, a memset ceiling, and a probe.
fn gb10_fixture() -> (Vec<Value>, Vec<Value>, Vec<Value>) {
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

fn gb10_headline(sweep: &[Value], probe: &[Value], support: &[Value]) -> Headline {
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

#[test]
fn gb10_shaped_fixture_every_cell_equals_the_value_computed_from_its_rows() {
    let (sweep, probe, support) = gb10_fixture();
    let h = gb10_headline(&sweep, &probe, &support);
    let n = check_table(&h, &sweep, Some(&probe));
    assert!(n >= 4 * 10, "only {n} numbers checked");
    assert_eq!(
        h.skipped,
        vec!["vmm: constructed: this fixture leaves vmm out to show a skipped line".to_string()]
    );
    // The rules on this shape: device populates at allocation; the others fault on first touch;
    // pageable and managed allocate for almost nothing; the device figure is a real limit.
    let by = |st: &str| h.rows.iter().find(|r| r.strategy == st).unwrap();
    assert!(
        by("pageable")
            .use_when
            .contains("allocations must be cheapest"),
        "{}",
        by("pageable").use_when
    );
    assert!(!by("managed").use_when.contains("cheapest"));
    assert!(by("pinned").use_when.contains("allocated once and reused"));
    assert!(
        by("device")
            .use_when
            .contains("one allocation must be as large as possible (104.25 GiB"),
        "{}",
        by("device").use_when
    );
    assert!(!by("device").use_when.contains("stopped before a failure"));
    // CPU first touch: pinned 95 ms/GiB is the lowest of 120, 95 and 110.
    assert!(by("pinned").use_when.contains("the fastest here at n=1"));
    assert!(!by("managed").use_when.contains("the fastest here"));
}

// ------------------------------------------------------------ the sentence follows the numbers

fn sentence(r: &LabResults, st: &str) -> String {
    headline::from_lab(r)[0]
        .rows
        .iter()
        .find(|x| x.strategy == st)
        .unwrap()
        .use_when
        .clone()
}

fn mutate(r: &mut LabResults, st: &str, phase: &str, f: impl Fn(&mut SweepRow)) {
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

#[test]
fn the_use_it_when_sentence_changes_when_the_numbers_do() {
    let base = h200();
    let pinned0 = sentence(&base, "pinned");
    let managed0 = sentence(&base, "managed");
    let device0 = sentence(&base, "device");
    assert!(pinned0.contains("allocated once and reused"), "{pinned0}");
    assert!(
        managed0.contains("the GPU needs full bandwidth"),
        "{managed0}"
    );

    // Pinned allocation a million times cheaper: it becomes the cheapest to allocate.
    let mut r = base.clone();
    mutate(&mut r, "pinned", "alloc", |x| {
        x.ms_median *= 1e-6;
        x.ms_min *= 1e-6;
        x.ms_max *= 1e-6;
    });
    let pinned1 = sentence(&r, "pinned");
    assert_ne!(pinned1, pinned0);
    assert!(
        pinned1.contains("allocations must be cheapest"),
        "{pinned1}"
    );
    assert!(!sentence(&r, "managed+prefetch").contains("cheapest"));

    // Managed bandwidth a twentieth: its traffic is now "light", with the new percentages.
    let mut r = base.clone();
    for ph in ["fill", "read"] {
        mutate(&mut r, "managed", ph, |x| {
            x.gbps = x.gbps.map(|g| g / 20.0);
        });
    }
    let managed1 = sentence(&r, "managed");
    assert_ne!(managed1, managed0);
    assert!(
        managed1.contains("GPU traffic to it is light") && !managed1.contains("full bandwidth"),
        "{managed1}"
    );

    // Device fill and read just under the 90% rule: the printed percentages stay below 90.
    let mut r = base.clone();
    let big = 37312528384u64;
    let ceiling = r
        .sweep
        .as_ref()
        .unwrap()
        .rows
        .iter()
        .find(|x| x.strategy == "device" && x.phase == "baseline_cuMemsetD32" && x.bytes == big)
        .and_then(|x| x.gbps)
        .unwrap();
    for ph in ["fill", "read"] {
        mutate(&mut r, "device", ph, |x| {
            if x.bytes == big {
                x.gbps = Some(ceiling * 0.899_96);
            }
        });
    }
    let device1 = sentence(&r, "device");
    assert_ne!(device1, device0);
    assert!(
        device1.contains("fill 89.996%, read 89.996%") && device1.contains("below 90%"),
        "{device1}"
    );
}

// ------------------------------------------------------------ where the table goes

#[test]
fn the_table_opens_the_report_and_the_findings_follow_it_by_strategy() {
    let r = h200();
    let dir = tempfile::tempdir().unwrap();
    lab::write_report(&r, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let tables = parse_markdown_tables(&md);
    let (title, header, rows) = &tables[0];
    assert!(
        title.starts_with("Table 1: What memory costs on device 0 (NVIDIA H200)"),
        "{title}"
    );
    let h = &headline::from_lab(&r)[0];
    // The numbers as the table, the sentence column as one line per strategy under it.
    let (mut h2, b2) = h.table();
    assert_eq!(h2.pop().as_deref(), Some("use it when"));
    assert_eq!(header, &h2);
    for (got, want) in rows.iter().zip(&b2) {
        assert_eq!(got[..], want[..8]);
        let line = format!("- {}: use it when {}\n", want[0], want[8]);
        let at = md.find(&line).unwrap_or_else(|| panic!("no line {line}"));
        assert!(at > md.find("**Table 1").unwrap() && at < md.find("## Findings").unwrap());
    }
    assert_eq!(rows.len(), b2.len());
    // Right after the title and the intro, before the findings.
    let table_at = md.find("**Table 1: What memory costs").unwrap();
    let findings_at = md.find("## Findings").unwrap();
    assert!(table_at < findings_at);
    assert!(!md[..table_at].contains("**Table") && !md[..table_at].contains("Figure 1"));
    // The findings about one strategy sit under that strategy's name.
    let managed_at = md[findings_at..].find("**managed**").unwrap() + findings_at;
    assert!(
        md[managed_at..].starts_with("**managed**\n\n- Figure 2: managed: the CPU's first touch")
    );
    // Table numbers stay unique.
    let mut nums: Vec<&str> = tables
        .iter()
        .map(|t| t.0.split(':').next().unwrap())
        .collect();
    let n = nums.len();
    nums.dedup();
    assert_eq!(nums.len(), n);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let t = html.find("What memory costs on device 0").unwrap();
    let f = html.find("<h2 id=\"findings\">").unwrap();
    assert!(t < f);
}

#[test]
fn threshold_percentages_do_not_contradict_themselves() {
    let mut r = h200();
    // The selftest fill at 94.96% of cuMemsetD32, which one decimal would print as 95.0%.
    let st = &mut r.selftest.as_mut().unwrap()[0];
    let memset = st.bandwidth[0].gbps.median;
    let fill = st
        .bandwidth
        .iter_mut()
        .find(|b| b.op == "fill kernel")
        .unwrap();
    fill.percent_of_memset = 94.96;
    fill.gbps.median = memset * 0.9496;
    st.fill_reaches_95_percent_of_memset = false;
    // And the sweep's device fill at 1 GiB at 94.96% of its memset.
    let rows = &mut r.sweep.as_mut().unwrap().rows;
    let m = rows
        .iter()
        .find(|x| x.strategy == "device" && x.phase == "baseline_cuMemsetD32" && x.bytes == 1 << 30)
        .and_then(|x| x.gbps)
        .unwrap();
    for x in rows
        .iter_mut()
        .filter(|x| x.strategy == "device" && x.phase == "fill" && x.bytes == 1 << 30)
    {
        x.gbps = Some(m * 0.9496);
    }
    let dir = tempfile::tempdir().unwrap();
    let findings = lab::write_report(&r, dir.path()).unwrap().join("\n");
    assert!(
        findings.contains("the fill kernel reaches 94.96% of cuMemsetD32"),
        "{findings}"
    );
    assert!(
        findings.contains("At 1 GiB the fill kernel reaches 94.96% of cuMemsetD32"),
        "{findings}"
    );
    assert!(!findings.contains("95.0% of cuMemsetD32"), "{findings}");
}

// ------------------------------------------------------------ sweep alone, and compare

#[test]
fn a_sweep_alone_says_there_is_no_probe() {
    let p = common::repo().join("tests/fixtures/results/h200-raw/sweep.json");
    let doc: cumemlab::experiments::sweep::SweepDoc =
        cumemlab::report::sink::read_document(&p).unwrap();
    let hs = headline::from_sweep(&doc);
    assert!(!hs.is_empty());
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let sweep: Vec<Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["device"] == 0)
        .cloned()
        .collect();
    check_table(&hs[0], &sweep, None);
    let text = headline::render_all(&hs);
    assert!(
        text.contains("no probe in these results (a sweep alone)"),
        "{text}"
    );
    assert!(text.contains(": use it when "), "{text}");
}

#[test]
fn compare_puts_gb10_against_h200_in_one_table_first() {
    use cumemlab::experiments::compare::{self, Input};
    let h = h200();
    // The same document with the constructed GB10-shaped rows in place of the H200's.
    let (sweep, probe, _) = gb10_fixture();
    let mut g = h.clone();
    g.environment.host.hostname = "spark (constructed)".into();
    g.environment.devices[0].name = "NVIDIA GB10 (constructed)".into();
    g.sweep.as_mut().unwrap().rows = sweep
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    g.probe.as_mut().unwrap().rows = probe
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let input = |name: &str, results: LabResults| Input {
        path: name.into(),
        kind: "lab".into(),
        results,
    };
    let inputs = vec![input("h200", h), input("gb10", g)];
    let rep = compare::build(&inputs);
    let t = rep.headline.as_ref().unwrap();
    assert_eq!(t.header, ["strategy", "measure", "A", "B", "B/A"]);
    assert!(
        t.uses
            .iter()
            .any(|u| u.starts_with("B, pageable: use it when ")),
        "{:?}",
        t.uses
    );
    // device allocation: A's and B's slopes by this test's own fit, and B over A.
    let hv = h200_json();
    let slope = |rows: &[Value]| {
        let pts: Vec<(f64, f64)> = rows_of(rows, "device", "alloc")
            .iter()
            .map(|r| (f(r, "bytes") / GIB, f(r, "ms_median")))
            .collect();
        fit(&pts).0
    };
    let a = slope(hv["sweep"]["rows"].as_array().unwrap());
    let b = slope(&sweep);
    let line = t
        .rows
        .iter()
        .find(|l| l[0] == "device" && l[1].starts_with("allocation (ms/GiB)"))
        .unwrap();
    for (cell, want) in [(&line[2], a), (&line[3], b), (&line[4], b / a)] {
        let (got, dec) = numbers(cell)[0];
        assert!(
            (got - want).abs() <= 0.5 * 10f64.powi(-dec) * 1.000_001,
            "{cell} against {want}"
        );
    }
    // A strategy only one machine measured says so in the other's column.
    let pageable = t
        .rows
        .iter()
        .find(|l| l[0] == "pageable" && l[1].starts_with("allocation (ms/GiB)"))
        .unwrap();
    assert_eq!(pageable[2], "not measured");
    // First in the terminal output and in compare.md.
    let text = compare::render_text(&rep);
    let first_table = text.find("| strategy").unwrap();
    assert!(text[..first_table].contains("What memory costs on each machine"));
    let dir = tempfile::tempdir().unwrap();
    compare::write(&rep, &inputs, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("compare.md")).unwrap();
    let tables = parse_markdown_tables(&md);
    assert!(
        tables[0]
            .0
            .starts_with("Table 1: What memory costs on each machine")
    );
    assert!(md.find("**Table 1").unwrap() < md.find("## Findings").unwrap());
}

#[test]
fn a_two_size_fit_claims_no_cheapest_and_says_when_it_falls() {
    let (sweep, probe, support) = gb10_fixture();
    // Only 1 and 4 GiB, and pageable's 4 GiB allocation faster than its 1 GiB one.
    let mut two: Vec<Value> = sweep
        .into_iter()
        .filter(|r| f(r, "bytes") <= 4.0 * GIB)
        .collect();
    for r in two
        .iter_mut()
        .filter(|r| r["strategy"] == "pageable" && r["phase"] == "alloc" && f(r, "bytes") > GIB)
    {
        for k in ["ms_median", "ms_min", "ms_max"] {
            r[k] = json!(0.001);
        }
    }
    let h = gb10_headline(&two, &probe, &support);
    let (_, body) = h.table();
    let pageable = body.iter().find(|l| l[0] == "pageable").unwrap();
    assert!(
        pageable[1].contains("(n=2 sizes; negative: no growth with size measurable)"),
        "{pageable:?}"
    );
    // Slope of two points, by hand: (0.001 - a1) / (4 - 1).
    let a1 = f(
        rows_of(&two, "pageable", "alloc")
            .into_iter()
            .find(|r| f(r, "bytes") == GIB)
            .unwrap(),
        "ms_median",
    );
    let (got, dec) = numbers(&pageable[1])[0];
    assert!((got - (0.001 - a1) / 3.0).abs() <= 0.5 * 10f64.powi(-dec) * 1.000_001);
    assert!(
        h.rows.iter().all(|r| !r.use_when.contains("cheapest")),
        "two sizes give no standard error, so no row is called cheapest"
    );
}

/// The two-minute lab caps the CPU-first variant at 1 GiB while managed memory runs to 16 GiB
/// (H200 lab of 2026-11-30): the CPU cell must carry the 1 GiB figure with its size, never say
/// "not host-accessible" of memory the CPU touched, and a negative allocation intercept (a fit
/// over two sizes) is labelled as a fit artefact.
#[test]
fn a_capped_cpu_first_variant_shows_its_own_size_and_negative_intercepts_are_labelled() {
    let path = common::repo().join("docs/results/h200-2026-11-30-lab-a/results.json");
    let r = LabResults::read(&path).unwrap();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let sweep = v["sweep"]["rows"].as_array().unwrap();
    let hs = headline::from_lab(&r);
    let text = hs[0].render_text();
    let (_, body) = hs[0].table();
    let line = |st: &str| body.iter().find(|l| l[0] == st).unwrap().clone();
    for st in ["managed", "managed+advise", "managed+prefetch"] {
        let cpu_rows = rows_of(sweep, st, "cpu_first_touch");
        let biggest = cpu_rows
            .iter()
            .max_by(|a, b| f(a, "bytes").total_cmp(&f(b, "bytes")))
            .unwrap();
        let expect = f(biggest, "ms_median") / (f(biggest, "bytes") / GIB);
        let cell = &line(st)[4];
        assert!(cell.ends_with(" at 1 GiB"), "{st}: {cell}");
        let got = numbers(cell)[0].0;
        assert!(
            (got - expect).abs() <= expect * 5e-3,
            "{st}: {cell} against {expect}"
        );
        assert!(!line(st)[4].contains("host-accessible"), "{text}");
    }
    let reg = line("registered");
    let fixed: f64 = numbers(&reg[2])[0].0;
    assert!(fixed < 0.0 && reg[2].contains("fit artefact"), "{reg:?}");
}
