//! Building the comparison: the columns' tables, asked of each experiment of the registry,
//! the machine facts, the lab's accounting tables and the headline table of every machine.
//!
//! May import: the registry, compare's model and input, the lab's results, the headline.

use std::path::Path;

use super::input::{columns, input_name};
use crate::experiments::lab::comparable::{
    Column, CompareCtx, CompareOut, CompareReport, CompareRow, FactRow, HeadlineTable, Input, row,
};
use crate::experiments::lab::registry;
use crate::experiments::lab::{self, AccountingSnapshot};
use crate::experiments::sweep::headline;
use crate::report::sink::now_rfc3339;
use crate::report::{SCHEMA, SCHEMA_VERSION};
use crate::units::GIB;

/// Builds every table: each experiment's (asked of the registry, in its order), then the
/// lab's accounting at the start.
pub fn build(inputs: &[Input]) -> CompareReport {
    let cols = columns(inputs);
    let ctx = CompareCtx {
        inputs,
        cols: &cols,
    };
    let mut out = CompareOut::default();
    for exp in registry::EXPERIMENTS {
        exp.compare(&ctx, &mut out);
    }
    let mut machines = machine_facts(inputs, &cols);
    machines.append(&mut out.machines);
    accounting(&ctx, &mut out);
    CompareReport {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        experiment: "compare".into(),
        created_at: now_rfc3339(),
        headline: headline_table(inputs, &cols),
        columns: cols.into_iter().map(|c| c.1).collect(),
        machines,
        tables: out.tables,
        notes: out.notes,
    }
}

/// A figure of an accounting snapshot for a device.
type AccountingGet = fn(&AccountingSnapshot, Option<i32>) -> Option<f64>;

/// The lab's accounting at the start (not an experiment's: every lab records it).
fn accounting(ctx: &CompareCtx, out: &mut CompareOut) {
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
                    ctx.cols
                        .iter()
                        .map(|c| {
                            ctx.inputs[c.0]
                                .results
                                .accounting
                                .first()
                                .and_then(|s| get(s, c.1.device))
                        })
                        .collect(),
                )
            })
            .collect();
        out.push(id, title, 2, hib, rows);
    }
}

/// Each machine's headline (`None` where its input has no sweep for that device), as one table.
fn headline_table(inputs: &[Input], cols: &[(usize, Column)]) -> Option<HeadlineTable> {
    let heads: Vec<Option<headline::Headline>> = cols
        .iter()
        .map(|(i, c)| {
            inputs[*i]
                .results
                .headlines()
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
pub const HEADLINE_TITLE: &str = "What memory costs on each machine, per GiB (each machine at its own largest sweep size; ratios against A)";

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
