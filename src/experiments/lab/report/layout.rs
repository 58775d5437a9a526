//! The layout section of the lab report: a model's tensors allocated, overhead and
//! fragmentation.

use super::findings::{Findings, gib, gib_signed};
use crate::experiments::lab::LabResults;
use crate::report::markdown::Page;

/// The section (nothing without layout results).
pub fn section(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let Some(v) = &r.layout else { return };
    if v.is_empty() {
        return;
    }
    p.h2(format!(
        "Layout: a model's tensors ({})",
        crate::experiments::lab::LAYOUT_PRESET
    ));
    p.para("A simulated 13B model's named tensors allocated one by one with `device`, then every other tensor freed and the largest single allocation searched: what a whole set costs beyond its bytes, and how fragmented free memory becomes.");
    for rep in v {
        let Some(dev) = rep.rows.first().map(|x| x.device) else {
            continue;
        };
        findings.group = format!("Layout, device {dev} ({})", r.device_name(dev));
        let mut body = Vec::new();
        if let Some(t) = &rep.summary.totals {
            body.push(vec!["tensors allocated".into(), t.tensors.to_string()]);
            body.push(vec!["bytes requested (GiB)".into(), gib(t.requested_bytes)]);
            body.push(vec![
                "cuMemGetInfo free fell by (GiB)".into(),
                gib_signed(t.device_free_drop_bytes),
            ]);
            body.push(vec![
                "overhead beyond the request (GiB)".into(),
                gib_signed(t.overhead_bytes),
            ]);
            body.push(vec![
                "overhead (% of the request)".into(),
                format!("{:.2}", t.overhead_pct),
            ]);
        }
        if let Some(f) = &rep.summary.fragmentation {
            body.push(vec![
                format!("freed by `{}` (GiB)", f.pattern),
                gib(f.freed_bytes),
            ]);
            body.push(vec![
                "largest single allocation after that (GiB)".into(),
                gib(f.largest_bytes),
            ]);
            body.push(vec![
                "as % of cuMemGetInfo free".into(),
                format!("{:.1}", f.largest_pct_of_free()),
            ]);
        }
        if body.is_empty() {
            continue;
        }
        let t = p.table(
            format!(
                "Layout {} on device {dev} ({})",
                crate::experiments::lab::LAYOUT_PRESET,
                r.device_name(dev)
            ),
            &["measure", "value"],
            body,
        );
        for n in &rep.notes {
            findings.push(format!("{t}: {n}"));
        }
        if !rep.skipped.is_empty() {
            p.bullets(rep.skipped.clone());
        }
    }
}
