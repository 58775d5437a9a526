//! What `compare` and the experiments' comparable figures share: the inputs and columns, the
//! tables and their rows with ratios against a reference column, the machine facts, the report
//! document, and the contexts an experiment's `compare`/`compare_page` hooks receive (with the
//! helpers that draw a table or a bar chart of one of its tables).
//!
//! May import: the lab's results (an input is normalised into them), the report page and plots.
//! Pure data and formatting: nothing here reads files or knows an experiment.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::experiments::lab::LabResults;
use crate::report::markdown::Page;
use crate::report::plots::{BarChart, BarSeries, Scale, bar_chart};

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

/// Each value over `values[reference]`.
pub fn ratios(values: &[Option<f64>], reference: usize) -> Vec<Option<f64>> {
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
pub fn row(key: String, values: Vec<Option<f64>>) -> CompareRow {
    CompareRow {
        key,
        ratios: ratios(&values, 0),
        values,
    }
}

/// Adds a table: rows without a figure are dropped, a table without rows is not added, and
/// the ratios are against the first column with a figure.
pub fn push_table(
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

pub fn fmt_num(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

pub fn fmt_ratio(v: Option<f64>) -> String {
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

/// What an experiment's `compare` hook reads: every input and the columns (input index, column).
pub struct CompareCtx<'a> {
    pub inputs: &'a [Input],
    pub cols: &'a [(usize, Column)],
}

/// What the `compare` hooks add to: tables, machine facts, notes.
#[derive(Debug, Default)]
pub struct CompareOut {
    pub tables: Vec<CompareTable>,
    pub machines: Vec<FactRow>,
    pub notes: Vec<String>,
}

impl CompareOut {
    /// Adds a table (see [`push_table`]).
    pub fn push(
        &mut self,
        id: &str,
        title: &str,
        decimals: usize,
        higher_is_better: Option<bool>,
        rows: impl IntoIterator<Item = CompareRow>,
    ) {
        push_table(
            &mut self.tables,
            id,
            title,
            decimals,
            higher_is_better,
            rows,
        );
    }
}

/// What an experiment's `compare_page` hook reads: the built report and the inputs.
pub struct PageCtx<'a> {
    pub rep: &'a CompareReport,
    pub inputs: &'a [Input],
    pub cols: &'a [(usize, Column)],
    /// "A: label" per column (the series names of the plots).
    pub labels: Vec<String>,
    /// `A`, `B`, ... per column.
    pub ids: Vec<String>,
}

impl PageCtx<'_> {
    /// The table `id`, when the report has it.
    pub fn find(&self, id: &str) -> Option<&CompareTable> {
        self.rep.tables.iter().find(|t| t.id == id)
    }

    /// Adds the table `id` to `p` (nothing when absent); returns its label ("Table N").
    pub fn table(&self, p: &mut Page, id: &str) -> Option<String> {
        let t = self.find(id)?;
        let (h, b) = table_cells(t, &self.rep.columns);
        Some(p.table(
            format!(
                "{} ({}; {})",
                t.title,
                t.direction(),
                t.against(&self.rep.columns)
            ),
            &h,
            b,
        ))
    }

    /// A bar chart of `rows`, one series per machine.
    pub fn bars(
        &self,
        rows: &[&CompareRow],
        title: String,
        unit: &str,
        scale: Scale,
    ) -> Result<String> {
        bar_chart(&BarChart {
            title,
            value_label: unit.into(),
            categories: rows.iter().map(|r| r.key.clone()).collect(),
            series: self
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| BarSeries {
                    name: l.clone(),
                    values: rows.iter().map(|r| r.values[i]).collect(),
                })
                .collect(),
            scale,
            reference_lines: Vec::new(),
            annotate: rows.len() * self.labels.len() <= 40,
        })
    }

    /// "A 4568 GB/s, B 3350 GB/s (0.73x)" for row `r`.
    pub fn per_machine(
        &self,
        r: &CompareRow,
        reference: usize,
        decimals: usize,
        unit: &str,
    ) -> String {
        per_machine(r, reference, &self.ids, decimals, unit)
    }
}

/// "A 4568 GB/s, B 3350 GB/s (0.73x)".
pub fn per_machine(
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
        push_table(
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
