//! `cumemlab compare A B [C...]`: results from different machines or runs side by side (a GB10
//! against an H100, say). Inputs are lab folders (or their `results.json`), a folder of lab
//! folders (a fleet's shared `--out`), or plain `sweep` and `probe` result documents; each device
//! of each input is one column ("machine"), labelled by host and device name. Per experiment,
//! one table with every column and its ratio to the first; with `--out DIR`, `compare.md` and a
//! self-contained `compare.html` with one series per machine in every plot, and `compare.json`;
//! `--json` prints the same JSON on stdout.
//!
//! Inputs are read with the checks every reader shares (a newer schema or a corrupt file is one
//! sentence, exit 2) and normalized into [`LabResults`] (plain documents through
//! [`lab::assemble`]), so one set of accessors serves every kind of input.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lab::{self, LabResults};
use super::sweep::{SweepRow, phase};
use crate::error::{Error, Result};
use crate::experiments::headline;
use crate::report::markdown::Page;
use crate::report::plots::{BarChart, BarSeries, LineChart, Scale, Series, bar_chart, line_chart};
use crate::report::sink::{now_rfc3339, read_checked_json, read_document, to_json};
use crate::report::{SCHEMA, SCHEMA_VERSION, new_table, write_atomic};
use crate::units::{GIB, fmt_bytes};

/// One input file, read.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    /// `lab`, `sweep` or `probe`.
    pub kind: String,
    pub results: LabResults,
}

/// One column: a device of an input (or the host alone, for a lab without a GPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// `A`, `B`, ... (table headers; ratios are `B/A`).
    pub id: String,
    pub label: String,
    pub path: String,
    pub kind: String,
    pub host: String,
    pub device: Option<i32>,
    pub device_name: Option<String>,
}

/// A row of numbers: one value per column, and each value over the table's reference column's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    pub key: String,
    pub values: Vec<Option<f64>>,
    /// `values[i] / values[reference]` (`None` where either is missing or the reference is zero).
    pub ratios: Vec<Option<f64>>,
}

/// One experiment's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareTable {
    /// Stable key (`sweep.alloc_ms`, `selftest.gbps`...).
    pub id: String,
    /// What the numbers are, with their unit.
    pub title: String,
    /// Decimals to print.
    pub decimals: usize,
    /// Whether larger is better (bandwidth, capacity: `Some(true)`), smaller (times, overhead:
    /// `Some(false)`), or neither (the page cache: context, `None`): how to read a ratio.
    pub higher_is_better: Option<bool>,
    /// The column the ratios are against: the first one with a figure in this table (a machine
    /// without a GPU has no sweep, so it cannot be the reference there).
    #[serde(default)]
    pub reference: usize,
    pub rows: Vec<CompareRow>,
}

impl CompareTable {
    /// "higher is better", "lower is better" or "neither is better: context".
    pub fn direction(&self) -> &'static str {
        match self.higher_is_better {
            Some(true) => "higher is better",
            Some(false) => "lower is better",
            None => "neither is better: context for the figures above",
        }
    }

    /// "ratios against A", with the reason when A is not the reference.
    pub fn against(&self, cols: &[Column]) -> String {
        let id = |i: usize| cols.get(i).map_or("?".to_string(), |c| c.id.clone());
        if self.reference == 0 {
            format!("ratios against {}", id(0))
        } else {
            let before: Vec<String> = (0..self.reference).map(id).collect();
            format!(
                "ratios against {} ({} has no figures here)",
                id(self.reference),
                before.join(", ")
            )
        }
    }
}

/// Facts without ratios (names, architectures, versions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactRow {
    pub key: String,
    pub values: Vec<String>,
}

/// The whole comparison (`--json`, `compare.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub schema: String,
    pub schema_version: u32,
    pub tool_version: String,
    pub experiment: String,
    pub created_at: String,
    pub columns: Vec<Column>,
    pub machines: Vec<FactRow>,
    /// The headline table of every machine, side by side (first in every output).
    #[serde(default)]
    pub headline: Option<HeadlineTable>,
    pub tables: Vec<CompareTable>,
    /// What was left out and why (sweep sizes not every machine ran).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The "what memory costs" table of several machines: header and rows as printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadlineTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// "A, device: use it when ...", per machine and strategy.
    #[serde(default)]
    pub uses: Vec<String>,
}

/// Each machine's headline (`None` where its input has no sweep for that device), as one table.
fn headline_table(inputs: &[Input], cols: &[(usize, Column)]) -> Option<HeadlineTable> {
    let heads: Vec<Option<headline::Headline>> = cols
        .iter()
        .map(|(i, c)| {
            headline::from_lab(&inputs[*i].results)
                .into_iter()
                .find(|h| Some(h.device) == c.device)
        })
        .collect();
    if heads.iter().all(Option::is_none) {
        return None;
    }
    let ids: Vec<String> = cols.iter().map(|c| c.1.id.clone()).collect();
    let refs: Vec<Option<&headline::Headline>> = heads.iter().map(Option::as_ref).collect();
    let (header, rows, uses) = headline::compare_table(&ids, &refs);
    Some(HeadlineTable { header, rows, uses })
}

/// The headline table's title.
const HEADLINE_TITLE: &str = "What memory costs on each machine, per GiB (each machine at its own largest sweep size; ratios against A)";

// ---------------------------------------------------------------- reading

/// Reads one path: a results file, a lab folder, or a folder of lab folders (every
/// `results.json` one level down, in name order).
pub fn read_inputs(path: &Path) -> Result<Vec<Input>> {
    if path.is_dir() {
        let direct = path.join(lab::RESULTS_FILE);
        if direct.is_file() {
            return Ok(vec![read_file(&direct)?]);
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::usage(format!("cannot read the folder {}: {e}", path.display())))?
            .flatten()
            .map(|e| e.path().join(lab::RESULTS_FILE))
            .filter(|p| p.is_file())
            .collect();
        subs.sort();
        if subs.is_empty() {
            return Err(Error::usage(format!(
                "{} holds no {} (nor do its subfolders): give lab folders, their results.json, or sweep/probe result files",
                path.display(),
                lab::RESULTS_FILE
            )));
        }
        return subs.iter().map(|p| read_file(p)).collect();
    }
    if !path.exists() {
        return Err(Error::usage(format!(
            "{}: no such file or folder",
            path.display()
        )));
    }
    Ok(vec![read_file(path)?])
}

fn read_file(path: &Path) -> Result<Input> {
    let v = read_checked_json(path)?;
    let kind = v
        .get("experiment")
        .and_then(|e| e.as_str())
        .unwrap_or("?")
        .to_string();
    let results = match kind.as_str() {
        lab::EXPERIMENT => LabResults::from_checked(path, v)?,
        "sweep" => lab::assemble(None, None, Some(read_document(path)?), None)?,
        "probe" => lab::assemble(None, None, None, Some(read_document(path)?))?,
        other => {
            return Err(Error::usage(format!(
                "{} is a `{other}` result file: compare reads lab results, sweep and probe result files",
                path.display()
            )));
        }
    };
    Ok(Input {
        path: path.to_path_buf(),
        kind,
        results,
    })
}

/// The name that tells an input apart: its folder for a `results.json`, else its file stem.
fn input_name(p: &Path) -> String {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    if p.file_name().is_some_and(|n| n == lab::RESULTS_FILE) {
        p.parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| stem(p))
    } else {
        stem(p)
    }
}

/// The columns of the inputs, with labels made unique.
pub fn columns(inputs: &[Input]) -> Vec<(usize, Column)> {
    let mut cols = Vec::new();
    for (i, inp) in inputs.iter().enumerate() {
        let r = &inp.results;
        let host = r.environment.host.hostname.clone();
        let devs = r.devices();
        if devs.is_empty() {
            cols.push((
                i,
                Column {
                    id: String::new(),
                    label: format!("{host} (no GPU)"),
                    path: inp.path.display().to_string(),
                    kind: inp.kind.clone(),
                    host,
                    device: None,
                    device_name: None,
                },
            ));
            continue;
        }
        for d in devs {
            let name = r.device_name(d);
            cols.push((
                i,
                Column {
                    id: String::new(),
                    label: format!("{host} / {name} ({d})"),
                    path: inp.path.display().to_string(),
                    kind: inp.kind.clone(),
                    host: host.clone(),
                    device: Some(d),
                    device_name: Some(name),
                },
            ));
        }
    }
    // Every label names its input (folder or file), then ambiguous ones get a number.
    for (i, c) in cols.iter_mut() {
        c.label = format!("{} [{}]", c.label, input_name(&inputs[*i].path));
    }
    let labels: Vec<String> = cols.iter().map(|c| c.1.label.clone()).collect();
    for (k, c) in cols.iter_mut().enumerate() {
        if labels.iter().filter(|l| **l == c.1.label).count() > 1 {
            c.1.label = format!("{} #{}", c.1.label, k + 1);
        }
        c.1.id = column_id(k);
    }
    cols
}

/// `A`..`Z`, then `AA`, `AB`...
pub fn column_id(k: usize) -> String {
    let letter = |i: usize| char::from(b'A' + (i % 26) as u8);
    if k < 26 {
        letter(k).to_string()
    } else {
        format!("{}{}", letter(k / 26 - 1), letter(k))
    }
}

// ---------------------------------------------------------------- the tables

/// Each value over `values[reference]`.
fn ratios(values: &[Option<f64>], reference: usize) -> Vec<Option<f64>> {
    let first = values.get(reference).copied().flatten();
    values
        .iter()
        .map(|v| match (v, first) {
            (Some(v), Some(f)) if f != 0.0 => Some(v / f),
            _ => None,
        })
        .collect()
}

/// A row against column 0; `push` sets the table's reference and recomputes the ratios.
fn row(key: String, values: Vec<Option<f64>>) -> CompareRow {
    CompareRow {
        key,
        ratios: ratios(&values, 0),
        values,
    }
}

fn sweep_rows<'a>(inputs: &'a [Input], c: &(usize, Column)) -> Vec<&'a SweepRow> {
    inputs[c.0]
        .results
        .sweep
        .as_ref()
        .map(|s| {
            s.rows
                .iter()
                .filter(|r| Some(r.device) == c.1.device)
                .collect()
        })
        .unwrap_or_default()
}

/// (strategy, size) pairs with an `alloc` row in any column: by size, then in run order.
fn sweep_keys(inputs: &[Input], cols: &[(usize, Column)]) -> Vec<(String, u64)> {
    let mut keys: Vec<(String, u64)> = Vec::new();
    for c in cols {
        for r in sweep_rows(inputs, c) {
            if r.phase == phase::ALLOC && !keys.iter().any(|k| k.0 == r.strategy && k.1 == r.bytes)
            {
                keys.push((r.strategy.to_string(), r.bytes));
            }
        }
    }
    let order: Vec<String> = {
        let mut o: Vec<String> = Vec::new();
        for (s, _) in &keys {
            if !o.contains(s) {
                o.push(s.clone());
            }
        }
        o
    };
    keys.sort_by_key(|(s, b)| (*b, order.iter().position(|x| x == s)));
    keys
}

/// A sweep table: id, title, phase, decimals, higher is better, the value of a row.
type SweepMetric = (
    &'static str,
    &'static str,
    &'static str,
    usize,
    bool,
    fn(&SweepRow) -> Option<f64>,
);
/// A figure of a layout report.
type LayoutGet = fn(&crate::experiments::layout::LayoutReport) -> Option<f64>;
/// A figure of an accounting snapshot for a device.
type AccountingGet = fn(&lab::AccountingSnapshot, Option<i32>) -> Option<f64>;

/// Builds every table.
pub fn build(inputs: &[Input]) -> CompareReport {
    let cols = columns(inputs);
    let machines = machine_facts(inputs, &cols);
    let mut tables = Vec::new();

    // selftest
    let ops = [
        "cuMemsetD32",
        "fill kernel",
        "read kernel",
        "cuMemcpyDtoD (bytes copied)",
    ];
    let rows: Vec<CompareRow> = ops
        .iter()
        .map(|op| {
            row(
                op.to_string(),
                cols.iter()
                    .map(|c| {
                        inputs[c.0].results.selftest.as_ref().and_then(|v| {
                            v.iter()
                                .filter(|s| Some(s.device) == c.1.device)
                                .flat_map(|s| s.bandwidth.iter())
                                .find(|b| b.op == *op)
                                .map(|b| b.gbps.median)
                        })
                    })
                    .collect(),
            )
        })
        .collect();
    push(
        &mut tables,
        "selftest.gbps",
        "selftest bandwidth on device memory, GB/s (1e9 bytes/s), median",
        1,
        Some(true),
        rows,
    );

    // sweep: the sizes every machine with a sweep ran (the others are named once in the notes)
    let mut notes = Vec::new();
    let (common, partial) = sweep_sizes(inputs, &cols);
    let mut keys = sweep_keys(inputs, &cols);
    if !common.is_empty() && !partial.is_empty() {
        keys.retain(|k| common.contains(&k.1));
        let ids = |v: &Vec<usize>| {
            v.iter()
                .map(|&i| cols[i].1.id.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        notes.push(format!(
            "sweep sizes not run on every machine are left out of the sweep tables: {}",
            partial
                .iter()
                .map(|(b, have)| format!("{} (only {})", fmt_bytes(*b), ids(have)))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let metrics: [SweepMetric; 7] = [
        (
            "sweep.alloc_ms",
            "allocation time, ms",
            phase::ALLOC,
            3,
            false,
            |r| Some(r.ms_median),
        ),
        (
            "sweep.gpu_first_touch_ms",
            "GPU first touch, ms",
            phase::GPU_FIRST_TOUCH,
            2,
            false,
            |r| Some(r.ms_median),
        ),
        (
            "sweep.gpu_second_touch_ms",
            "GPU second touch, ms",
            phase::GPU_SECOND_TOUCH,
            2,
            false,
            |r| Some(r.ms_median),
        ),
        (
            "sweep.cpu_first_touch_ms",
            "CPU first touch, ms",
            phase::CPU_FIRST_TOUCH,
            2,
            false,
            |r| Some(r.ms_median),
        ),
        (
            "sweep.fill_gbps",
            "fill bandwidth, GB/s (1e9 bytes/s)",
            phase::FILL,
            1,
            true,
            |r| r.gbps,
        ),
        (
            "sweep.read_gbps",
            "read bandwidth, GB/s (1e9 bytes/s)",
            phase::READ,
            1,
            true,
            |r| r.gbps,
        ),
        (
            "sweep.free_ms",
            "free time, ms",
            phase::FREE,
            3,
            false,
            |r| Some(r.ms_median),
        ),
    ];
    for (id, title, ph, dec, hib, get) in metrics {
        let rows: Vec<CompareRow> = keys
            .iter()
            .map(|(st, b)| {
                row(
                    format!("{st} @ {}", fmt_bytes(*b)),
                    cols.iter()
                        .map(|c| {
                            sweep_rows(inputs, c)
                                .into_iter()
                                .find(|r| r.strategy == st && r.bytes == *b && r.phase == ph)
                                .and_then(get)
                        })
                        .collect(),
                )
            })
            .collect();
        push(
            &mut tables,
            id,
            &format!("sweep: {title}"),
            dec,
            Some(hib),
            rows,
        );
    }

    // probe
    let mut pkeys: Vec<(String, String)> = Vec::new();
    for c in &cols {
        if let Some(p) = &inputs[c.0].results.probe {
            for r in p.rows.iter().filter(|r| Some(r.device) == c.1.device) {
                let k = (r.strategy.to_string(), r.kind.key().to_string());
                if !pkeys.contains(&k) {
                    pkeys.push(k);
                }
            }
        }
    }
    let rows: Vec<CompareRow> = pkeys
        .iter()
        .map(|(st, kind)| {
            row(
                format!("{st} ({kind})"),
                cols.iter()
                    .map(|c| {
                        inputs[c.0].results.probe.as_ref().and_then(|p| {
                            p.rows
                                .iter()
                                .find(|r| {
                                    Some(r.device) == c.1.device
                                        && r.strategy == st
                                        && r.kind.key() == kind
                                })
                                .map(|r| r.max_bytes as f64 / GIB as f64)
                        })
                    })
                    .collect(),
            )
        })
        .collect();
    push(
        &mut tables,
        "probe.max_gib",
        "probe: largest allocation, GiB (2^30 bytes)",
        2,
        Some(true),
        rows,
    );

    // layout
    // Overhead (lower is better) and what is left after frees (higher is better) apart.
    let layout_get: [(&str, LayoutGet, bool); 3] = [
        (
            "overhead beyond the request, %",
            |l| l.summary.totals.as_ref().map(|t| t.overhead_pct),
            false,
        ),
        (
            "largest allocation after freeing every other tensor, GiB",
            |l| {
                l.summary
                    .fragmentation
                    .as_ref()
                    .map(|f| f.largest_bytes as f64 / GIB as f64)
            },
            true,
        ),
        (
            "largest allocation as % of cuMemGetInfo free",
            |l| {
                l.summary
                    .fragmentation
                    .as_ref()
                    .map(|f| f.largest_pct_of_free())
            },
            true,
        ),
    ];
    for (id, title, hib) in [
        ("layout.overhead_pct", "overhead", false),
        ("layout", "after frees", true),
    ] {
        let rows: Vec<CompareRow> = layout_get
            .iter()
            .filter(|(_, _, h)| *h == hib)
            .map(|(k, get, _)| {
                row(
                    k.to_string(),
                    cols.iter()
                        .map(|c| {
                            inputs[c.0].results.layout.as_ref().and_then(|v| {
                                v.iter()
                                    .find(|l| l.rows.first().map(|r| r.device) == c.1.device)
                                    .and_then(get)
                            })
                        })
                        .collect(),
                )
            })
            .collect();
        push(
            &mut tables,
            id,
            &format!("layout {}: {title}", lab::LAYOUT_PRESET),
            2,
            Some(hib),
            rows,
        );
    }

    // plan: the capacity of each column's device (or the host's target without a GPU)
    let capacity = |c: &(usize, Column)| -> Option<&crate::plan::CapacityMatrix> {
        let plans = inputs[c.0].results.plan.as_ref()?;
        match c.1.device {
            Some(d) => plans
                .iter()
                .find(|m| m.target.name.starts_with(&format!("device {d} ("))),
            None => plans.first(),
        }
    };
    let mut labels: Vec<String> = Vec::new();
    for c in &cols {
        if let Some(m) = capacity(c) {
            for r in &m.rows {
                if !labels.contains(&r.label) {
                    labels.push(r.label.clone());
                }
            }
        }
    }
    let rows: Vec<CompareRow> = labels
        .iter()
        .map(|l| {
            row(
                l.clone(),
                cols.iter()
                    .map(|c| {
                        capacity(c)
                            .and_then(|m| m.rows.iter().find(|r| &r.label == l))
                            .map(|r| r.max_params_billions)
                    })
                    .collect(),
            )
        })
        .collect();
    push(
        &mut tables,
        "plan.max_params_billions",
        "plan: largest dense model on each `plan target`, billion parameters",
        1,
        Some(true),
        rows,
    );
    let mut machines = machines;
    machines.push(FactRow {
        key: "plan target".into(),
        values: cols
            .iter()
            .map(|c| match (capacity(c), c.1.device) {
                (Some(m), Some(_)) => m.target.name.clone(),
                (Some(m), None) => format!("{} (profile: no GPU here)", m.target.name),
                (None, _) => "-".into(),
            })
            .collect(),
    });

    // accounting at the start
    let acc: [(&str, AccountingGet, Option<bool>); 3] = [
        (
            "cuMemGetInfo free",
            |s, d| {
                s.devices
                    .iter()
                    .find(|x| Some(x.device) == d)
                    .map(|x| x.cumemgetinfo_free_bytes as f64 / GIB as f64)
            },
            Some(true),
        ),
        (
            "MemAvailable",
            |s, _| Some(s.mem_available_bytes as f64 / GIB as f64),
            Some(true),
        ),
        (
            "Cached (page cache)",
            |s, _| Some(s.cached_bytes as f64 / GIB as f64),
            None,
        ),
    ];
    for (id, title, hib) in [
        (
            "accounting.start_gib",
            "memory accounting at the start, GiB (2^30 bytes)",
            Some(true),
        ),
        (
            "accounting.cached_gib",
            "page cache at the start, GiB (2^30 bytes)",
            None,
        ),
    ] {
        let rows: Vec<CompareRow> = acc
            .iter()
            .filter(|(_, _, h)| *h == hib)
            .map(|(k, get, _)| {
                row(
                    k.to_string(),
                    cols.iter()
                        .map(|c| {
                            inputs[c.0]
                                .results
                                .accounting
                                .first()
                                .and_then(|s| get(s, c.1.device))
                        })
                        .collect(),
                )
            })
            .collect();
        push(&mut tables, id, title, 2, hib, rows);
    }

    CompareReport {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        experiment: "compare".into(),
        created_at: now_rfc3339(),
        headline: headline_table(inputs, &cols),
        columns: cols.into_iter().map(|c| c.1).collect(),
        machines,
        tables,
        notes,
    }
}

fn push(
    tables: &mut Vec<CompareTable>,
    id: &str,
    title: &str,
    decimals: usize,
    higher_is_better: Option<bool>,
    rows: impl IntoIterator<Item = CompareRow>,
) {
    // A row with no figure in any column says nothing.
    let mut rows: Vec<CompareRow> = rows
        .into_iter()
        .filter(|r| r.values.iter().any(Option::is_some))
        .collect();
    if rows.is_empty() {
        return;
    }
    let n = rows.first().map_or(0, |r| r.values.len());
    let reference = (0..n)
        .find(|&i| rows.iter().any(|r| r.values[i].is_some()))
        .unwrap_or(0);
    for r in &mut rows {
        r.ratios = ratios(&r.values, reference);
    }
    tables.push(CompareTable {
        id: id.into(),
        title: title.into(),
        decimals,
        higher_is_better,
        reference,
        rows,
    });
}

fn machine_facts(inputs: &[Input], cols: &[(usize, Column)]) -> Vec<FactRow> {
    let dev = |c: &(usize, Column)| {
        c.1.device.and_then(|d| {
            inputs[c.0]
                .results
                .environment
                .devices
                .iter()
                .find(|x| x.ordinal == d)
                .cloned()
        })
    };
    let fact = |key: &str, f: &dyn Fn(&(usize, Column)) -> String| FactRow {
        key: key.into(),
        values: cols.iter().map(f).collect(),
    };
    let r = |c: &(usize, Column)| &inputs[c.0].results;
    vec![
        fact("input", &|c| {
            let p = Path::new(&c.1.path);
            match p.file_name().map(|n| n.to_string_lossy().to_string()) {
                Some(f) if f == lab::RESULTS_FILE => format!("{}/{f}", input_name(p)),
                Some(f) => f,
                None => c.1.path.clone(),
            }
        }),
        fact("kind", &|c| c.1.kind.clone()),
        fact("host", &|c| c.1.host.clone()),
        fact("device", &|c| {
            c.1.device_name.clone().map_or("none".into(), |n| {
                format!("{n} ({})", c.1.device.unwrap_or(0))
            })
        }),
        fact("compute capability", &|c| {
            dev(c).map_or("-".into(), |d| d.compute_capability)
        }),
        fact("memory architecture", &|c| {
            dev(c).map_or("-".into(), |d| d.architecture.label().to_string())
        }),
        fact("device memory, GiB", &|c| {
            dev(c).map_or("-".into(), |d| {
                format!("{:.2}", d.total_bytes as f64 / GIB as f64)
            })
        }),
        fact("host MemTotal, GiB", &|c| {
            r(c).environment.meminfo.as_ref().map_or("-".into(), |m| {
                format!("{:.2}", m.mem_total as f64 / GIB as f64)
            })
        }),
        fact("CPU arch, CPUs", &|c| {
            let h = &r(c).environment.host;
            format!("{}, {}", h.arch, h.cpus)
        }),
        fact("CUDA driver", &|c| {
            r(c).environment
                .driver_version
                .clone()
                .unwrap_or_else(|| "none".into())
        }),
        fact("cumemlab", &|c| r(c).tool_version.clone()),
        fact("started", &|c| r(c).started_at.clone()),
    ]
}

// ---------------------------------------------------------------- output

fn fmt_num(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        if v >= 100.0 {
            format!("{v:.0}x")
        } else if v >= 0.1 {
            format!("{v:.2}x")
        } else {
            format!("{v:.3}x")
        }
    })
}

/// Header and body of a table: each column, then after every column but the reference its
/// ratio to the reference.
pub fn table_cells(t: &CompareTable, cols: &[Column]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec![t.title.clone()];
    let ref_id = cols
        .get(t.reference)
        .map_or("?".to_string(), |c| c.id.clone());
    // A column with no figure in this table gets no ratio column (it would be all `-`).
    let ratio_col = |i: usize| i != t.reference && t.rows.iter().any(|r| r.values[i].is_some());
    for (i, c) in cols.iter().enumerate() {
        header.push(c.id.clone());
        if ratio_col(i) {
            header.push(format!("{}/{ref_id}", c.id));
        }
    }
    let body = t
        .rows
        .iter()
        .map(|r| {
            let mut line = vec![r.key.clone()];
            for (i, v) in r.values.iter().enumerate() {
                line.push(fmt_num(*v, t.decimals));
                if ratio_col(i) {
                    line.push(fmt_ratio(r.ratios[i]));
                }
            }
            line
        })
        .collect();
    (header, body)
}

/// The tables for a terminal.
pub fn render_text(rep: &CompareReport) -> String {
    let mut out = String::new();
    for c in &rep.columns {
        out.push_str(&format!("{} = {}\n", c.id, c.label));
    }
    for n in &rep.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push('\n');
    if let Some(h) = &rep.headline {
        let mut t = new_table(&h.header);
        for l in &h.rows {
            t.add_row(l.clone());
        }
        out.push_str(&format!("{HEADLINE_TITLE}\n{t}\n"));
        for u in &h.uses {
            out.push_str(&format!("- {u}\n"));
        }
        out.push('\n');
    }
    let mut header = vec!["".to_string()];
    header.extend(rep.columns.iter().map(|c| c.id.clone()));
    let mut t = new_table(&header);
    for f in &rep.machines {
        let mut line = vec![f.key.clone()];
        line.extend(f.values.iter().cloned());
        t.add_row(line);
    }
    out.push_str(&format!("machines\n{t}\n\n"));
    for tb in &rep.tables {
        let (header, body) = table_cells(tb, &rep.columns);
        let mut t = new_table(&header);
        for l in body {
            t.add_row(l);
        }
        out.push_str(&format!(
            "{} ({}; {})\n{t}\n\n",
            tb.title,
            tb.direction(),
            tb.against(&rep.columns)
        ));
    }
    out
}

/// The page (Markdown and HTML) with one series per machine in every plot.
pub fn page(rep: &CompareReport, inputs: &[Input]) -> Result<Page> {
    let labels: Vec<String> = rep
        .columns
        .iter()
        .map(|c| format!("{}: {}", c.id, c.label))
        .collect();
    let names: Vec<String> = rep.columns.iter().map(|c| c.label.clone()).collect();
    let ids: Vec<String> = rep.columns.iter().map(|c| c.id.clone()).collect();
    let mut p = Page::new(format!("cumemlab compare: {}", names.join(" vs ")));
    p.para(format!(
        "{} machines (a machine is one device of one input): {}. Every table gives each machine's value and its ratio to the first machine with a figure there (A unless said otherwise). GB = 1e9 bytes, GiB = 2^30 bytes, GB/s = 1e9 bytes per second.",
        labels.len(),
        labels.join("; ")
    ));
    for n in &rep.notes {
        p.para(format!("Note: {n}."));
    }
    let mut findings = Vec::new();
    let mut body = Page::new("");
    if let Some(h) = &rep.headline {
        body.h2("What memory costs on each machine");
        body.table(HEADLINE_TITLE, &h.header, h.rows.clone());
        body.bullets(h.uses.clone());
        body.para("Per strategy and machine, the figures of each machine's own headline table (allocation: least-squares slope and intercept of the alloc time against the size; first touches and bandwidth at the machine's largest sweep size; largest single allocation from the probe), then each machine's value over A's. A ratio above 1 is better where higher is better, worse where lower is.");
    }
    let head_blocks = body.blocks.len();
    body.h2("Machines");
    let mut header = vec!["".to_string()];
    header.extend(rep.columns.iter().map(|c| c.id.clone()));
    body.table(
        "The machines compared",
        &header,
        rep.machines
            .iter()
            .map(|f| {
                let mut l = vec![f.key.clone()];
                l.extend(f.values.iter().cloned());
                l
            })
            .collect(),
    );
    let cols = columns(inputs);
    let table = |p: &mut Page, id: &str| -> Option<String> {
        let t = rep.tables.iter().find(|t| t.id == id)?;
        let (h, b) = table_cells(t, &rep.columns);
        Some(p.table(
            format!(
                "{} ({}; {})",
                t.title,
                t.direction(),
                t.against(&rep.columns)
            ),
            &h,
            b,
        ))
    };
    let bars = |rows: &[&CompareRow], title: String, unit: &str, scale: Scale| {
        bar_chart(&BarChart {
            title,
            value_label: unit.into(),
            categories: rows.iter().map(|r| r.key.clone()).collect(),
            series: labels
                .iter()
                .enumerate()
                .map(|(i, l)| BarSeries {
                    name: l.clone(),
                    values: rows.iter().map(|r| r.values[i]).collect(),
                })
                .collect(),
            scale,
            reference_lines: Vec::new(),
            annotate: rows.len() * labels.len() <= 40,
        })
    };

    if let Some(t) = rep.tables.iter().find(|t| t.id == "selftest.gbps") {
        body.h2("Selftest");
        let rows: Vec<&CompareRow> = t.rows.iter().collect();
        let fig = body
            .figure(
                "selftest-bandwidth",
                "Selftest bandwidth on device memory per machine",
                "Median GB/s of each operation on device memory (`selftest`).",
                bars(
                    &rows,
                    "Selftest bandwidth on device memory".into(),
                    "bandwidth (GB/s = 1e9 bytes/s)",
                    Scale::Linear,
                )?,
            )
            .clone();
        table(&mut body, "selftest.gbps");
        if let Some(r) = t.rows.iter().find(|r| r.key == "cuMemsetD32") {
            findings.push(format!(
                "{fig}: cuMemsetD32 on device memory: {}.",
                per_machine(r, t.reference, &ids, 0, "GB/s")
            ));
        }
    }

    if rep.tables.iter().any(|t| t.id.starts_with("sweep.")) {
        body.h2("Sweep");
        // Allocation time against size: one figure per strategy, one series per machine.
        let mut strategies: Vec<String> = Vec::new();
        for c in &cols {
            for r in sweep_rows(inputs, c) {
                if r.phase == phase::ALLOC && !strategies.contains(&r.strategy.to_string()) {
                    strategies.push(r.strategy.to_string());
                }
            }
        }
        for st in &strategies {
            let series: Vec<Series> = cols
                .iter()
                .map(|c| Series {
                    name: format!("{}: {}", c.1.id, c.1.label),
                    points: sweep_rows(inputs, c)
                        .into_iter()
                        .filter(|r| r.strategy == st && r.phase == phase::ALLOC)
                        .map(|r| (r.bytes as f64 / GIB as f64, r.ms_median))
                        .collect(),
                })
                .collect();
            let svg = line_chart(&LineChart {
                title: format!("Allocation time against size: {st}"),
                x_label: "size (GiB, log scale)".into(),
                y_label: "allocation time (ms, log scale)".into(),
                x_scale: Scale::Log2,
                y_scale: Scale::Log10,
                series,
            })?;
            body.figure(
                &format!("alloc-{st}"),
                format!("Allocation time against size, {st}, one line per machine"),
                "Host clock around the allocation and a synchronize (the sweep's `alloc` rows).",
                svg,
            );
        }
        // At the largest size every machine measured.
        let common = common_size(inputs, &cols);
        for (id, what, unit, scale) in [
            (
                "sweep.gpu_first_touch_ms",
                "GPU first touch",
                "time (ms, log scale)",
                Scale::Log10,
            ),
            (
                "sweep.fill_gbps",
                "Fill bandwidth",
                "bandwidth (GB/s = 1e9 bytes/s, log scale)",
                Scale::Log10,
            ),
            (
                "sweep.read_gbps",
                "Read bandwidth",
                "bandwidth (GB/s = 1e9 bytes/s, log scale)",
                Scale::Log10,
            ),
        ] {
            let (Some(t), Some(size)) = (rep.tables.iter().find(|t| t.id == id), common) else {
                continue;
            };
            let suffix = format!(" @ {}", fmt_bytes(size));
            let rows: Vec<&CompareRow> =
                t.rows.iter().filter(|r| r.key.ends_with(&suffix)).collect();
            if rows.is_empty() {
                continue;
            }
            let rows_short: Vec<CompareRow> = rows
                .iter()
                .map(|r| CompareRow {
                    key: r.key.trim_end_matches(&suffix).to_string(),
                    ..(*r).clone()
                })
                .collect();
            let refs: Vec<&CompareRow> = rows_short.iter().collect();
            let fig = body.figure(
                &format!("{}-{}", id.trim_start_matches("sweep."), fmt_bytes(size)),
                format!(
                    "{what} per strategy at {}, one bar per machine",
                    fmt_bytes(size)
                ),
                format!(
                    "The largest size every machine measured; from the sweep's `{}` rows.",
                    id.trim_start_matches("sweep.")
                        .trim_end_matches("_ms")
                        .trim_end_matches("_gbps")
                ),
                bars(&refs, format!("{what} at {}", fmt_bytes(size)), unit, scale)?,
            );
            if id == "sweep.fill_gbps"
                && let Some(r) = rows_short.iter().find(|r| r.key == "device")
            {
                findings.push(format!(
                    "{fig}: device memory fill at {}: {}.",
                    fmt_bytes(size),
                    per_machine(r, t.reference, &ids, 0, "GB/s")
                ));
            }
            if id == "sweep.gpu_first_touch_ms"
                && let Some(r) = rows_short.iter().find(|r| r.key == "managed")
            {
                findings.push(format!(
                    "{fig}: managed memory's first GPU touch of {}: {}.",
                    fmt_bytes(size),
                    per_machine(r, t.reference, &ids, 1, "ms")
                ));
            }
        }
        for id in [
            "sweep.alloc_ms",
            "sweep.gpu_first_touch_ms",
            "sweep.gpu_second_touch_ms",
            "sweep.cpu_first_touch_ms",
            "sweep.fill_gbps",
            "sweep.read_gbps",
            "sweep.free_ms",
        ] {
            table(&mut body, id);
        }
    }

    if let Some(t) = rep.tables.iter().find(|t| t.id == "probe.max_gib") {
        body.h2("Probe");
        let rows: Vec<&CompareRow> = t.rows.iter().collect();
        let fig = body.figure(
            "probe",
            "Largest allocation per strategy, one bar per machine",
            "The probe's `max_bytes` per strategy and kind.",
            bars(
                &rows,
                "Largest allocation per strategy".into(),
                "largest allocation (GiB = 2^30 bytes)",
                Scale::Linear,
            )?,
        );
        table(&mut body, "probe.max_gib");
        if let Some(r) = t.rows.iter().find(|r| r.key == "device (single)") {
            findings.push(format!(
                "{fig}: the largest single device allocation: {}.",
                per_machine(r, t.reference, &ids, 2, "GiB")
            ));
        }
    }
    if rep.tables.iter().any(|t| t.id.starts_with("layout")) {
        body.h2("Layout");
        table(&mut body, "layout.overhead_pct");
        table(&mut body, "layout");
    }
    if let Some(t) = rep
        .tables
        .iter()
        .find(|t| t.id == "plan.max_params_billions")
    {
        body.h2("Plan");
        let rows: Vec<&CompareRow> = t.rows.iter().collect();
        body.figure(
            "plan",
            "Largest dense model per workload, one bar per machine",
            "`plan --capacity` for each machine's usable memory (or its target without a GPU).",
            bars(
                &rows,
                "Largest dense model per workload".into(),
                "parameters (billions)",
                Scale::Linear,
            )?,
        );
        table(&mut body, "plan.max_params_billions");
    }
    if rep.tables.iter().any(|t| t.id.starts_with("accounting.")) {
        body.h2("Memory accounting");
        table(&mut body, "accounting.start_gib");
        table(&mut body, "accounting.cached_gib");
    }
    headline::lift(&mut p, &mut body, head_blocks);
    p.h2("Findings");
    if findings.is_empty() {
        p.para("No measurement common to the machines to compare.");
    } else {
        p.bullets(findings);
    }
    p.blocks.extend(body.blocks);
    Ok(p)
}

/// "A 4568 GB/s, B 3350 GB/s (0.73x)".
fn per_machine(
    r: &CompareRow,
    reference: usize,
    labels: &[String],
    decimals: usize,
    unit: &str,
) -> String {
    r.values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.map(|v| {
                let ratio = match r.ratios[i] {
                    Some(q) if i != reference => format!(" ({})", fmt_ratio(Some(q))),
                    _ => String::new(),
                };
                format!("{} {v:.decimals$} {unit}{ratio}", labels[i])
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sweep sizes with an `alloc` row in every column that has a sweep, and the others with
/// the columns (indices into `cols`) that have them.
type SizeSets = (Vec<u64>, Vec<(u64, Vec<usize>)>);

fn sweep_sizes(inputs: &[Input], cols: &[(usize, Column)]) -> SizeSets {
    let sets: Vec<(usize, Vec<u64>)> = cols
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let s = sweep_rows(inputs, c)
                .into_iter()
                .filter(|r| r.phase == phase::ALLOC)
                .map(|r| r.bytes)
                .collect::<Vec<u64>>();
            (k, s)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let mut all: Vec<u64> = sets.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    let (mut common, mut partial) = (Vec::new(), Vec::new());
    for b in all {
        let have: Vec<usize> = sets
            .iter()
            .filter(|(_, s)| s.contains(&b))
            .map(|(k, _)| *k)
            .collect();
        if have.len() == sets.len() {
            common.push(b);
        } else {
            partial.push((b, have));
        }
    }
    (common, partial)
}

/// The largest sweep size with an `alloc` row in every column that has a sweep.
fn common_size(inputs: &[Input], cols: &[(usize, Column)]) -> Option<u64> {
    sweep_sizes(inputs, cols).0.into_iter().max()
}

// ---------------------------------------------------------------- command line

/// `cumemlab compare` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab compare cumemlab-results/spark-2025-06-01 cumemlab-results/h100-2025-06-01\n  cumemlab compare /shared/cumemlab --out compare/     (every lab folder of a fleet)\n  cumemlab compare gb10/results.json h100-sweep.json --json\n\n\
Inputs: lab folders (or their results.json), a folder of lab folders, sweep or probe result\n\
files. Each device of each input is one machine; the first is the reference of every ratio."
)]
pub struct CompareArgs {
    /// Results to compare (the first is the reference for the ratios).
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Write compare.md, compare.html (plots inline), compare.json and plots/ into this folder (created).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the comparison as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Reads every input; at least two machines are needed.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for p in paths {
        inputs.extend(read_inputs(p)?);
    }
    let n = columns(&inputs).len();
    if n < 2 {
        return Err(Error::usage(format!(
            "compare needs at least two machines (devices of the inputs) and found {n}: give two result folders or files, or a folder of lab folders"
        )));
    }
    Ok(inputs)
}

/// Writes compare.md, compare.html, compare.json and the plots into `dir`.
pub fn write(rep: &CompareReport, inputs: &[Input], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("plots")).map_err(|e| {
        Error::usage(format!(
            "--out {}: cannot create the folder ({e})",
            dir.display()
        ))
    })?;
    let p = page(rep, inputs)?;
    for f in p.figures() {
        write_atomic(&dir.join("plots").join(&f.file), f.svg.as_bytes())?;
    }
    write_atomic(
        &dir.join("compare.md"),
        crate::report::markdown::to_markdown(&p, "plots").as_bytes(),
    )?;
    write_atomic(
        &dir.join("compare.html"),
        crate::report::html::to_html(&p).as_bytes(),
    )?;
    write_atomic(&dir.join("compare.json"), &to_json(rep)?)?;
    Ok(())
}

/// Runs `compare` from the command line.
pub fn main(args: CompareArgs) -> Result<()> {
    let inputs = load(&args.inputs)?;
    let rep = build(&inputs);
    if let Some(dir) = &args.out {
        super::exit_on_first_signal();
        super::check_interrupt()?;
        write(&rep, &inputs, dir)?;
    }
    if args.json {
        crate::report::sink::print_stdout(to_json(&rep)?)?;
    } else {
        let mut text = render_text(&rep);
        if let Some(dir) = &args.out {
            text.push_str(&format!(
                "written: {}, {}, {}\n",
                dir.join("compare.html").display(),
                dir.join("compare.md").display(),
                dir.join("compare.json").display()
            ));
        }
        crate::report::sink::print_stdout(text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_against_the_first() {
        let r = row("x".into(), vec![Some(2.0), Some(1.0), None, Some(8.0)]);
        assert_eq!(r.ratios, vec![Some(1.0), Some(0.5), None, Some(4.0)]);
        let r = row("x".into(), vec![None, Some(1.0)]);
        assert_eq!(r.ratios, vec![None, None]);
        assert_eq!(fmt_ratio(Some(0.0612)), "0.061x");
        assert_eq!(fmt_ratio(Some(1.5)), "1.50x");
    }

    #[test]
    fn a_table_without_figures_in_a_takes_the_first_machine_with_figures_as_reference() {
        let mut tables = Vec::new();
        push(
            &mut tables,
            "t",
            "t",
            1,
            Some(false),
            vec![
                row("x".into(), vec![None, Some(2.0), Some(4.0)]),
                row("y".into(), vec![None, None, Some(3.0)]),
            ],
        );
        let t = &tables[0];
        assert_eq!(t.reference, 1);
        assert_eq!(t.rows[0].ratios, vec![None, Some(1.0), Some(2.0)]);
        assert_eq!(t.direction(), "lower is better");
        let col = |id: &str| Column {
            id: id.into(),
            label: id.into(),
            path: String::new(),
            kind: String::new(),
            host: String::new(),
            device: None,
            device_name: None,
        };
        let cols = [col("A"), col("B"), col("C")];
        assert_eq!(t.against(&cols), "ratios against B (A has no figures here)");
        let (header, body) = table_cells(t, &cols);
        assert_eq!(header, vec!["t", "A", "B", "C", "C/B"]);
        assert_eq!(body[0], vec!["x", "-", "2.0", "4.0", "2.00x"]);
    }
}
