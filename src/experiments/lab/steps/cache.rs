//! `cache` status as a lab step: the page cache against GPU memory, host side always
//! (`cuMemGetInfo` of the first device when there is one), with its explanation; its CSV and
//! its report section.

use crate::error::Result;
use crate::experiments::cache::{self, CacheAction};
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::experiments::lab::report::{self, Findings};
use crate::experiments::lab::{LabResults, Section};
use crate::experiments::watch::DeviceView;
use crate::report::ResultSink;
use crate::report::markdown::Page;

/// `cache` status.
pub struct Cache;

impl Experiment for Cache {
    fn about(&self) -> About {
        About {
            name: "cache",
            key: "cache",
            needs_gpu: false,
            scope: Scope::Once,
        }
    }
    fn run(&self, ctx: &StepContext, _device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        let env = ctx.env;
        let view = match ctx.ordinals.first() {
            Some(&o) => DeviceView::open(o)?.ok(),
            None => None,
        };
        let mut sink = ResultSink::new("cache", env.clone(), None)?;
        let said = cache::run_action(&CacheAction::Status, view.as_ref(), &mut sink, true)?;
        let mut section = Section::default();
        section.absorb(&sink.doc);
        section.notes.extend(said);
        if let Some(row) = sink.doc.rows.first() {
            let arch = env.devices.first().map(|d| d.architecture);
            section
                .notes
                .extend(cache::explain(row, arch, env.no_device_reason.as_deref()));
        }
        res.cache = Some(section);
        Ok(Ran::Ok)
    }
    fn csv(&self, r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        super::rows_csv("cache.csv", r.cache.as_ref())
    }
    fn report(&self, r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
        report::cache::status(r, p, findings);
        Ok(())
    }
}
