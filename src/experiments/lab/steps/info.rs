//! `info` as a lab step: the host, the driver and every device, recorded once.

use crate::error::Result;
use crate::experiments::info;
use crate::experiments::lab::LabResults;
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::report::sink::to_csv;

/// `info`.
pub struct Info;

impl Experiment for Info {
    fn about(&self) -> About {
        About {
            name: "info",
            key: "info",
            needs_gpu: false,
            scope: Scope::Once,
        }
    }
    fn run(&self, _ctx: &StepContext, _device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        res.info = Some(info::collect());
        Ok(Ran::Ok)
    }
    fn csv(&self, r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        r.info
            .as_ref()
            .map(|i| Ok(("info.csv", to_csv(&info::csv_rows(i))?)))
            .transpose()
    }
}
