//! The lab report, built from a [`LabResults`] alone (so every number in it comes from
//! `results.json`, and `lab --from DIR` can rebuild it): numbered figures and tables per
//! experiment and per device, and the findings, each naming the figure or table it comes from.
//!
//! Figures: allocation time against size per strategy (log-log), first against second touch per
//! strategy at the largest size, bandwidth per strategy against `device` fill and `cuMemsetD32`,
//! the memory accounting view (`cuMemGetInfo` free against MemAvailable, MemFree and Cached), and
//! the probe limits per strategy against `cuMemGetInfo` free. Sweep figures and tables show the
//! spread over fresh allocations (median [min-max], whiskers), and comparisons follow the overlap
//! rule of [`crate::stats::order`].

//!
//! This module assembles the page: the intro, the steps and the machine, then each
//! experiment's section in registry order (each in its own file under `report/`, called through
//! the experiment's [`registry::Experiment::report`]), the lab's accounting section, and the files.
//!
//! May import: the registry, the lab's results, the report page and headline; the section
//! modules import the experiments' row types.

pub mod accounting;
pub mod cache;
pub mod findings;
pub mod layout;
pub mod plan;
pub mod probe;
pub mod selftest;
pub mod sweep;

pub use findings::{Findings, gib, gib_signed};
pub use sweep::{sweep_sizes, sweep_strategies};

use super::{LabResults, StepStatus};
use crate::error::Result;
use crate::experiments::lab::registry;
use crate::experiments::sweep::headline;
use crate::report::markdown::Page;
use crate::units::fmt_bytes;

/// A built report: the page and its findings (also on the page).
pub struct LabPage {
    pub page: Page,
    pub findings: Vec<String>,
}

/// The title of the page: host and devices.
fn title(r: &LabResults) -> String {
    let mut names: Vec<String> = r
        .environment
        .devices
        .iter()
        .map(|d| format!("{} (device {})", d.name, d.ordinal))
        .collect();
    if names.is_empty() {
        names.push("no GPU".into());
    }
    format!(
        "cumemlab lab: {}, {}",
        r.environment.host.hostname,
        names.join(", ")
    )
}

/// Builds the report page.
pub fn build(r: &LabResults) -> Result<LabPage> {
    let mut p = Page::new(title(r));
    let mut body = Page::new("");
    let mut findings = Findings::default();

    intro(r, &mut p);
    // Figures and tables are numbered in page order, and the findings come first on the page:
    // build the body first, then put the findings above it with the numbers the body gave.
    // The headline table is the body's first (Table 1) and is lifted above the findings.
    let heads = r.headlines();
    if !heads.is_empty() {
        body.h2("What memory costs on this machine");
        for h in &heads {
            h.add_to(&mut body);
        }
    }
    let head_blocks = body.blocks.len();
    steps_and_machine(r, &mut body);
    for exp in registry::EXPERIMENTS {
        exp.report(r, &mut body, &mut findings)?;
        // The lab's own accounting snapshots follow the sweep, whose allocations they frame.
        if exp.key() == "sweep" {
            accounting::section(r, &mut body, &mut findings)?;
        }
    }
    files(r, &mut body)?;

    headline::lift(&mut p, &mut body, head_blocks);
    p.h2("Findings");
    let groups = findings.grouped();
    if groups.is_empty() {
        p.para("No findings: no experiment produced numbers to compare (see the steps below).");
    }
    findings_by_strategy(&heads, groups, &mut p);
    p.blocks.extend(body.blocks);
    Ok(LabPage {
        page: p,
        findings: findings.items.into_iter().map(|(_, f)| f).collect(),
    })
}

/// The strategy a finding is about: the one its sentence starts with (after the "Figure N: "
/// label), as in "managed: the CPU's first touch ...".
fn finding_strategy<'a>(f: &str, strategies: &'a [String]) -> Option<&'a String> {
    let rest = f.split_once(": ").map_or(f, |(_, r)| r);
    strategies
        .iter()
        .find(|st| rest.starts_with(&format!("{st}: ")))
}

/// The findings as the detail under the headline table: those about one strategy under that
/// row's name (per device), then the rest by experiment.
fn findings_by_strategy(
    heads: &[headline::Headline],
    groups: Vec<(String, Vec<String>)>,
    p: &mut Page,
) {
    let mut rest: Vec<(String, Vec<String>)> = Vec::new();
    let mut by_row: Vec<(String, Vec<String>)> = Vec::new();
    for (g, items) in groups {
        let h = heads
            .iter()
            .find(|h| g.contains(&format!("device {} ", h.device)));
        let strategies: Vec<String> = h.map_or(Vec::new(), |h| {
            h.rows.iter().map(|r| r.strategy.clone()).collect()
        });
        let mut other = Vec::new();
        for f in items {
            match (h, finding_strategy(&f, &strategies)) {
                (Some(h), Some(st)) => {
                    let key = if heads.len() > 1 {
                        format!("{st}, device {}", h.device)
                    } else {
                        st.clone()
                    };
                    match by_row.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.push(f),
                        None => by_row.push((key, vec![f])),
                    }
                }
                _ => other.push(f),
            }
        }
        if !other.is_empty() {
            rest.push((g, other));
        }
    }
    if !by_row.is_empty() {
        p.para("By strategy (the rows of the table above):");
        for (k, items) in by_row {
            p.para(format!("**{k}**"));
            p.bullets(items);
        }
        p.para("Across strategies, by experiment:");
    }
    for (g, items) in rest {
        p.para(format!("**{g}**"));
        p.bullets(items);
    }
}

fn intro(r: &LabResults, p: &mut Page) {
    let h = &r.environment.host;
    let dur = match (&r.finished_at, humantime::parse_rfc3339(&r.started_at)) {
        (Some(f), Ok(s)) => humantime::parse_rfc3339(f)
            .ok()
            .and_then(|f| f.duration_since(s).ok())
            .map(|d| format!(", {:.1} minutes", d.as_secs_f64() / 60.0))
            .unwrap_or_default(),
        _ => String::new(),
    };
    p.para(format!(
        "Measured by cumemlab {} on `{}` ({}, Linux {}), started {}{dur}. Budget {:.0} minutes (planned about {:.1}). GB = 1e9 bytes, GiB = 2^30 bytes, GB/s = 1e9 bytes per second; every number below is in `results.json` beside this report.",
        r.tool_version,
        h.hostname,
        h.arch,
        h.kernel_release,
        r.started_at,
        r.settings.budget_minutes,
        r.settings.plan.estimated_s / 60.0
    ));
    if r.interrupted {
        p.para("**Interrupted** (Ctrl-C or SIGTERM): the steps after the interruption did not run; what ran is reported.");
    }
    if let Some(why) = &r.settings.no_gpu_reason {
        let needs: Vec<String> = r
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::NeedsGpu)
            .map(|s| s.name.clone())
            .collect();
        p.para(format!(
            "**No GPU here** ({why}): the host-side parts ran (host memory, page cache, `plan` for {}); {} need a GPU. Run `cumemlab lab` on the GPU host for the rest.",
            r.plan
                .as_ref()
                .map(|v| {
                    v.iter()
                        .map(|m| format!("`{}`", m.target.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|| "the target".into()),
            if needs.is_empty() {
                "no step".to_string()
            } else {
                needs.join(", ")
            }
        ));
    }
    if !r.settings.plan.scaled.is_empty() {
        let plan = &r.settings.plan;
        let took: f64 = r.steps.iter().map(|s| s.seconds).sum();
        p.para(if plan.budget_s > 0.0 {
            format!(
                "Scaled to the budget of {:.1} minutes (planned {:.0} s from the H200 planning figures in `lab::cost`; the steps took {:.0} s):",
                plan.budget_s / 60.0,
                plan.estimated_s,
                took
            )
        } else {
            "Scaled to the budget:".to_string()
        });
        p.bullets(plan.scaled.clone());
    }
}

fn steps_and_machine(r: &LabResults, p: &mut Page) {
    p.h2("Steps");
    let rows = r
        .steps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.device.map_or("-".into(), |d| d.to_string()),
                s.status.label().to_string(),
                format!("{:.1}", s.seconds),
                s.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    p.table(
        "What ran, in order",
        &["step", "device", "status", "time (s)", "reason"],
        rows,
    );

    machine(r, p);
}

/// The host and the devices at the start, with each device's bandwidth line.
fn machine(r: &LabResults, p: &mut Page) {
    p.h2("Machine");
    let e = &r.environment;
    let h = &e.host;
    let m = e.meminfo.clone().unwrap_or_default();
    p.table(
        "The host",
        &[
            "host",
            "kernel",
            "arch",
            "CPUs",
            "page size",
            "THP",
            "cgroup limit",
            "MemTotal (GiB)",
            "CUDA driver",
        ],
        vec![vec![
            h.hostname.clone(),
            h.kernel_release.clone(),
            h.arch.clone(),
            h.cpus.to_string(),
            fmt_bytes(h.page_size),
            h.thp_enabled.clone(),
            h.cgroup_memory_limit.map_or("none".into(), fmt_bytes),
            gib(m.mem_total),
            e.driver_version.clone().unwrap_or_else(|| "none".into()),
        ]],
    );
    if !e.devices.is_empty() {
        let rows = e
            .devices
            .iter()
            .map(|d| {
                vec![
                    d.ordinal.to_string(),
                    d.name.clone(),
                    d.compute_capability.clone(),
                    d.architecture.label().to_string(),
                    gib(d.total_bytes),
                    gib(d.cumemgetinfo_free_bytes),
                    gib(d.usable.estimate_bytes),
                    d.usable.basis.clone(),
                ]
            })
            .collect();
        p.table(
            "The devices at the start",
            &[
                "device",
                "name",
                "compute capability",
                "memory architecture",
                "total (GiB)",
                "cuMemGetInfo free (GiB)",
                "usable estimate (GiB)",
                "estimate from",
            ],
            rows,
        );
        for d in &e.devices {
            if let Some(w) = &d.usable.warning {
                p.para(format!("Device {}: {w}", d.ordinal));
            }
            // The bandwidth line prefers this lab's selftest over a figure derived from attributes.
            let measured = r.selftest.iter().flatten().find(|s| s.device == d.ordinal);
            let measured =
                measured.and_then(crate::experiments::info::MeasuredBandwidth::from_selftest);
            p.para(format!(
                "Device {}: {}.",
                d.ordinal,
                crate::experiments::info::bandwidth_line(
                    &d.name,
                    d.architecture,
                    &d.attributes,
                    measured
                )
            ));
        }
    }
}

fn files(r: &LabResults, p: &mut Page) -> Result<()> {
    p.h2("Files");
    let mut v = vec![
        "`results.json`: everything above, with the environment (read it with `cumemlab compare` or any JSON tool)".to_string(),
        "`steps.csv`, `accounting.csv`".to_string(),
    ];
    let mut csvs = Vec::new();
    for exp in registry::EXPERIMENTS {
        for (name, _) in exp.csv_files(r)? {
            csvs.push(format!("`{name}`"));
        }
    }
    if !csvs.is_empty() {
        v.push(format!("one CSV per experiment: {}", csvs.join(", ")));
    }
    v.push("`report.md` (figures under `plots/`) and `report.html` (self-contained)".into());
    p.bullets(v);
    p.para(
        "Compare with another machine: `cumemlab compare THIS_FOLDER OTHER_FOLDER --out compare/`.",
    );
    Ok(())
}
