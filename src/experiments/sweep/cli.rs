//! `cumemlab sweep` on the command line: its clap arguments and `main`, which turns them into
//! [`SweepOptions`], runs the sweep into a [`ResultSink`] and prints the chosen form. May import
//! the rest of the sweep, `cli`, `report` and `units`.

use std::path::PathBuf;
use std::time::Instant;

use super::{Caps, SEED_SIZES_GB, SweepOptions, findings, render, run};
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::{interrupted, require_driver};
use crate::memory::{AllocOptions, Strategy};
use crate::report::ResultSink;
use crate::units::{GB, parse_size};

/// `cumemlab sweep` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab sweep\n  cumemlab sweep --repeat 5 --strategies device,managed --sizes 16GiB\n  cumemlab sweep --preset seed --strategies device\n  cumemlab sweep --strategies device,managed,pinned --sizes 256MiB,1GiB,4GiB --runs 5\n  cumemlab sweep --device all --out sweep.json\n  cumemlab sweep --strategies registered --file /data/model.bin --sizes 1GiB"
)]
pub struct SweepArgs {
    // Help text from the strategy registry: `strategies_help`.
    #[arg(long, value_parser = crate::cli::strategy_list, help = strategies_help())]
    pub strategies: Option<crate::cli::List<Strategy>>,
    /// Sizes, with units (512MiB,1GiB,4GB). Default: 256MiB, 1GiB, 4GiB, 16GiB and a quarter of the usable memory, within the safety limits.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::cli::size_list)]
    pub sizes: Option<crate::cli::List<u64>>,
    /// Sizes of a named set instead of --sizes: `seed` is 1, 2, 4, 8, 10, 20, 30, 40, 50, 60, 70 and 80 GB (1e9 bytes; the sizes of the DGX Spark allocation table), each where it fits the safety ceiling.
    #[arg(long, conflicts_with = "sizes", value_parser = ["seed"])]
    pub preset: Option<String>,
    /// Fresh allocations per strategy and size. Every one-shot phase (allocation and its steps, prefetch, GPU first touch, CPU first touch, GPU touch after the CPU, free) is measured once on each, and bandwidth runs on each, so rows carry n, median, min, max, CV and every sample, and the spread between allocations is told apart from the spread between runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Timed runs per bandwidth figure on each allocation (after a discarded warm-up).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Bytes between touches (default: the kernel's page size).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_size)]
    pub page_stride: Option<u64>,
    /// CPU threads for the CPU-first touches.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub cpu_threads: u32,
    #[command(flatten)]
    pub device: crate::cli::DeviceArgs,
    #[command(flatten)]
    pub safety: crate::cli::SafetyArgs,
    /// `registered`: map this file (read-only) instead of anonymous memory.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// `pool`: the default pool's release threshold (0 returns memory at every synchronize).
    #[arg(long, default_value = "0B", value_parser = parse_threshold)]
    pub pool_release_threshold: u64,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The `--strategies` help, with the keys of the registry.
fn strategies_help() -> String {
    format!(
        "Strategies to compare (comma-separated keys, or `all`). Default: all the device supports. Keys: {}.",
        Strategy::keys(&Strategy::all())
    )
}

/// `0B` (or `0`) is allowed for the threshold; other sizes need units.
fn parse_threshold(s: &str) -> std::result::Result<u64, String> {
    if matches!(s.trim(), "0" | "0B" | "0b") {
        return Ok(0);
    }
    parse_size(s).map_err(|e| e.0)
}

/// Runs `sweep` from the command line.
pub fn main(args: SweepArgs) -> Result<()> {
    if let Some(f) = &args.file
        && !f.is_file()
    {
        return Err(Error::usage(format!(
            "--file {}: no such file (give an existing file to map)",
            f.display()
        )));
    }
    let page_stride = args
        .page_stride
        .unwrap_or_else(crate::host::facts::page_size);
    if !page_stride.is_multiple_of(4) {
        return Err(Error::usage(format!(
            "--page-stride {page_stride}B must be a multiple of 4 bytes"
        )));
    }
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    let drv = require_driver()?;
    let ordinals = args.device.device.resolve(drv.device_count()?)?;
    let opts = SweepOptions {
        strategies: args.strategies.map(|l| l.0),
        sizes: match args.preset.as_deref() {
            Some("seed") => Some(SEED_SIZES_GB.iter().map(|g| g * GB).collect()),
            _ => args.sizes.map(|l| l.0),
        },
        runs: args.runs,
        page_stride,
        cpu_threads: args.cpu_threads as usize,
        headroom: args.safety.headroom,
        force: args.safety.force,
        alloc: AllocOptions {
            file: args.file,
            pool_release_threshold: args.pool_release_threshold,
        },
        quiet: args.quiet,
        repeat: args.repeat,
        cpu_single_max: 0,
        caps: Caps::default(),
    };
    let env = Environment::collect(Some(&ordinals));
    let mut sink = ResultSink::new("sweep", env, args.output.out.as_deref())?;
    let t = Instant::now();
    let result = run(&ordinals, &opts, &mut sink).and_then(|()| sink.require_rows());
    let was_interrupted = matches!(result, Err(Error::Interrupted)) || interrupted();
    for dev in &ordinals {
        let f = findings(&sink.doc.rows, *dev);
        sink.doc.notes.extend(f);
    }
    sink.doc
        .notes
        .push(format!("sweep took {:.1} s", t.elapsed().as_secs_f64()));
    sink.finish_run(&result, was_interrupted)?;
    args.output.print(&sink.doc, &sink.doc.rows, || {
        format!(
            "{}{}sweep took {:.1} s\n",
            render(&sink.doc),
            crate::experiments::sweep::headline::render_all(
                &crate::experiments::sweep::headline::from_sweep(&sink.doc)
            ),
            t.elapsed().as_secs_f64()
        )
    })?;
    if was_interrupted {
        return Err(Error::Interrupted);
    }
    result
}
