//! `selftest` as a lab step on each device: every kernel verified, bandwidth against
//! `cuMemsetD32`; its report section and its bandwidth table for `compare`.

use crate::error::Result;
use crate::experiments::lab::LabResults;
use crate::experiments::lab::comparable::{CompareCtx, CompareOut, CompareRow, PageCtx, row};
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::experiments::lab::report::{self, Findings};
use crate::experiments::selftest::{self, SelftestOptions};
use crate::report::markdown::Page;
use crate::report::plots::Scale;
use crate::report::sink::to_csv;
use crate::units::fmt_bytes;

/// `selftest`.
pub struct Selftest;

/// The operations compared across machines, as `selftest` names them.
const OPS: [&str; 4] = [
    "cuMemsetD32",
    "fill kernel",
    "read kernel",
    "cuMemcpyDtoD (bytes copied)",
];

impl Experiment for Selftest {
    fn about(&self) -> About {
        About {
            name: "selftest",
            key: "selftest",
            needs_gpu: true,
            scope: Scope::PerDevice,
        }
    }
    fn run(&self, ctx: &StepContext, device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        let gpu = super::open_gpu(device)?;
        let r = selftest::run(
            &gpu,
            &SelftestOptions {
                bytes: None,
                runs: ctx.plan.selftest_runs,
                quiet: ctx.opts.quiet,
                fill_sizes: None,
            },
        )?;
        let failed: Vec<String> = r
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} at {}", c.kernel, fmt_bytes(c.bytes)))
            .collect();
        res.selftest.get_or_insert_with(Vec::new).push(r);
        Ok(if failed.is_empty() {
            Ran::Ok
        } else {
            Ran::Failed(format!("kernel checks failed: {}", failed.join(", ")))
        })
    }
    fn csv(&self, r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        r.selftest
            .as_ref()
            .map(|v| Ok(("selftest.csv", to_csv(&selftest::csv_rows(v))?)))
            .transpose()
    }
    fn report(&self, r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
        report::selftest::section(r, p, findings);
        Ok(())
    }
    fn compare(&self, ctx: &CompareCtx, out: &mut CompareOut) {
        let rows: Vec<CompareRow> = OPS
            .iter()
            .map(|op| {
                row(
                    op.to_string(),
                    ctx.cols
                        .iter()
                        .map(|c| {
                            ctx.inputs[c.0].results.selftest.as_ref().and_then(|v| {
                                v.iter()
                                    .filter(|s| Some(s.device) == c.1.device)
                                    .flat_map(|s| s.bandwidth.iter())
                                    .find(|b| b.op == *op)
                                    .map(|b| b.gbps.median)
                            })
                        })
                        .collect(),
                )
            })
            .collect();
        out.push(
            "selftest.gbps",
            "selftest bandwidth on device memory, GB/s (1e9 bytes/s), median",
            1,
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
        let Some(t) = ctx.find("selftest.gbps") else {
            return Ok(());
        };
        body.h2("Selftest");
        let rows: Vec<&CompareRow> = t.rows.iter().collect();
        let fig = body
            .figure(
                "selftest-bandwidth",
                "Selftest bandwidth on device memory per machine",
                "Median GB/s of each operation on device memory (`selftest`).",
                ctx.bars(
                    &rows,
                    "Selftest bandwidth on device memory".into(),
                    "bandwidth (GB/s = 1e9 bytes/s)",
                    Scale::Linear,
                )?,
            )
            .clone();
        ctx.table(body, "selftest.gbps");
        if let Some(r) = t.rows.iter().find(|r| r.key == "cuMemsetD32") {
            findings.push(format!(
                "{fig}: cuMemsetD32 on device memory: {}.",
                ctx.per_machine(r, t.reference, 0, "GB/s")
            ));
        }
        Ok(())
    }
}
