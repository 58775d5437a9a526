//! `plan` as a lab step: the capacity matrix (pure arithmetic) for each device's usable memory
//! and `--target`; its CSV, its report section, and the largest model per workload for
//! `compare` (with each machine's target among the machine facts).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::experiments::lab::LabResults;
use crate::experiments::lab::comparable::{
    Column, CompareCtx, CompareOut, CompareRow, FactRow, PageCtx, push_table, row,
};
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::experiments::lab::report::{self, Findings};
use crate::experiments::lab::runner::plan_targets;
use crate::plan::capacity_matrix;
use crate::report::markdown::Page;
use crate::report::plots::Scale;
use crate::report::sink::to_csv;

/// `plan`.
pub struct Plan;

/// A flat CSV row of the plan capacity matrices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanCsvRow {
    pub target: String,
    pub target_bytes: u64,
    pub unified: bool,
    pub budget_bytes: u64,
    pub workload: String,
    pub precision: String,
    pub label: String,
    pub max_params_billions: f64,
    pub total_bytes: u64,
    pub layers: u64,
}

impl Experiment for Plan {
    fn about(&self) -> About {
        About {
            name: "plan",
            key: "plan",
            needs_gpu: false,
            scope: Scope::Once,
        }
    }
    fn run(&self, ctx: &StepContext, _device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        let targets = plan_targets(ctx.env, ctx.opts.target.as_ref());
        res.plan = Some(targets.iter().map(capacity_matrix).collect());
        Ok(Ran::Ok)
    }
    fn csv(&self, r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        let Some(v) = &r.plan else { return Ok(None) };
        let mut rows = Vec::new();
        for m in v {
            for c in &m.rows {
                rows.push(PlanCsvRow {
                    target: m.target.name.clone(),
                    target_bytes: m.target.bytes,
                    unified: m.target.unified,
                    budget_bytes: m.budget_bytes,
                    workload: c.workload.name().into(),
                    precision: c.precision.to_string(),
                    label: c.label.clone(),
                    max_params_billions: c.max_params_billions,
                    total_bytes: c.total_bytes,
                    layers: c.layers,
                });
            }
        }
        Ok(Some(("plan.csv", to_csv(&rows)?)))
    }
    fn report(&self, r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
        report::plan::section(r, p, findings);
        Ok(())
    }
    fn compare(&self, ctx: &CompareCtx, out: &mut CompareOut) {
        let (inputs, cols) = (ctx.inputs, ctx.cols);
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
        for c in cols {
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
        push_table(
            &mut out.tables,
            "plan.max_params_billions",
            "plan: largest dense model on each `plan target`, billion parameters",
            1,
            Some(true),
            rows,
        );
        out.machines.push(FactRow {
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
    }
    fn compare_page(
        &self,
        ctx: &PageCtx,
        body: &mut Page,
        _findings: &mut Vec<String>,
    ) -> Result<()> {
        let Some(t) = ctx.find("plan.max_params_billions") else {
            return Ok(());
        };
        body.h2("Plan");
        let rows: Vec<&CompareRow> = t.rows.iter().collect();
        body.figure(
            "plan",
            "Largest dense model per workload, one bar per machine",
            "`plan --capacity` for each machine's usable memory (or its target without a GPU).",
            ctx.bars(
                &rows,
                "Largest dense model per workload".into(),
                "parameters (billions)",
                Scale::Linear,
            )?,
        );
        ctx.table(body, "plan.max_params_billions");
        Ok(())
    }
}
