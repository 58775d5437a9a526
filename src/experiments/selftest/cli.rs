//! `cumemlab selftest` on the command line: the options, the run on each selected device and
//! the chosen output; exit 1 when a kernel is wrong.

use super::{SelftestOptions, csv_rows, render, run};
use crate::error::{Error, Result};
use crate::experiments::{Gpu, require_driver};

/// `cumemlab selftest` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab selftest\n  cumemlab selftest --device 1 --size 1GiB --json\n  cumemlab selftest --out selftest.csv"
)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub device: crate::cli::DeviceArgs,
    /// Buffer size for the bandwidth runs (default 4GiB, less on small cards).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::units::parse_size)]
    pub size: Option<u64>,
    /// Sizes for fill against cuMemsetD32, comma-separated (default 1GiB,4GiB,16GiB, each kept
    /// when it is at most a quarter of free memory).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::cli::size_list)]
    pub fill_sizes: Option<crate::cli::List<u64>>,
    /// Timed runs per bandwidth figure (after one discarded warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the self-test on the selected devices; exit 1 when a kernel is wrong.
pub fn main(args: SelftestArgs) -> Result<()> {
    let output = args.output;
    output.check()?;
    let envelope = crate::report::envelope::Envelope::start("selftest");
    let drv = require_driver()?;
    let ordinals = args.device.device.resolve(drv.device_count()?)?;
    let tables = output.tables();
    let opts = SelftestOptions {
        bytes: args.size,
        runs: args.runs,
        quiet: args.quiet || !tables,
        fill_sizes: args.fill_sizes.map(|l| l.0),
    };
    let mut reports = Vec::new();
    for o in ordinals {
        let gpu = Gpu::open(&drv, o)?;
        let r = run(&gpu, &opts)?;
        if tables {
            crate::report::sink::print_stdout(render(&r))?;
        }
        reports.push(r);
    }
    let body = crate::report::envelope::Reports { reports };
    output.write_result(
        || crate::report::envelope::to_json(envelope.clone().finish(false), &body),
        || crate::report::sink::to_csv(&csv_rows(&body.reports)),
    )?;
    let reports = body.reports;
    if reports.iter().all(|r| r.all_passed) {
        Ok(())
    } else {
        Err(Error::Failed(
            "selftest: at least one kernel produced wrong results".into(),
        ))
    }
}
