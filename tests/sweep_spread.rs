//! Repeated fresh allocations in `sweep` (issue 10): `--repeat` is documented, a sweep with n = 3
//! from a fixture renders median [min-max] and CV, findings follow the overlap rule ("slower"
//! only when samples do not overlap, otherwise "indistinguishable at n = 3"), unstable phases and
//! placement gaps are reported, and rows written before `--repeat` still parse.

mod common;

use cumemlab::experiments::env::Environment;
use cumemlab::experiments::lab::LabResults;
use cumemlab::experiments::sweep::{self, Phase, SweepDoc, SweepRow, phase};
use cumemlab::memory::Strategy;
use cumemlab::report::ResultSink;
use cumemlab::report::sink::to_csv;
use cumemlab::stats::Summary;

fn fixture() -> Vec<SweepRow> {
    let path = common::repo().join("tests/fixtures/sweep/n3-rows.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn doc(rows: Vec<SweepRow>) -> SweepDoc {
    let mut sink = ResultSink::new("sweep", Environment::host_only("test".into()), None).unwrap();
    for r in rows {
        sink.push(r).unwrap();
    }
    sink.doc
}

#[test]
fn sweep_help_documents_repeat_and_the_seed_preset() {
    let out = common::run(&["sweep", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(help.contains("--repeat <repeat>"), "{help}");
    assert!(
        help.contains("fresh allocations per strategy and size"),
        "{help}"
    );
    assert!(help.contains("[default: 3]"), "{help}");
    assert!(
        help.contains("--preset") && help.contains("80 gb (1e9 bytes"),
        "{help}"
    );
}

#[test]
fn repeat_below_one_is_one_sentence_and_exit_2() {
    let out = common::run(&["sweep", "--repeat", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--repeat"), "{err}");
}

#[test]
fn the_fixture_rows_agree_with_their_samples() {
    // The fixture's medians and CVs were computed outside Rust; Summary must agree.
    for r in fixture() {
        let s = Summary::of(&r.samples_ms).unwrap();
        assert_eq!(s.runs, r.runs, "{}", r.phase);
        assert!(
            (s.median - r.ms_median).abs() < 1e-12,
            "{} {}",
            r.strategy,
            r.phase
        );
        assert!(
            (s.min, s.max) == (r.ms_min, r.ms_max),
            "{} {}",
            r.strategy,
            r.phase
        );
        assert!((s.cv - r.ms_cv).abs() < 1e-9, "{} {}", r.strategy, r.phase);
    }
}

#[test]
fn a_sweep_with_n_3_renders_its_spread_and_respects_it() {
    let text = sweep::render(&doc(fixture()));
    // Median [min-max] in the tables.
    assert!(text.contains("1.740 [1.610-1.900]"), "{text}");
    assert!(text.contains("1518.00 [998.00-1670.00]"), "{text}");
    // Bandwidth cells: median [slowest-fastest] and CV between allocations / within one.
    let fill = fixture()
        .into_iter()
        .find(|r| r.strategy == "device" && r.phase == phase::FILL)
        .unwrap();
    let cell = sweep::bandwidth_cell(&fill).unwrap();
    assert!(cell.starts_with("4292.8 ["), "{cell}");
    assert!(cell.ends_with("(5.6 / 0.1)"), "{cell}");
    assert!(text.contains(&cell), "{text}");

    // Overlapping samples: indistinguishable; separate samples: slower or faster.
    assert!(
        text.contains("pool 1.80 [1.50-2.20] ms, indistinguishable at n = 3"),
        "{text}"
    );
    assert!(
        text.contains("managed 0.06 [0.05-0.07] ms, faster"),
        "{text}"
    );
    assert!(
        text.contains("managed 1518.00 [998.00-1670.00] ms, slower"),
        "{text}"
    );
    assert!(
        text.contains("pool 10.80 [10.20-11.50] ms, indistinguishable at n = 3"),
        "{text}"
    );
    assert!(
        text.contains("every sample of A is above every sample of B"),
        "{text}"
    );

    // Unstable: managed first touch (CV 25%) is flagged with a likely reason; device's is not.
    let unstable = text
        .lines()
        .find(|l| l.contains("Unstable (CV above 10%"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        unstable.contains("managed gpu_first_touch at 16 GiB (CV 25.3%")
            && unstable.contains("host memory being populated"),
        "{unstable}"
    );
    assert!(!unstable.contains("device gpu_first_touch"), "{unstable}");
    // A CV a hair above the threshold is printed with the digits that show it is above.
    assert_eq!(sweep::pct_near(10.0004, 10.0), "10.0004%");
    assert_eq!(sweep::pct_near(94.96, 95.0), "94.96%");
    assert_eq!(sweep::pct_near(25.26, 10.0), "25.3%");

    // Placement: between-allocation spread reported apart from run-to-run spread.
    assert!(
        text.contains("device fill at 16 GiB: allocations differ by 5.6%")
            && text.contains("runs on one allocation differ by 0.1%"),
        "{text}"
    );
    assert!(
        !text.contains("managed fill at 16 GiB: allocations differ"),
        "{text}"
    );

    // 94.95% of cuMemsetD32 is printed so that it does not read as 95.0% next to "BELOW".
    assert!(text.contains("reaches 94.95% of cuMemsetD32"), "{text}");
    assert!(text.contains("BELOW the 95%"), "{text}");
}

#[test]
fn json_keeps_the_samples_and_csv_keeps_the_summary() {
    let rows = fixture();
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(json["samples_ms"].as_array().unwrap().len(), 3);
    assert_eq!(json["allocations"], 3);
    let csv = String::from_utf8(to_csv(&rows).unwrap()).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("device,strategy,bytes,phase,runs,ms_median,ms_min,ms_max,ms_cv,"),
        "{header}"
    );
    assert!(
        !header.contains("samples_ms") && !header.contains("alloc_gbps"),
        "{header}"
    );
    assert!(
        header.contains("between_alloc_cv,within_alloc_cv"),
        "{header}"
    );
    let back: Vec<SweepRow> = csv::Reader::from_reader(csv.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back.len(), rows.len());
    assert_eq!((back[0].ms_median, back[0].runs), (1.74, 3));
    assert!(back[0].samples_ms.is_empty());
    // And the JSON writer still writes arrays after a CSV was written on this thread.
    let again = serde_json::to_value(&rows[0]).unwrap();
    assert!(again["samples_ms"].is_array());
}

#[test]
fn rows_written_before_repeat_still_parse_and_render() {
    // A row as sweep wrote it before --repeat: no allocations, samples or split.
    let old = r#"{"device":0,"strategy":"device","bytes":1073741824,"phase":"alloc","runs":1,
        "ms_median":0.5,"ms_min":0.5,"ms_max":0.5,"ms_cv":0.0,"gbps":null,"gbps_traffic":null,
        "pages":null,"us_per_page":null,"pages_per_s":null,"threads":null,
        "pages_per_s_per_thread":null,"delta_device_free_bytes":-1073741824,
        "delta_mem_free_bytes":0,"delta_mem_available_bytes":0,"delta_cached_bytes":0,
        "delta_rss_bytes":0,"mismatches":null,"note":null}"#;
    let r: SweepRow = serde_json::from_str(old).unwrap();
    assert!(r.samples_ms.is_empty() && r.allocations.is_none() && r.between_alloc_cv.is_none());
    assert_eq!(sweep::spread_ms(&r, 3), "0.500");
    // The committed H200 lab (one allocation per phase) loads and renders.
    let lab = LabResults::read(
        &common::repo().join("tests/fixtures/results/h200-2026-11-26-lab-old-build"),
    )
    .unwrap();
    let rows = lab.sweep.unwrap().rows;
    assert!(rows.iter().all(|r| r.samples_ms.is_empty()));
    let text = sweep::render(&doc(rows));
    assert!(text.contains("allocation time, ms"), "{text}");
}

#[test]
fn the_lab_report_shows_the_spread_in_tables_figures_and_findings() {
    use cumemlab::experiments::lab::{BudgetPlan, LabSettings, Section, report};
    let settings = LabSettings {
        budget_minutes: 2.0,
        devices: vec![0],
        target: None,
        with_cache_effect: false,
        skip: Vec::new(),
        headroom_bytes: 8 << 30,
        plan: BudgetPlan {
            budget_s: 120.0,
            estimated_s: 70.0,
            scaled: vec!["sweep: costs linear in size measured as per-GiB rates".into()],
            ..BudgetPlan::default()
        },
        no_gpu_reason: None,
    };
    let mut lab = LabResults::new(Environment::host_only("test".into()), settings);
    lab.sweep = Some(Section {
        rows: fixture(),
        skipped: vec!["device 0 pinned@16 GiB: capped: pinning ...".into()],
        notes: Vec::new(),
    });
    let built = report::build(&lab).unwrap();
    let table = built
        .page
        .tables()
        .find(|t| t.title.starts_with("Allocation time, ms: median [min-max]"))
        .expect("an allocation table with its spread");
    let device = table.rows.iter().find(|r| r[0] == "device").unwrap();
    assert_eq!(device[1], "1.740 [1.610-1.900]");
    // The touch and bandwidth figures draw min-max whiskers (black, 2 px) over the bars.
    for name in ["First against second touch", "Bandwidth per strategy"] {
        let fig = built
            .page
            .figures()
            .find(|f| f.title.starts_with(name))
            .unwrap_or_else(|| panic!("no figure {name}"));
        assert!(
            fig.svg
                .matches(r##"stroke="#000000" stroke-width="2""##)
                .count()
                >= 3,
            "{name}: no whiskers"
        );
        assert!(fig.caption.contains("whiskers"), "{}", fig.caption);
    }
    let findings = built.findings.join("\n");
    assert!(
        findings.contains("indistinguishable at n = 3"),
        "{findings}"
    );
    assert!(
        findings.contains("allocations differ by 5.6%"),
        "{findings}"
    );
    let md = cumemlab::report::markdown::to_markdown(&built.page, "plots");
    assert!(md.contains("planned 70 s"), "{md}");
}

#[test]
fn the_seed_preset_reports_per_gb_rates_and_sizes_that_allocate_faster() {
    use cumemlab::units::GB;
    // Allocation times shaped like the GB10 table: 60 GB slower than 70 GB, samples apart.
    let mk = |gb: u64, ms: [f64; 3]| {
        SweepRow::new(0, Strategy::Device, gb * GB, Phase::Alloc).times(&ms)
    };
    let rows = vec![
        mk(10, [350.0, 352.0, 349.0]),
        mk(50, [1750.0, 1760.0, 1745.0]),
        mk(60, [3100.0, 3110.0, 3120.0]),
        mk(70, [2620.0, 2630.0, 2640.0]),
        mk(80, [2770.0, 2780.0, 2790.0]),
    ];
    let f = sweep::findings(&rows, 0).join("\n");
    assert!(
        f.contains("device: allocation time per GB (1e9 bytes), ms: 10 GB"),
        "{f}"
    );
    assert!(f.contains("35.00 [34.90-35.20]"), "{f}");
    assert!(f.contains("not monotonic: 70 GB took 2630.0 [2620.0-2640.0] ms, less than 3110.0 [3100.0-3120.0] at 60 GB"), "{f}");
    // Overlapping samples are no dip.
    let rows = vec![
        mk(10, [350.0, 352.0, 349.0]),
        mk(20, [700.0, 720.0, 690.0]),
        mk(30, [1000.0, 1100.0, 1050.0]),
        mk(40, [1040.0, 1200.0, 1400.0]),
    ];
    let f = sweep::findings(&rows, 0).join("\n");
    assert!(f.contains("no larger size allocated faster"), "{f}");
}

#[test]
fn help_lists_the_strategies_of_the_registry() {
    // Help is wrapped at spaces; compare with the whitespace folded.
    let fold = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let sweep = fold(common::run_ok(&["sweep", "--help"]));
    let all = Strategy::keys(&Strategy::all());
    assert!(sweep.contains(&format!("Keys: {all}.")), "{sweep}");
    // probe's default list is the registry's entries that are not variants of another.
    let probe = fold(common::run_ok(&["probe", "--help"]));
    let defaults = Strategy::keys(&cumemlab::experiments::probe::default_strategies());
    assert!(
        probe.contains(&format!("Default: {defaults} (those the device supports)")),
        "{probe}"
    );
    assert!(!defaults.contains("managed+prefetch"), "{defaults}");
}
