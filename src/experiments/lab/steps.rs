//! The lab's experiments, one module each: the `impl Experiment` that runs the experiment as a
//! lab step within the budget plan, writes its section of the results, names its CSV, calls its
//! report section (under `report/`) and gives `compare` its figures. Each is listed once in
//! [`crate::experiments::lab::registry::EXPERIMENTS`].
//!
//! May import: the experiment modules they drive, the lab's results, report sections and
//! budget plan, compare's model types. Nothing here imports the registry's list or the runner.

pub mod cache;
pub mod cache_effect;
pub mod info;
pub mod layout;
pub mod load;
pub mod plan;
pub mod probe;
pub mod selftest;
pub mod sweep;

use serde::Serialize;

use super::Section;
use crate::error::Result;
use crate::experiments::Gpu;
use crate::experiments::require_driver;
use crate::report::sink::to_csv;

/// The CSV `name` of a section's rows, when the section is there.
pub fn rows_csv<R: Serialize>(
    name: &'static str,
    section: Option<&Section<R>>,
) -> Result<Option<(&'static str, Vec<u8>)>> {
    section.map(|s| Ok((name, to_csv(&s.rows)?))).transpose()
}

/// Opens the GPU of a step: `device`, or device 0 for a step recorded without one.
pub fn open_gpu(device: Option<i32>) -> Result<Gpu> {
    let drv = require_driver()?;
    Gpu::open(&drv, device.unwrap_or(0))
}
