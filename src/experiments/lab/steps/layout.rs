//! `layout --preset 13b-sim` as a lab step on each device: a model's tensors allocated one by
//! one, overhead and fragmentation; its CSV, its report section, and its overhead and
//! after-frees tables for `compare`.

use crate::error::{Error, Result};
use crate::experiments::lab::comparable::{
    CompareCtx, CompareOut, CompareRow, PageCtx, push_table, row,
};
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::experiments::lab::report::{self, Findings};
use crate::experiments::lab::{LAYOUT_PRESET, LabResults};
use crate::experiments::layout::{self, LayoutOptions, LayoutReport};
use crate::report::markdown::Page;
use crate::report::sink::to_csv;
use crate::units::GIB;

/// `layout`.
pub struct Layout;

/// A figure of a layout report.
type LayoutGet = fn(&LayoutReport) -> Option<f64>;

impl Experiment for Layout {
    fn about(&self) -> About {
        About {
            name: "layout",
            key: "layout",
            needs_gpu: true,
            scope: Scope::PerDevice,
        }
    }
    fn run(&self, ctx: &StepContext, device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        let layout = layout::preset(LAYOUT_PRESET).map_err(Error::Failed)?;
        let gpu = super::open_gpu(device)?;
        let mut lopts = LayoutOptions::new(layout);
        lopts.headroom = ctx.opts.headroom;
        lopts.quiet = ctx.opts.quiet;
        let r = layout::measure(&gpu, &lopts)?;
        let stopped = r.interrupted;
        res.layout.get_or_insert_with(Vec::new).push(r);
        if stopped {
            return Err(Error::Interrupted);
        }
        Ok(Ran::Ok)
    }
    fn csv(&self, r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        let Some(v) = &r.layout else { return Ok(None) };
        let rows: Vec<_> = v.iter().flat_map(|l| l.rows.iter().cloned()).collect();
        Ok(Some(("layout.csv", to_csv(&rows)?)))
    }
    fn report(&self, r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
        report::layout::section(r, p, findings);
        Ok(())
    }
    fn compare(&self, ctx: &CompareCtx, out: &mut CompareOut) {
        let (inputs, cols) = (ctx.inputs, ctx.cols);
        // Overhead (lower is better) and what is left after frees (higher is better) apart.
        let layout_get: [(&str, LayoutGet, bool); 3] = [
            (
                "overhead beyond the request, %",
                |l| l.summary.totals.as_ref().map(|t| t.overhead_pct),
                false,
            ),
            (
                "largest allocation after freeing every other tensor, GiB",
                |l| {
                    l.summary
                        .fragmentation
                        .as_ref()
                        .map(|f| f.largest_bytes as f64 / GIB as f64)
                },
                true,
            ),
            (
                "largest allocation as % of cuMemGetInfo free",
                |l| {
                    l.summary
                        .fragmentation
                        .as_ref()
                        .map(|f| f.largest_pct_of_free())
                },
                true,
            ),
        ];
        for (id, title, hib) in [
            ("layout.overhead_pct", "overhead", false),
            ("layout", "after frees", true),
        ] {
            let rows: Vec<CompareRow> = layout_get
                .iter()
                .filter(|(_, _, h)| *h == hib)
                .map(|(k, get, _)| {
                    row(
                        k.to_string(),
                        cols.iter()
                            .map(|c| {
                                inputs[c.0].results.layout.as_ref().and_then(|v| {
                                    v.iter()
                                        .find(|l| l.rows.first().map(|r| r.device) == c.1.device)
                                        .and_then(get)
                                })
                            })
                            .collect(),
                    )
                })
                .collect();
            push_table(
                &mut out.tables,
                id,
                &format!("layout {}: {title}", LAYOUT_PRESET),
                2,
                Some(hib),
                rows,
            );
        }
    }
    fn compare_page(
        &self,
        ctx: &PageCtx,
        body: &mut Page,
        _findings: &mut Vec<String>,
    ) -> Result<()> {
        if ctx.rep.tables.iter().any(|t| t.id.starts_with("layout")) {
            body.h2("Layout");
            ctx.table(body, "layout.overhead_pct");
            ctx.table(body, "layout");
        }
        Ok(())
    }
}
