//! Lab results assembled from the documents of separate commands run earlier (`info --json`,
//! `selftest --json`, a `sweep` and a `probe` result document), so that the lab report and
//! `compare` read them as they read a lab.
//!
//! May import: the lab's results and budget plan, the experiments' documents, the registry
//! (for the steps no file covers), the planner.

use super::budget::BudgetPlan;
use super::report;
use super::results::{LabResults, LabSettings, Section, StepOutcome, StepStatus};
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::info::InfoReport;
use crate::experiments::lab::registry;
use crate::experiments::probe;
use crate::experiments::selftest::SelftestReport;
use crate::experiments::sweep;
use crate::plan::{Target, capacity_matrix};

/// Lab results assembled from the documents of separate commands run earlier (`info --json`,
/// `selftest --json`, a `sweep` and a `probe` result document), so that their report and
/// `compare` work the same way. The plan capacity matrix is computed for each device found; the
/// steps no file covers are recorded as skipped, and `settings.plan.scaled` says where the
/// results came from.
pub fn assemble(
    info: Option<InfoReport>,
    selftest: Option<Vec<SelftestReport>>,
    sweep: Option<sweep::SweepDoc>,
    probe: Option<probe::ProbeDoc>,
) -> Result<LabResults> {
    let environment = sweep
        .as_ref()
        .map(|d| d.environment.clone())
        .or_else(|| probe.as_ref().map(|d| d.environment.clone()))
        .or_else(|| info.as_ref().map(|i| i.environment.clone()))
        .ok_or_else(|| {
            Error::usage("nothing to assemble: give at least an info, sweep or probe result")
        })?;
    let devices: Vec<i32> = environment.devices.iter().map(|d| d.ordinal).collect();
    let settings = settings(
        &environment,
        &devices,
        info.as_ref(),
        selftest.as_deref(),
        sweep.as_ref(),
        probe.as_ref(),
    );
    let mut r = LabResults::new(environment, settings);
    r.steps = steps(
        &devices,
        info.as_ref(),
        selftest.as_deref(),
        sweep.as_ref(),
        probe.as_ref(),
    );
    if let Some(d) = &sweep {
        r.started_at = d.envelope.started_at.clone();
        r.finished_at = d.envelope.finished_at.clone();
        r.command_line = d.envelope.command_line.clone();
        let mut section = Section::default();
        section.absorb(d);
        r.sweep = Some(section);
    }
    if let Some(d) = &probe {
        let mut section = Section::default();
        section.absorb(d);
        r.probe = Some(section);
    }
    r.plan = Some(
        r.environment
            .devices
            .iter()
            .map(|d| {
                capacity_matrix(&Target {
                    name: format!("device {} ({})", d.ordinal, d.name),
                    bytes: d.usable.estimate_bytes,
                    unified: d.architecture.is_unified(),
                })
            })
            .collect(),
    );
    r.info = info;
    r.selftest = selftest;
    r.complete = true;
    Ok(r)
}

/// The settings of assembled results: no budget; the sweep's sizes and runs, the selftest's
/// runs, and where the results came from.
fn settings(
    environment: &Environment,
    devices: &[i32],
    info: Option<&InfoReport>,
    selftest: Option<&[SelftestReport]>,
    sweep: Option<&sweep::SweepDoc>,
    probe: Option<&probe::ProbeDoc>,
) -> LabSettings {
    let mut sweep_sizes = Vec::new();
    if let Some(d) = sweep {
        for &o in devices {
            sweep_sizes.push((o, report::sweep_sizes(&d.rows, o)));
        }
    }
    let runs = sweep
        .and_then(|d| d.rows.iter().find(|r| r.phase == sweep::phase::FILL))
        .map_or(0, |r| r.runs);
    let mut scaled = vec![format!(
        "assembled from separate result files ({}), not run by `cumemlab lab`",
        [
            info.map(|_| "info"),
            selftest.map(|_| "selftest"),
            sweep.map(|_| "sweep"),
            probe.map(|_| "probe"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    )];
    if let Some(d) = sweep {
        scaled.push(format!(
            "the sweep's command line: `{}`",
            d.envelope.command_line.join(" ")
        ));
    }
    LabSettings {
        budget_minutes: 0.0,
        devices: devices.to_vec(),
        target: None,
        with_cache_effect: false,
        skip: Vec::new(),
        headroom_bytes: crate::memory::safety::DEFAULT_HEADROOM,
        plan: BudgetPlan {
            budget_s: 0.0,
            estimated_s: 0.0,
            sweep_sizes,
            sweep_runs: runs,
            selftest_runs: selftest
                .and_then(|v| v.first())
                .and_then(|s| s.bandwidth.first())
                .map_or(0, |b| b.gbps.runs),
            probe_kinds: Vec::new(),
            probe_resolution_bytes: 0,
            probe_chunk_bytes: 0,
            scaled,
            ..BudgetPlan::default()
        },
        no_gpu_reason: environment.no_device_reason.clone(),
    }
}

/// The steps of assembled results: those a file covers as it ended, the others skipped (`plan`
/// is computed, so ok).
fn steps(
    devices: &[i32],
    info: Option<&InfoReport>,
    selftest: Option<&[SelftestReport]>,
    sweep: Option<&sweep::SweepDoc>,
    probe: Option<&probe::ProbeDoc>,
) -> Vec<StepOutcome> {
    let mut steps = Vec::new();
    let step = |name: &str,
                device: Option<i32>,
                status: StepStatus,
                reason: Option<String>,
                seconds: f64| StepOutcome {
        name: name.into(),
        device,
        status,
        reason,
        seconds,
    };
    let absent = || Some("not among the assembled files".to_string());
    steps.push(match info {
        Some(_) => step("info", None, StepStatus::Ok, None, 0.0),
        None => step("info", None, StepStatus::Skipped, absent(), 0.0),
    });
    match selftest {
        Some(v) => {
            for s in v {
                let failed = s.checks.iter().filter(|c| !c.passed).count();
                steps.push(if failed == 0 {
                    step("selftest", Some(s.device), StepStatus::Ok, None, 0.0)
                } else {
                    step(
                        "selftest",
                        Some(s.device),
                        StepStatus::Failed,
                        Some(format!("{failed} kernel check(s) failed")),
                        0.0,
                    )
                });
            }
        }
        None => steps.push(step("selftest", None, StepStatus::Skipped, absent(), 0.0)),
    }
    // A sweep or probe document: ok when complete, interrupted otherwise, timed by its clock.
    let from_doc = |name: &str, doc: Option<(bool, &String, Option<&String>)>| match doc {
        Some((complete, started, finished)) => step(
            name,
            devices.first().copied(),
            if complete {
                StepStatus::Ok
            } else {
                StepStatus::Interrupted
            },
            None,
            elapsed(started, finished),
        ),
        None => step(name, None, StepStatus::Skipped, absent(), 0.0),
    };
    steps.push(from_doc(
        "sweep",
        sweep.map(|d| {
            (
                d.envelope.complete,
                &d.envelope.started_at,
                d.envelope.finished_at.as_ref(),
            )
        }),
    ));
    steps.push(from_doc(
        "probe",
        probe.map(|d| {
            (
                d.envelope.complete,
                &d.envelope.started_at,
                d.envelope.finished_at.as_ref(),
            )
        }),
    ));
    // The experiments no assembled file covers (every one after the probe but `plan`, which is
    // computed below), in registry order.
    let covered = ["info", "selftest", "sweep", "probe"];
    for exp in registry::EXPERIMENTS
        .iter()
        .filter(|e| !covered.contains(&e.key()))
    {
        steps.push(if exp.key() == "plan" {
            step(exp.name(), None, StepStatus::Ok, None, 0.0)
        } else {
            step(exp.name(), None, StepStatus::Skipped, absent(), 0.0)
        });
    }
    steps
}

/// Seconds from `start` to `end` (RFC 3339), 0 when either is missing or unreadable.
fn elapsed(start: &str, end: Option<&String>) -> f64 {
    match (
        humantime::parse_rfc3339(start),
        end.map(|e| humantime::parse_rfc3339(e)),
    ) {
        (Ok(s), Some(Ok(e))) => e.duration_since(s).map_or(0.0, |d| d.as_secs_f64()),
        _ => 0.0,
    }
}
