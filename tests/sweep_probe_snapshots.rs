//! Snapshot tests of the `sweep` and `probe` renderers (issue 13): the text tables and findings
//! of committed result files, and the CSV headers, compared with the expected files under
//! tests/fixtures/snapshots (`common::snapshot`), so any change of output is seen in review. After
//! an intended change, `UPDATE_SNAPSHOTS=1 cargo test --test sweep_probe_snapshots` rewrites the
//! files; review their diff before committing. The expected files were first written by the build
//! before the split and the typed rows (7ba1fe7), so they also show that output did not change.

mod common;

use std::path::Path;

use cumemlab::experiments::env::Environment;
use cumemlab::experiments::probe::{self, ProbeRow};
use cumemlab::experiments::sweep::{self, SweepRow};
use cumemlab::report::ResultSink;
use cumemlab::report::sink::{read_document, to_csv};

fn repo_file(rel: &str) -> std::path::PathBuf {
    common::repo().join(rel)
}

fn sweep_doc(rel: &str) -> sweep::SweepDoc {
    read_document::<SweepRow, Environment>(Path::new(&repo_file(rel))).unwrap()
}

#[test]
fn sweep_text_of_the_h200_runs() {
    // n = 3 fresh allocations, today's build (docs/results/h200-2026-11-30-call1).
    let doc = sweep_doc("docs/results/h200-2026-11-30-call1/sweep.json");
    common::snapshot("sweep-h200-call1.txt", &sweep::render(&doc));
    // The first H200 run: one sample per phase, rows written before --repeat.
    let doc = sweep_doc("tests/fixtures/results/h200-raw/sweep.json");
    common::snapshot("sweep-h200-raw.txt", &sweep::render(&doc));
}

#[test]
fn sweep_text_of_the_n3_fixture() {
    let path = repo_file("tests/fixtures/sweep/n3-rows.json");
    let rows: Vec<SweepRow> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut sink = ResultSink::new("sweep", Environment::host_only("test".into()), None).unwrap();
    for r in rows {
        sink.push(r).unwrap();
    }
    common::snapshot("sweep-n3-fixture.txt", &sweep::render(&sink.doc));
}

#[test]
fn probe_text_of_the_h200_runs() {
    for (rel, name) in [
        (
            "docs/results/h200-2026-11-30-call1/probe.json",
            "probe-h200-call1.txt",
        ),
        (
            "docs/results/h200-2026-11-26-commands/probe.json",
            "probe-h200-2026-11-26.txt",
        ),
    ] {
        let doc = read_document::<ProbeRow, Environment>(&repo_file(rel)).unwrap();
        common::snapshot(name, &probe::render(&doc));
    }
}

#[test]
fn csv_headers() {
    let header = |csv: Vec<u8>| {
        let text = String::from_utf8(csv).unwrap();
        format!("{}\n", text.lines().next().unwrap())
    };
    let s = sweep_doc("docs/results/h200-2026-11-30-call1/sweep.json");
    common::snapshot("sweep-csv-header.txt", &header(to_csv(&s.rows).unwrap()));
    let p = read_document::<ProbeRow, Environment>(&repo_file(
        "docs/results/h200-2026-11-30-call1/probe.json",
    ))
    .unwrap();
    common::snapshot("probe-csv-header.txt", &header(to_csv(&p.rows).unwrap()));
}
