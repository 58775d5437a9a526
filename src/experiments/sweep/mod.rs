//! `cumemlab sweep`: every (strategy, size) through the measurement protocol of DESIGN.md, each
//! phase timed on its own: alloc (with accounting deltas), prefetch (`managed+prefetch`), GPU
//! first touch, GPU second touch, fill and read bandwidth (median of runs after a discarded
//! warm-up), verification, free; then the CPU-first variant for host-accessible strategies (a
//! fresh allocation touched by the CPU, then by the GPU). Baselines on `device` memory in the same
//! run: `cuMemsetD32` and a device-to-device `cuMemcpy`.
//!
//! Each (strategy, size) is measured on `--repeat` fresh allocations (default 3): the one-shot
//! phases get one sample per allocation, the bandwidth phases `--runs` runs on each, and every row
//! carries n, median, min, max, CV and its samples; bandwidth rows also split their spread into
//! the part between allocations (where the memory landed) and between runs on one allocation.
//! Findings compare by the rule of [`crate::stats::order`] (ranges that do not overlap) and flag
//! phases whose CV passes [`crate::stats::UNSTABLE_CV`].
//!
//! Every allocation is checked against the safety ceiling first; a refused or failed combination
//! is reported as skipped with its reason and the sweep goes on. Rows stream to `--out` when a
//! combination's allocations are done.
//!
//! Layout: `options` (typed options, caps, default sizes), `phase` and `row` (the row
//! types), `runner` and `protocol` (devices and combinations; one allocation phase by phase),
//! `acc` (samples to rows), `render` and `findings` (text output), `cli` (`main`), and
//! `headline` (the one table across strategies, from sweep rows, with probe and selftest figures
//! where a lab has them; it lives under sweep because the sweep command prints it and it reads
//! sweep rows, so neither imports the other across modules).

mod acc;
mod cli;
mod findings;
pub mod headline;
mod options;
pub mod phase;
mod protocol;
mod render;
mod row;
mod runner;

pub use cli::{SweepArgs, main};
pub use findings::{FILL_THRESHOLD_PCT, findings};
pub use options::{Caps, SEED_SIZES_GB, SweepOptions, default_sizes};
pub use phase::Phase;
pub use render::{
    bandwidth_cell, find, gbps_spread, pct_near, render, size_label, sizes_of, spread_ms,
    strategies_of,
};
pub use row::SweepRow;
pub use runner::{run, settle_window_ms};

use super::env::Environment;

/// The whole-sweep document type.
pub type SweepDoc = crate::report::Document<SweepRow, Environment>;
