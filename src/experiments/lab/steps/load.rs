//! `load` as a lab step (issue 11) on the first device: a synthetic llama-3.1-8b-shaped file
//! through every load path, cold and warm, then the host<->device copy matrix, through
//! [`crate::experiments::load::lab_step`]. Its section lives in `LabResults::sections` under
//! `load` (no field of LabResults); its CSVs, report section and per-path GB/s for `compare`.
//!
//! It runs in the default two-minute lab and above (a file of [`FILE_BYTES`], 3 runs per path and
//! state, the copy matrix up to [`COPIES_MAX`]: about 30 s on an H200, `cost::LOAD_S`); a budget
//! under two minutes records it as skipped with that reason.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::experiments::lab::LabResults;
use crate::experiments::lab::comparable::{CompareCtx, CompareOut, CompareRow, row};
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::experiments::lab::report::Findings;
use crate::experiments::load::{self, CopyRow, LoadRow};
use crate::report::markdown::Page;
use crate::report::sink::to_csv;
use crate::stats::Summary;
use crate::units::{GIB, MIB, fmt_bytes};

/// The section key in results.json.
pub const KEY: &str = "load";
/// The synthetic file's size.
pub const FILE_BYTES: u64 = GIB;
/// The copy matrix's largest piece and total.
pub const COPIES_MAX: u64 = 64 * MIB;
/// Runs per path and cache state (n >= 3).
pub const REPEAT: u32 = 3;
/// The smallest budget, minutes, that runs it.
pub const MIN_BUDGET_MINUTES: f64 = 2.0;

/// `load`.
pub struct Load;

/// The lab's `load` section: every device's rows together.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadSection {
    pub rows: Vec<LoadRow>,
    pub copies: Vec<CopyRow>,
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
}

impl Experiment for Load {
    fn about(&self) -> About {
        About {
            name: "load",
            key: KEY,
            needs_gpu: true,
            scope: Scope::FirstDevice,
        }
    }
    fn not_wanted(&self, ctx: &StepContext) -> Option<String> {
        (ctx.opts.budget_minutes < MIN_BUDGET_MINUTES).then(|| {
            format!(
                "runs with --budget {MIN_BUDGET_MINUTES:.0} or more (a {} synthetic file by every path, cold and warm, and the copy matrix)",
                fmt_bytes(FILE_BYTES)
            )
        })
    }
    fn run(&self, ctx: &StepContext, device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        let gpu = super::open_gpu(device)?;
        let dir = crate::host::cache::default_fill_dir();
        let step = load::lab_step(
            &gpu,
            &dir,
            FILE_BYTES,
            COPIES_MAX,
            REPEAT,
            ctx.opts.headroom,
        )?;
        let mut section: LoadSection = res.section(KEY)?.unwrap_or_default();
        let bad: Vec<String> = step
            .rows
            .iter()
            .filter(|r| !r.checksum_ok)
            .map(|r| format!("{} ({}, run {})", r.path, r.state, r.run))
            .collect();
        section.rows.extend(step.rows);
        section.copies.extend(step.copies);
        section.skipped.extend(step.skipped);
        section.notes.extend(step.findings);
        res.put_section(KEY, &section)?;
        Ok(if bad.is_empty() {
            Ran::Ok
        } else {
            Ran::Failed(format!(
                "checksum differs from the file's: {}",
                bad.join(", ")
            ))
        })
    }
    fn csv_files(&self, r: &LabResults) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let Some(s) = r.section::<LoadSection>(KEY)? else {
            return Ok(Vec::new());
        };
        Ok(vec![
            ("load.csv", to_csv(&s.rows)?),
            ("load-copies.csv", to_csv(&s.copies)?),
        ])
    }
    fn report(&self, r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
        let Some(s) = r.section::<LoadSection>(KEY)? else {
            return Ok(());
        };
        p.h2("Load: a model file into GPU memory by every path");
        findings.group = "Load".into();
        let body: Vec<Vec<String>> = path_states(&s.rows)
            .into_iter()
            .map(|(path, state)| {
                let g = gbps(&s.rows, &path, &state);
                vec![
                    path,
                    state,
                    g.as_ref().map_or("-".into(), |x| {
                        format!("{:.2} [{:.2}-{:.2}]", x.median, x.min, x.max)
                    }),
                    g.map_or("-".into(), |x| x.runs.to_string()),
                ]
            })
            .collect();
        let t = p.table(
            "Load GB/s (1e9 bytes/s) per path and cache state: median [min-max]",
            &["path", "state", "GB/s", "n"],
            body,
        );
        for n in &s.notes {
            findings.push(format!("{t}: {n}"));
        }
        if !s.skipped.is_empty() {
            p.para("Not run:");
            p.bullets(s.skipped.clone());
        }
        Ok(())
    }
    fn compare(&self, ctx: &CompareCtx, out: &mut CompareOut) {
        let sections: Vec<Option<LoadSection>> = ctx
            .cols
            .iter()
            .map(|c| {
                // The step ran on the input's first device: its column carries the figures.
                let r = &ctx.inputs[c.0].results;
                let first = r.settings.devices.first().copied();
                (c.1.device.is_some() && c.1.device == first)
                    .then(|| r.section::<LoadSection>(KEY).ok().flatten())
                    .flatten()
            })
            .collect();
        let mut keys: Vec<(String, String)> = Vec::new();
        for s in sections.iter().flatten() {
            for k in path_states(&s.rows) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        let rows: Vec<CompareRow> = keys
            .iter()
            .map(|(path, state)| {
                let values = sections
                    .iter()
                    .map(|s| {
                        s.as_ref()
                            .and_then(|s| gbps(&s.rows, path, state))
                            .map(|x| x.median)
                    })
                    .collect();
                row(format!("{path} ({state})"), values)
            })
            .collect();
        out.push(
            "load.gbps",
            "load: GB/s (1e9 bytes/s) per path and cache state, median",
            2,
            Some(true),
            rows,
        );
    }
}

/// (path, state) pairs in the order they ran.
fn path_states(rows: &[LoadRow]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for r in rows {
        let k = (r.path.clone(), r.state.clone());
        if !v.contains(&k) {
            v.push(k);
        }
    }
    v
}

/// GB/s of one path and state over its runs.
fn gbps(rows: &[LoadRow], path: &str, state: &str) -> Option<Summary> {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.path == path && r.state == state)
        .map(|r| r.gbps)
        .collect();
    Summary::of(&v)
}
