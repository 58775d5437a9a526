//! The files of a results folder besides `results.json`: `steps.csv`, `accounting.csv`, each
//! experiment's CSV (asked of the registry), `plots/*.svg`, `report.md` and `report.html`.
//!
//! May import: the registry, the lab's results and report, the result sink's writers.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::report;
use super::results::LabResults;
use crate::error::{Error, Result};
use crate::experiments::lab::registry;
use crate::report::sink::to_csv;
use crate::report::write_atomic;

/// A flat CSV row of the accounting snapshots (one per device, or one without a device).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccountingCsvRow {
    pub when: String,
    pub device: Option<i32>,
    pub cumemgetinfo_free_bytes: Option<u64>,
    pub cumemgetinfo_total_bytes: Option<u64>,
    pub mem_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub cached_bytes: u64,
    pub swap_free_bytes: u64,
}

/// The CSV files of a results folder: (file name, contents).
pub fn csv_files(r: &LabResults) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![("steps.csv".to_string(), to_csv(&r.steps)?)];
    let mut acc = Vec::new();
    for a in &r.accounting {
        let base = AccountingCsvRow {
            when: a.when.clone(),
            device: None,
            cumemgetinfo_free_bytes: None,
            cumemgetinfo_total_bytes: None,
            mem_total_bytes: a.mem_total_bytes,
            mem_free_bytes: a.mem_free_bytes,
            mem_available_bytes: a.mem_available_bytes,
            cached_bytes: a.cached_bytes,
            swap_free_bytes: a.swap_free_bytes,
        };
        if a.devices.is_empty() {
            acc.push(base.clone());
        }
        for d in &a.devices {
            acc.push(AccountingCsvRow {
                device: Some(d.device),
                cumemgetinfo_free_bytes: Some(d.cumemgetinfo_free_bytes),
                cumemgetinfo_total_bytes: Some(d.cumemgetinfo_total_bytes),
                ..base.clone()
            });
        }
    }
    out.push(("accounting.csv".into(), to_csv(&acc)?));
    for exp in registry::EXPERIMENTS {
        for (name, bytes) in exp.csv_files(r)? {
            out.push((name.to_string(), bytes));
        }
    }
    Ok(out)
}

/// Writes the CSVs, `plots/*.svg`, `report.md` and `report.html` of `r` into `dir` (each file
/// atomically); returns the report's findings.
pub fn write_report(r: &LabResults, dir: &Path) -> Result<Vec<String>> {
    for (name, bytes) in csv_files(r)? {
        write_atomic(&dir.join(name), &bytes)?;
    }
    let page = report::build(r)?;
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    for f in page.page.figures() {
        write_atomic(&plots.join(&f.file), f.svg.as_bytes())?;
    }
    write_atomic(
        &dir.join("report.md"),
        crate::report::markdown::to_markdown(&page.page, "plots").as_bytes(),
    )?;
    write_atomic(
        &dir.join("report.html"),
        crate::report::html::to_html(&page.page).as_bytes(),
    )?;
    Ok(page.findings)
}
