//! The plan section of the lab report: the largest model per workload on each target.

use super::findings::Findings;
use crate::experiments::lab::LabResults;
use crate::report::markdown::Page;

/// The section (nothing without plan results).
pub fn section(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let Some(v) = &r.plan else { return };
    if v.is_empty() {
        return;
    }
    p.h2("Plan: the largest model per workload");
    findings.group = "Plan".into();
    p.para("Pure arithmetic (`cumemlab plan --capacity`): the largest dense model, in billions of parameters, whose weights, KV cache, activations and training state fit each target at the stated context and batch.");
    for m in v {
        let body = m
            .rows
            .iter()
            .map(|c| {
                vec![
                    c.label.clone(),
                    format!("{:.2}", c.max_params_billions),
                    format!("{:.2}", c.total_bytes as f64 / 1e9),
                    c.layers.to_string(),
                ]
            })
            .collect();
        let t = p.table(
            format!(
                "Capacity of {} ({:.1} GB budget, context {}, batch {})",
                m.target.name, m.budget_gb, m.context, m.batch
            ),
            &[
                "workload",
                "largest model (billion parameters)",
                "its total (GB)",
                "layers",
            ],
            body,
        );
        let best: Vec<String> = m
            .rows
            .iter()
            .map(|c| format!("{:.1}B for {}", c.max_params_billions, c.label))
            .collect();
        findings.push(format!(
            "{t}: on {} ({:.1} GB to plan with) the largest dense models are {}.",
            m.target.name,
            m.budget_gb,
            best.join("; ")
        ));
    }
}
