//! Snapshot tests of the human renderers of `layout`, `cache`, `cache effect`, `selftest` and
//! `info`, and of their CSV headers, from committed result documents (real H200 runs under
//! `docs/results` and `tests/fixtures/results`); plus round trips of the typed rows through the
//! committed files, which prove that typing the rows (phase enums, selftest operations, cache
//! labels) left the JSON and CSV formats byte for byte as they were.
//!
//! The expected texts are plain files under `tests/fixtures/snapshots`: a change to a renderer
//! shows up as a diff there, for review. After an intended change, rewrite them with
//! `UPDATE_SNAPSHOTS=1 cargo test --test snapshots` and commit the diff. No GPU needed.

mod common;

use std::path::PathBuf;

use cumemlab::experiments::cache::{self, CacheDoc, EffectDoc};
use cumemlab::experiments::info::{self, InfoReport};
use cumemlab::experiments::layout::{self, LayoutDoc, LayoutRow};
use cumemlab::experiments::selftest::{self, SelftestReport};
use cumemlab::report::sink::{to_csv, to_json};

fn repo_file(rel: &str) -> PathBuf {
    common::repo().join(rel)
}

fn read(rel: &str) -> String {
    let p = repo_file(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn load<T: serde::de::DeserializeOwned>(rel: &str) -> T {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn header(csv: &[u8]) -> String {
    String::from_utf8_lossy(csv)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

const LAYOUT_DOCS: [&str; 2] = [
    "docs/results/h200-2026-11-26-commands/layout-13b-sim.json",
    "docs/results/h200-2026-11-26-commands/layout-llama-3.1-8b.json",
];

#[test]
fn layout_tables_from_committed_runs() {
    for (rel, name) in LAYOUT_DOCS
        .iter()
        .zip(["layout-13b-sim.txt", "layout-llama-3.1-8b.txt"])
    {
        let doc: LayoutDoc = load(rel);
        assert!(doc.rows.len() > 10, "{rel}: {} rows", doc.rows.len());
        common::snapshot(name, &layout::render(&doc));
    }
    let dry = layout::render_layout(&layout::preset("13b-sim").unwrap());
    common::snapshot("layout-dry-run-13b-sim.txt", &dry);
    let arch = cumemlab::plan::find_model("llama-3.1-8b")
        .unwrap()
        .architecture();
    let kv = layout::KvCache {
        context: 8192,
        batch: 1,
        dtype: cumemlab::plan::Precision::Fp16,
    };
    for (p, name) in [
        (
            cumemlab::plan::Precision::Bf16,
            "layout-dry-run-llama-3.1-8b-bf16.txt",
        ),
        (
            cumemlab::plan::Precision::Nvfp4,
            "layout-dry-run-llama-3.1-8b-nvfp4.txt",
        ),
    ] {
        let l = layout::from_architecture(&arch, p, Some(kv));
        common::snapshot(name, &layout::render_layout(&l));
    }
    let rows: Vec<LayoutRow> = load::<LayoutDoc>(LAYOUT_DOCS[0]).rows;
    common::snapshot("layout-csv-header.txt", &header(&to_csv(&rows).unwrap()));
}

/// The `"rows": [...]` of a pretty document, re-indented as a top-level array.
fn rows_text(doc: &str) -> String {
    let start = doc.find("\n  \"rows\": [\n").expect("a rows array") + "\n  \"rows\": ".len();
    let end = start + doc[start..].find("\n  ],\n").expect("the end of rows") + "\n  ]".len();
    let mut out: String = doc[start..end]
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

#[test]
fn layout_rows_read_and_write_the_committed_json_unchanged() {
    for rel in LAYOUT_DOCS {
        let text = read(rel);
        let doc: LayoutDoc = load(rel);
        let again = String::from_utf8(to_json(&doc.rows).unwrap()).unwrap();
        assert_eq!(
            again,
            rows_text(&text),
            "{rel}: the typed rows do not write the file's rows back byte for byte"
        );
        // And the typed summary agrees with the one the run wrote next to its rows (lab).
        let s = layout::summarize(&doc.rows);
        assert_eq!(s.allocated, s.freed, "{rel}: every tensor freed");
        assert!(s.totals.is_some() && s.fragmentation.is_some(), "{rel}");
    }
}

#[test]
fn layout_rows_read_and_write_the_committed_csv_unchanged() {
    for rel in [
        "docs/results/h200-2026-11-30-lab-a/layout.csv",
        "docs/results/h200-2026-11-30-lab-b/layout.csv",
        "tests/fixtures/results/h200-2026-11-26-lab-old-build/layout.csv",
    ] {
        let text = read(rel);
        let rows: Vec<LayoutRow> = csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(rows.len() > 10, "{rel}");
        let again = String::from_utf8(to_csv(&rows).unwrap()).unwrap();
        assert_eq!(again, text, "{rel}: not written back byte for byte");
    }
}

#[test]
fn layout_rows_refuse_an_unknown_phase_and_a_phase_without_its_fields() {
    let good = r#"{"device":0,"strategy":"device","phase":"probe","index":null,"name":null,"component":null,"dtype":null,"elements":null,"bytes":1,"mapped_bytes":null,"alloc_ms":null,"prefetch_ms":null,"touch_ms":null,"free_ms":null,"ok":true,"tensors":null,"device_free_bytes":null,"mem_available_bytes":null,"mem_free_bytes":null,"device_free_drop_bytes":null,"mem_available_drop_bytes":null,"overhead_bytes":null,"overhead_pct":null,"rounding_2mib_bytes":null,"freed_bytes":null,"largest_freed_bytes":null,"free_total_bytes":null,"free_total_of":null,"bound_bytes":null,"resolution_bytes":null,"attempts":null,"reached_bound":null,"note":null}"#;
    let r: LayoutRow = serde_json::from_str(good).unwrap();
    assert_eq!(r.phase(), layout::Phase::Probe);
    assert_eq!(r.as_probe().map(|p| (p.bytes, p.ok)), Some((1, true)));
    let e = serde_json::from_str::<LayoutRow>(&good.replace("\"probe\"", "\"alloc2\""));
    assert!(e.is_err(), "an unknown phase is refused");
    let e = serde_json::from_str::<LayoutRow>(&good.replace("\"ok\":true", "\"ok\":null"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`probe` row without `ok`"), "{e}");
}

#[test]
fn cache_tables_from_committed_runs() {
    let doc: CacheDoc = load("docs/results/h200-2026-11-26-commands/cache-status.json");
    assert!(!doc.rows.is_empty());
    common::snapshot("cache-status.txt", &cache::render_states(&doc.rows));
    common::snapshot("cache-csv-header.txt", &header(&to_csv(&doc.rows).unwrap()));
    let effect: EffectDoc = load("docs/results/h200-2026-11-26-commands/cache-effect.json");
    assert_eq!(effect.rows.len(), 3);
    common::snapshot("cache-effect.txt", &cache::render_effect(&effect));
    common::snapshot(
        "cache-effect-csv-header.txt",
        &header(&to_csv(&effect.rows).unwrap()),
    );
}

#[test]
fn selftest_table_from_a_committed_run() {
    let reports: Vec<SelftestReport> = load("tests/fixtures/results/h200-raw/selftest.json");
    assert_eq!(reports.len(), 1);
    common::snapshot("selftest.txt", &selftest::render(&reports[0]));
    common::snapshot(
        "selftest-csv-header.txt",
        &header(&to_csv(&selftest::csv_rows(&reports)).unwrap()),
    );
}

#[test]
fn info_table_from_a_committed_run() {
    let r: InfoReport = load("tests/fixtures/results/h200-raw/info.json");
    common::snapshot("info.txt", &info::render(&r));
    common::snapshot(
        "info-csv-header.txt",
        &header(&to_csv(&info::csv_rows(&r)).unwrap()),
    );
    let csv = String::from_utf8(to_csv(&info::csv_rows(&r)).unwrap()).unwrap();
    common::snapshot("info.csv", &csv);
}

#[test]
fn selftest_reports_read_and_write_the_committed_files_unchanged() {
    // JSON: H200 reports as `selftest --out` wrote them (with fill_by_size).
    for rel in [
        "docs/results/h200-2026-11-30-call1/selftest.json",
        "docs/results/h200-2026-11-30-commands/selftest.json",
    ] {
        let text = read(rel);
        let reports: Vec<SelftestReport> = load(rel);
        assert!(!reports[0].fill_by_size.is_empty(), "{rel}");
        assert_eq!(String::from_utf8(to_json(&reports).unwrap()).unwrap(), text);
    }
    // CSV: the lab's selftest.csv, through the typed CSV rows.
    let rel = "docs/results/h200-2026-11-30-lab-a/selftest.csv";
    let text = read(rel);
    let rows: Vec<selftest::SelftestCsvRow> = csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(rows.iter().any(|r| r.kind == selftest::CsvKind::FillBySize));
    assert_eq!(String::from_utf8(to_csv(&rows).unwrap()).unwrap(), text);
}

#[test]
fn cache_rows_read_and_write_the_committed_files_unchanged() {
    let rel = "docs/results/h200-2026-11-26-commands/cache-status.json";
    let doc: CacheDoc = load(rel);
    assert_eq!(doc.rows[0].label, cache::CacheState::Now);
    let again = String::from_utf8(to_json(&doc.rows).unwrap()).unwrap();
    assert_eq!(again, rows_text(&read(rel)), "{rel}");
    for rel in [
        "docs/results/h200-2026-11-30-lab-a/cache.csv",
        "tests/fixtures/results/h200-2026-11-26-lab-old-build/cache.csv",
    ] {
        let text = read(rel);
        let rows: Vec<cache::CacheRow> = csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(!rows.is_empty(), "{rel}");
        assert_eq!(
            String::from_utf8(to_csv(&rows).unwrap()).unwrap(),
            text,
            "{rel}"
        );
    }
    let bad = serde_json::from_str::<cache::CacheState>("\"later\"");
    assert!(bad.is_err(), "an unknown label is refused");
}
