//! The experiment registry's contracts, without a GPU: every committed lab results file (under
//! `tests/fixtures/results/` and `docs/results/`) still reads, with every key it holds known to
//! [`LabResults`] (none lands in the open `sections` map) and written back under the same keys;
//! a section of an experiment added later is stored under its own top-level key in results.json,
//! reads back typed, and a damaged one is one sentence naming it; the lab's `--skip` takes exactly
//! the registry's names.

mod common;

use std::path::PathBuf;

use cumemlab::error::Error;
use cumemlab::experiments::lab::{self, LabResults, registry};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every `results.json` one folder below `tests/fixtures/results/` and `docs/results/`.
fn committed_results() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for base in ["tests/fixtures/results", "docs/results"] {
        let Ok(rd) = std::fs::read_dir(common::repo().join(base)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path().join(lab::RESULTS_FILE);
            if p.is_file() {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

#[test]
fn every_committed_results_file_reads_with_every_key_known() {
    let files = committed_results();
    // Two fixtures (the old build's lab and the two-device lab) and the docs' labs.
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let r = LabResults::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        // A key outside LabResults' own fields is the section of a registered experiment
        // (`load` in the labs since issue 11), never an unknown one.
        let unknown: Vec<&String> = r
            .sections
            .keys()
            .filter(|k| cumemlab::experiments::lab::registry::find(k).is_none())
            .collect();
        assert!(
            unknown.is_empty(),
            "{}: keys neither LabResults' nor a registered experiment's: {unknown:?}",
            f.display()
        );
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let back = serde_json::to_value(&r).unwrap();
        let (Value::Object(file), Value::Object(back)) = (file, back) else {
            panic!("{}: not a JSON object", f.display());
        };
        for (k, v) in &file {
            assert!(back.contains_key(k), "{}: `{k}` lost", f.display());
            // The experiments' sections keep their shape: the same row count per section.
            let rows = |v: &Value| v.get("rows").and_then(Value::as_array).map(Vec::len);
            if let Some(n) = rows(v) {
                assert_eq!(rows(&back[k]), Some(n), "{}: `{k}` rows", f.display());
            }
        }
    }
}

/// The section of a throwaway experiment added after the first eight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Hello {
    page_size_bytes: u64,
    note: String,
}

#[test]
fn a_later_experiments_section_needs_no_field_of_its_own() {
    let f = committed_results()
        .into_iter()
        .next()
        .expect("a committed lab results file");
    let mut r = LabResults::read(&f).unwrap();
    let before: Vec<String> = match serde_json::to_value(&r).unwrap() {
        Value::Object(m) => m.keys().cloned().collect(),
        _ => unreachable!(),
    };
    assert_eq!(r.section::<Hello>("hello").unwrap(), None, "absent");
    let hello = Hello {
        page_size_bytes: 4096,
        note: "host-side".into(),
    };
    r.put_section("hello", &hello).unwrap();
    let text = serde_json::to_string(&r).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    // results.json: today's keys, plus `hello` at the top level with the section's own shape.
    let after: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert!(before.iter().all(|k| after.contains(k)));
    assert_eq!(v["hello"]["page_size_bytes"], 4096);
    // Read back, as `lab --from` and `compare` read a folder.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(lab::RESULTS_FILE), &text).unwrap();
    let back = LabResults::read(d.path()).unwrap();
    assert_eq!(back.section::<Hello>("hello").unwrap(), Some(hello));
    assert_eq!(back.sections.len(), 1);
    // A section of the wrong shape is one sentence naming it (exit 2), not a panic.
    let mut bad = v.clone();
    bad["hello"] = serde_json::json!({"page_size_bytes": "four"});
    std::fs::write(d.path().join(lab::RESULTS_FILE), bad.to_string()).unwrap();
    let back = LabResults::read(d.path()).unwrap();
    let e = back.section::<Hello>("hello").unwrap_err();
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("`hello` section")),
        "{e}"
    );
}

#[test]
fn skip_takes_the_registrys_names_and_no_other() {
    let keys = registry::keys();
    assert_eq!(keys.len(), registry::EXPERIMENTS.len());
    let d = tempfile::tempdir().unwrap();
    let out = d.path().to_str().unwrap();
    let o = common::run(&["lab", "--out", out, "--skip", "sweeep", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    let err = common::stderr(&o);
    assert!(err.contains(&keys.join(", ")), "{err}");
    // The help lists the same names (clap wraps the line: compare with spaces collapsed).
    let help = common::run_ok(&["lab", "--help"]);
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&keys.join(", ")), "{help}");
}

#[test]
fn the_load_section_reaches_the_csvs_the_report_and_compare() {
    use cumemlab::experiments::lab::steps::load::{KEY, LoadSection};
    use cumemlab::experiments::load::LoadRow;
    let f = common::repo().join("docs/results/h200-2026-11-30-lab-a");
    let mut r = LabResults::read(&f).unwrap();
    let row = |state: &str, run: u32, gbps: f64| LoadRow {
        path: "read-copy".into(),
        state: state.into(),
        run,
        data_bytes: 1 << 30,
        tensors: 291,
        resident_before_bytes: 0,
        wall_ms: 1e3,
        gbps,
        first_tensor_ms: 1.0,
        cache_growth_bytes: 0,
        min_mem_available_bytes: 0,
        peak_rss_bytes: 0,
        pinned_bytes: 0,
        kernel_ms: 1.0,
        checksum_ok: true,
        note: String::new(),
    };
    let section = LoadSection {
        rows: vec![
            row("cold", 1, 2.0),
            row("cold", 2, 4.0),
            row("warm", 1, 9.0),
        ],
        notes: vec!["read-copy is the fastest path here.".into()],
        ..LoadSection::default()
    };
    r.put_section(KEY, &section).unwrap();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join(lab::RESULTS_FILE),
        serde_json::to_vec(&r).unwrap(),
    )
    .unwrap();
    let back = LabResults::read(d.path()).unwrap();
    lab::write_report(&back, d.path()).unwrap();
    let csv = std::fs::read_to_string(d.path().join("load.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(d.path().join("load-copies.csv").is_file());
    let md = std::fs::read_to_string(d.path().join("report.md")).unwrap();
    assert!(md.contains("## Load: a model file into GPU memory"), "{md}");
    // The median of 2 and 4 GB/s, with its range and n.
    assert!(
        md.contains("| read-copy | cold | 3.00 [2.00-4.00] | 2 |"),
        "{md}"
    );
    assert!(md.contains("read-copy is the fastest path here."));
    assert!(md.contains("`load.csv`, `load-copies.csv`"));
    let inputs = cumemlab::experiments::compare::load(&[
        d.path().to_path_buf(),
        common::repo().join("docs/results/h200-2026-11-30-lab-b"),
    ])
    .unwrap();
    let rep = cumemlab::experiments::compare::build(&inputs);
    let t = rep.tables.iter().find(|t| t.id == "load.gbps").unwrap();
    let cold = t.rows.iter().find(|x| x.key == "read-copy (cold)").unwrap();
    assert_eq!(cold.values, vec![Some(3.0), None]);
}
