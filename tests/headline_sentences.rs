//! The headline's words follow its numbers (issue 16), without a GPU: the "use it when" sentence
//! changes when the numbers do, the table opens report.md/report.html before the findings, no
//! percentage next to a threshold reads as if on the other side of it, a sweep alone says there is
//! no probe, and `compare` puts machines side by side. Fixtures and arithmetic:
//! `tests/headline_support`.

mod common;
mod headline_support;

use cumemlab::experiments::lab::{self, LabResults};
use cumemlab::experiments::sweep::headline;
use cumemlab::report::markdown::parse_markdown_tables;
use headline_support::*;
use serde_json::{Value, json};

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
    let h = &r.headlines()[0];
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
    let hs = r.headlines();
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
