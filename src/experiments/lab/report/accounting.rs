//! The memory accounting section of the lab report: `cuMemGetInfo` free against MemAvailable,
//! MemFree and Cached at the start and at the end of the lab (the lab's own snapshots, not an
//! experiment's).

use super::findings::{Findings, gib, gib_signed};
use crate::error::Result;
use crate::experiments::lab::{AccountingSnapshot, LabResults};
use crate::report::markdown::Page;
use crate::report::plots::{BarChart, BarSeries, Scale, bar_chart};
use crate::units::GIB;

/// The section (nothing without snapshots).
pub fn section(r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
    let snaps = &r.accounting;
    if snaps.is_empty() {
        return Ok(());
    }
    p.h2("Memory accounting");
    findings.group = "Memory accounting".into();
    p.para("What the driver and the kernel say is free, at the start and at the end of the lab: `cuMemGetInfo` free per device against /proc/meminfo's MemAvailable (what the kernel can give, page cache included), MemFree (unused) and Cached (the page cache).");
    let mut cats: Vec<String> = Vec::new();
    let mut devs: Vec<(i32, String)> = Vec::new();
    for s in snaps {
        for d in &s.devices {
            if !devs.iter().any(|x| x.0 == d.device) {
                devs.push((d.device, d.name.clone()));
            }
        }
    }
    for (d, _) in &devs {
        cats.push(format!("cuMemGetInfo free, device {d}"));
    }
    cats.extend(["MemTotal", "MemAvailable", "MemFree", "Cached"].map(String::from));
    let values = |s: &AccountingSnapshot| -> Vec<Option<f64>> {
        let g = |b: u64| Some(b as f64 / GIB as f64);
        let mut v: Vec<Option<f64>> = devs
            .iter()
            .map(|(d, _)| {
                s.devices
                    .iter()
                    .find(|x| x.device == *d)
                    .and_then(|x| g(x.cumemgetinfo_free_bytes))
            })
            .collect();
        v.extend([
            g(s.mem_total_bytes),
            g(s.mem_available_bytes),
            g(s.mem_free_bytes),
            g(s.cached_bytes),
        ]);
        v
    };
    let series = snaps
        .iter()
        .map(|s| BarSeries {
            name: format!("at the {}", s.when),
            values: values(s),
        })
        .collect();
    // Without a GPU there is no cuMemGetInfo series: the titles say what is plotted.
    let (title, caption) = if devs.is_empty() {
        (
            "Host memory: MemAvailable, MemFree and the page cache (no GPU here)",
            "Memory accounting: MemTotal, MemAvailable, MemFree and Cached (no GPU, so no cuMemGetInfo)",
        )
    } else {
        (
            "cuMemGetInfo against MemAvailable and the page cache",
            "Memory accounting: cuMemGetInfo free against MemAvailable, MemFree and Cached",
        )
    };
    let svg = bar_chart(&BarChart {
        title: title.into(),
        value_label: "memory (GiB = 2^30 bytes)".into(),
        categories: cats.clone(),
        series,
        scale: Scale::Linear,
        reference_lines: Vec::new(),
        annotate: true,
    })?;
    let fig = p.figure(
        "accounting",
        caption,
        "From the environment recorded at the start of the lab and again at its end (`accounting` in results.json).",
        svg,
    );
    let mut header = vec!["GiB".to_string()];
    header.extend(snaps.iter().map(|s| format!("at the {}", s.when)));
    let table_rows: Vec<Vec<String>> = cats
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut line = vec![c.clone()];
            line.extend(
                snaps
                    .iter()
                    .map(|s| values(s)[i].map_or("-".into(), |v| format!("{v:.2}"))),
            );
            line
        })
        .collect();
    p.table("Memory accounting (GiB = 2^30 bytes)", &header, table_rows);

    accounting_findings(r, snaps, &fig, findings);
    Ok(())
}

/// Findings: what `cuMemGetInfo` says against MemAvailable per device (unified or discrete), or
/// the host alone, and a free figure that moved between the start and the end.
fn accounting_findings(
    r: &LabResults,
    snaps: &[AccountingSnapshot],
    fig: &str,
    findings: &mut Findings,
) {
    let s0 = &snaps[0];
    for d in &s0.devices {
        let unified = r
            .environment
            .devices
            .iter()
            .find(|x| x.ordinal == d.device)
            .is_some_and(|x| x.architecture.is_unified());
        if unified {
            let hidden = s0.mem_available_bytes as i64 - d.cumemgetinfo_free_bytes as i64;
            findings.push(format!(
                "{fig}: on device {} (unified memory) cuMemGetInfo reports {} GiB free while MemAvailable is {} GiB: it understates what can be allocated by {} GiB, with {} GiB of page cache (Cached) that the kernel reclaims on demand.",
                d.device,
                gib(d.cumemgetinfo_free_bytes),
                gib(s0.mem_available_bytes),
                gib_signed(hidden),
                gib(s0.cached_bytes)
            ));
        } else {
            findings.push(format!(
                "{fig}: on device {} (discrete) cuMemGetInfo reports {} GiB free of {} GiB of the card's own memory; the host's MemAvailable ({} GiB, with {} GiB of page cache) bounds pinned, registered and managed host memory instead.",
                d.device,
                gib(d.cumemgetinfo_free_bytes),
                gib(d.cumemgetinfo_total_bytes),
                gib(s0.mem_available_bytes),
                gib(s0.cached_bytes)
            ));
        }
    }
    if s0.devices.is_empty() {
        findings.push(format!(
            "{fig}: this host has {} GiB available (MemAvailable) of {} GiB, {} GiB of it page cache (Cached); on a GB10 cuMemGetInfo would report MemFree ({} GiB), not MemAvailable.",
            gib(s0.mem_available_bytes),
            gib(s0.mem_total_bytes),
            gib(s0.cached_bytes),
            gib(s0.mem_free_bytes)
        ));
    }
    if let (Some(first), Some(last)) = (snaps.first(), snaps.last())
        && snaps.len() > 1
    {
        for d in &first.devices {
            if let Some(e) = last.devices.iter().find(|x| x.device == d.device) {
                let diff = e.cumemgetinfo_free_bytes as i64 - d.cumemgetinfo_free_bytes as i64;
                if diff.unsigned_abs() > 256 * crate::units::MIB {
                    findings.push(format!(
                        "{fig}: cuMemGetInfo free on device {} changed by {} GiB between the start and the end of the lab (memory not returned, or other processes).",
                        d.device,
                        gib_signed(diff)
                    ));
                }
            }
        }
    }
}
