//! `probe` as a lab step on each device: the largest allocation per strategy within the
//! budget's caps and resolution; its CSV, its report section, and the largest allocations per
//! strategy for `compare`.

use crate::error::Result;
use crate::experiments::lab::comparable::{
    CompareCtx, CompareOut, CompareRow, PageCtx, push_table, row,
};
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::experiments::lab::report::{self, Findings};
use crate::experiments::lab::{LabResults, Section};
use crate::experiments::probe::{self, MaxSel, ProbeOptions};
use crate::report::ResultSink;
use crate::report::markdown::Page;
use crate::report::plots::Scale;
use crate::units::GIB;

/// `probe`.
pub struct Probe;

impl Experiment for Probe {
    fn about(&self) -> About {
        About {
            name: "probe",
            key: "probe",
            needs_gpu: true,
            scope: Scope::PerDevice,
        }
    }
    fn run(&self, ctx: &StepContext, device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        let plan = ctx.plan;
        let popts = ProbeOptions {
            kinds: plan.probe_kinds.clone(),
            resolution_bytes: plan.probe_resolution_bytes,
            chunk_bytes: plan.probe_chunk_bytes,
            max: MaxSel::Auto,
            headroom: ctx.opts.headroom,
            quiet: ctx.opts.quiet,
            host_cap_bytes: plan.probe_host_cap_bytes,
            cumulative_lazy: plan.probe_cumulative_lazy,
            ..ProbeOptions::default()
        };
        let gpu = super::open_gpu(device)?;
        let mut sink = ResultSink::new("probe", ctx.env.clone(), None)?;
        let r = probe::run_gpu(&gpu, &popts, &mut sink);
        res.probe
            .get_or_insert_with(Section::default)
            .absorb(&sink.doc);
        r.map(|()| Ran::Ok)
    }
    fn csv(&self, r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        super::rows_csv("probe.csv", r.probe.as_ref())
    }
    fn report(&self, r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
        report::probe::section(r, p, findings)
    }
    fn compare(&self, ctx: &CompareCtx, out: &mut CompareOut) {
        let (inputs, cols) = (ctx.inputs, ctx.cols);
        let mut pkeys: Vec<(String, String)> = Vec::new();
        for c in cols {
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
        push_table(
            &mut out.tables,
            "probe.max_gib",
            "probe: largest allocation, GiB (2^30 bytes)",
            2,
            Some(true),
            rows,
        );
    }
    fn compare_page(
        &self,
        ctx: &PageCtx,
        body: &mut Page,
        findings: &mut Vec<String>,
    ) -> Result<()> {
        let Some(t) = ctx.find("probe.max_gib") else {
            return Ok(());
        };
        body.h2("Probe");
        let rows: Vec<&CompareRow> = t.rows.iter().collect();
        let fig = body.figure(
            "probe",
            "Largest allocation per strategy, one bar per machine",
            "The probe's `max_bytes` per strategy and kind.",
            ctx.bars(
                &rows,
                "Largest allocation per strategy".into(),
                "largest allocation (GiB = 2^30 bytes)",
                Scale::Linear,
            )?,
        );
        ctx.table(body, "probe.max_gib");
        if let Some(r) = t.rows.iter().find(|r| r.key == "device (single)") {
            findings.push(format!(
                "{fig}: the largest single device allocation: {}.",
                ctx.per_machine(r, t.reference, 2, "GiB")
            ));
        }
        Ok(())
    }
}
