//! The probe section of the lab report: the largest allocation per strategy against
//! `cuMemGetInfo` free, and why each search stopped.

use super::findings::{Findings, gib};
use crate::error::Result;
use crate::experiments::lab::LabResults;
use crate::experiments::probe::ProbeRow;
use crate::report::markdown::Page;
use crate::report::plots::{BarChart, BarSeries, RefLine, Scale, bar_chart};
use crate::units::GIB;

/// The section (nothing without probe results).
pub fn section(r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
    let Some(s) = &r.probe else { return Ok(()) };
    if s.rows.is_empty() && s.skipped.is_empty() {
        return Ok(());
    }
    p.h2("Probe: how much can really be allocated");
    p.para("Per strategy, the largest single allocation (bisection up to the safety ceiling) and the most held at once in chunks; each says why it stopped (an out-of-memory failure is the real limit; a ceiling or cap is not).");
    let mut devices: Vec<i32> = s.rows.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    for dev in devices {
        device(r, &s.rows, dev, p, findings)?;
    }
    if !s.skipped.is_empty() {
        p.para("Not probed:");
        p.bullets(s.skipped.clone());
    }
    Ok(())
}

/// One device's probe: the limits figure, the table, the finding.
fn device(
    r: &LabResults,
    all: &[ProbeRow],
    dev: i32,
    p: &mut Page,
    findings: &mut Findings,
) -> Result<()> {
    let rows: Vec<&ProbeRow> = all.iter().filter(|r| r.device == dev).collect();
    let name = r.device_name(dev);
    findings.group = format!("Probe, device {dev} ({name})");
    let mut strategies: Vec<String> = Vec::new();
    for x in &rows {
        if !strategies.contains(&x.strategy.to_string()) {
            strategies.push(x.strategy.to_string());
        }
    }
    let mut kinds: Vec<crate::experiments::probe::ProbeKind> = Vec::new();
    for x in &rows {
        if !kinds.contains(&x.kind) {
            kinds.push(x.kind);
        }
    }
    let series = kinds
        .iter()
        .map(|k| BarSeries {
            name: match k.key() {
                "single" => "largest single allocation".to_string(),
                _ => "most held at once (chunks)".to_string(),
            },
            values: strategies
                .iter()
                .map(|st| {
                    rows.iter()
                        .find(|x| x.strategy == st && x.kind == *k)
                        .map(|x| x.max_bytes as f64 / GIB as f64)
                })
                .collect(),
        })
        .collect();
    let free = rows.first().map(|x| x.device_free_bytes).unwrap_or(0);
    let avail = rows.first().map(|x| x.mem_available_bytes).unwrap_or(0);
    let mut refs = vec![RefLine {
        name: format!(
            "cuMemGetInfo free before the first probe ({} GiB)",
            gib(free)
        ),
        value: free as f64 / GIB as f64,
    }];
    if avail > 0 {
        refs.push(RefLine {
            name: format!("MemAvailable ({} GiB)", gib(avail)),
            value: avail as f64 / GIB as f64,
        });
    }
    let svg = bar_chart(&BarChart {
        title: format!("Probe limits per strategy, device {dev} ({name})"),
        value_label: "largest allocation (GiB = 2^30 bytes)".into(),
        categories: strategies.clone(),
        series,
        scale: Scale::Linear,
        reference_lines: refs,
        annotate: true,
    })?;
    let fig = p.figure(
        &format!("probe-dev{dev}"),
        format!("Probe limits per strategy, device {dev} ({name})"),
        "The probe's `max_bytes` per strategy and kind; the dashed lines are `cuMemGetInfo` free and MemAvailable taken just before the first probe. A bar that stops at a ceiling or cap is a lower bound (see the table).",
        svg,
    );
    limits_table(dev, &name, &rows, p);
    let singles: Vec<String> = rows
        .iter()
        .filter(|x| x.kind.key() == "single")
        .map(|x| {
            format!(
                "{} {} GiB ({})",
                x.strategy,
                gib(x.max_bytes),
                x.stop_reason.phrase()
            )
        })
        .collect();
    if !singles.is_empty() {
        findings.push(format!(
            "{fig}: on device {dev}, with cuMemGetInfo reporting {} GiB free, the largest single allocations were: {}.",
            gib(free),
            singles.join("; ")
        ));
    }
    Ok(())
}

/// The table of every probe of one device.
fn limits_table(dev: i32, name: &str, rows: &[&ProbeRow], p: &mut Page) {
    let body = rows
        .iter()
        .map(|x| {
            vec![
                x.strategy.to_string(),
                x.kind.key().to_string(),
                gib(x.max_bytes),
                if x.device_free_bytes > 0 {
                    format!(
                        "{:.1}",
                        100.0 * x.max_bytes as f64 / x.device_free_bytes as f64
                    )
                } else {
                    "-".into()
                },
                x.stop_reason.phrase().to_string(),
                format!("{} ({})", x.attempts, x.failures),
                gib(x.device_free_bytes),
                gib(x.mem_available_bytes),
                format!("{:.1}", x.elapsed_ms / 1e3),
            ]
        })
        .collect();
    p.table(
        format!("Probe limits, device {dev} ({name})"),
        &[
            "strategy",
            "kind",
            "max (GiB)",
            "% of cuMemGetInfo free",
            "stopped at",
            "attempts (out of memory)",
            "cuMemGetInfo free before (GiB)",
            "MemAvailable before (GiB)",
            "time (s)",
        ],
        body,
    );
}
