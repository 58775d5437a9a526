//! The typed rows of `sweep` and `probe` (strategy, phase, kind and stop reason as enums, issue
//! 13) read every committed result file and write it back with the same strings: each JSON row
//! of the sweep/probe documents and of the lab `results.json` files under tests/fixtures and
//! docs/results re-serialises to the same values key by key, and each sweep.csv/probe.csv is
//! rewritten byte for byte (column by column for the older build's narrower CSVs).

mod common;

use std::path::{Path, PathBuf};

use cumemlab::experiments::probe::ProbeRow;
use cumemlab::experiments::sweep::SweepRow;
use cumemlab::report::sink::to_csv;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every file under `dir` (recursively) whose name is one of `names`.
fn files_named(dir: &Path, names: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_named(&p, names, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| names.contains(&n))
        {
            out.push(p);
        }
    }
}

fn committed(names: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in ["tests/fixtures", "docs/results"] {
        files_named(&common::repo().join(d), names, &mut out);
    }
    out.sort();
    out
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Each row read into `R` and written back holds every original key with the same value; keys
/// the original lacks (fields added later) are null or empty. Returns the rows checked.
fn json_rows_round_trip<R: DeserializeOwned + Serialize>(rows: &Value, what: &str) -> usize {
    let rows = rows.as_array().unwrap_or_else(|| panic!("{what}: no rows"));
    for (i, o) in rows.iter().enumerate() {
        let typed: R = serde_json::from_value(o.clone())
            .unwrap_or_else(|e| panic!("{what} row {i}: does not read: {e}"));
        let back = serde_json::to_value(&typed).unwrap();
        let (o, back) = (o.as_object().unwrap(), back.as_object().unwrap());
        for (k, v) in o {
            assert_eq!(back.get(k), Some(v), "{what} row {i}: field `{k}`");
        }
        for (k, v) in back.iter().filter(|(k, _)| !o.contains_key(*k)) {
            assert!(
                v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
                "{what} row {i}: new field `{k}` = {v}"
            );
        }
    }
    rows.len()
}

/// A CSV read into `R` and written back: byte for byte when the header is today's (returns true),
/// else every original column holds the same strings (false).
fn csv_round_trip<R: DeserializeOwned + Serialize>(p: &Path) -> bool {
    let text = std::fs::read_to_string(p).unwrap();
    let rows: Vec<R> = csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: does not read: {e}", p.display()));
    let written = String::from_utf8(to_csv(&rows).unwrap()).unwrap();
    let header = |t: &str| t.lines().next().unwrap_or("").to_string();
    if header(&text) == header(&written) {
        assert_eq!(written, text, "{}", p.display());
        return true;
    }
    let mut a = csv::Reader::from_reader(text.as_bytes());
    let mut b = csv::Reader::from_reader(written.as_bytes());
    let (ha, hb) = (a.headers().unwrap().clone(), b.headers().unwrap().clone());
    for (i, (ra, rb)) in a.records().zip(b.records()).enumerate() {
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        for (col, name) in ha.iter().enumerate() {
            let at = hb.iter().position(|h| h == name);
            let at = at.unwrap_or_else(|| panic!("{}: column {name} lost", p.display()));
            assert_eq!(rb.get(at), ra.get(col), "{} row {i} {name}", p.display());
        }
    }
    assert_eq!(b.records().count(), 0, "{}: rows added", p.display());
    false
}

#[test]
fn committed_sweep_and_probe_documents_read_and_write_the_same_strings() {
    let (mut sweep, mut probe) = (0, 0);
    for p in committed(&["sweep.json", "probe.json", "n3-rows.json"]) {
        let v = read_json(&p);
        let what = p.display().to_string();
        if v.is_array() {
            sweep += json_rows_round_trip::<SweepRow>(&v, &what);
        } else if v["experiment"] == "sweep" {
            sweep += json_rows_round_trip::<SweepRow>(&v["rows"], &what);
        } else {
            assert_eq!(v["experiment"], "probe", "{what}");
            probe += json_rows_round_trip::<ProbeRow>(&v["rows"], &what);
        }
    }
    let labs = committed(&["results.json"]);
    assert!(labs.len() >= 4, "{labs:?}");
    for p in &labs {
        let v = read_json(p);
        let what = p.display().to_string();
        if !v["sweep"].is_null() {
            sweep += json_rows_round_trip::<SweepRow>(&v["sweep"]["rows"], &what);
        }
        if !v["probe"].is_null() {
            probe += json_rows_round_trip::<ProbeRow>(&v["probe"]["rows"], &what);
        }
    }
    // The committed files hold hundreds of sweep rows and tens of probe rows.
    assert!(sweep > 500 && probe > 20, "sweep {sweep}, probe {probe}");
}

#[test]
fn committed_sweep_and_probe_csvs_are_rewritten_byte_for_byte() {
    let (mut exact, mut by_column) = (0, 0);
    let sweep = committed(&["sweep.csv"])
        .into_iter()
        .map(|p| csv_round_trip::<SweepRow>(&p));
    let probe = committed(&["probe.csv"])
        .into_iter()
        .map(|p| csv_round_trip::<ProbeRow>(&p));
    for same_bytes in sweep.chain(probe) {
        if same_bytes {
            exact += 1;
        } else {
            by_column += 1;
        }
    }
    // Today's labs (docs/results, two runs) byte for byte; the 2026-11-26 build column by column.
    assert!(
        exact >= 4 && by_column >= 2,
        "{exact} exact, {by_column} by column"
    );
}

#[test]
fn an_unknown_strategy_or_phase_is_refused_by_name() {
    let old = &committed(&["n3-rows.json"])[0];
    let mut v = read_json(old);
    v[0]["phase"] = "warm_touch".into();
    let e = serde_json::from_value::<Vec<SweepRow>>(v.clone()).unwrap_err();
    assert!(
        e.to_string().contains("unknown sweep phase `warm_touch`"),
        "{e}"
    );
    v[0]["phase"] = "alloc".into();
    v[0]["strategy"] = "cudaMalloc".into();
    let e = serde_json::from_value::<Vec<SweepRow>>(v).unwrap_err();
    assert!(
        e.to_string().contains("unknown strategy `cudaMalloc`"),
        "{e}"
    );
}
