//! `cumemlab probe` on the command line: its clap arguments and `main`, which turns them into
//! [`ProbeOptions`], runs the probe into a [`ResultSink`] and prints the chosen form. May import
//! the rest of the probe, `cli`, `report` and `units`.

use std::time::Instant;

use super::{KindSel, MaxSel, ProbeOptions, default_strategies, render, run};
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::{interrupted, require_driver};
use crate::memory::{AllocOptions, Strategy};
use crate::report::ResultSink;
use crate::units::parse_size;

/// `cumemlab probe` options.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("force", |a| a.help("Probe past the safety ceiling up to the physical size (prints a warning; can wedge a unified-memory host). Managed memory on a discrete card still stops at cuMemGetInfo free")),
    after_help = "Each figure says why the search stopped: at a failure (out of memory: what the system really gives), at the safety ceiling (MemAvailable minus --headroom on unified memory; the card's free memory on discrete cards), or at the --max cap.\n\nExamples:\n  cumemlab probe\n  cumemlab probe --strategies device,managed,pinned,pool,vmm --out probe.json\n  cumemlab probe --strategies device --kind single --resolution 64MiB\n  cumemlab probe --strategies pinned --max none --chunk 4GiB\n  cumemlab probe --strategies managed --no-touch --json"
)]
pub struct ProbeArgs {
    // Help text from the strategy registry: `strategies_help`.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::cli::strategy_list, help = strategies_help())]
    pub strategies: Option<crate::cli::List<Strategy>>,
    /// Which figure: the largest single allocation, the cumulative maximum, or both.
    #[arg(long, value_enum, default_value = "both")]
    pub kind: KindSel,
    /// Bisection resolution of the single-allocation search (a multiple of 2 MiB).
    #[arg(long, default_value = "256MiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub resolution: u64,
    /// Chunk size of the cumulative search (a multiple of 2 MiB).
    #[arg(long, default_value = "1GiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub chunk: u64,
    /// Stop searching at this size: a size, `none`, or `auto` (no cap, except 32 GiB for the host-memory strategies pinned, registered and pageable on discrete GPUs, where pinning costs about 0.3 to 0.5 s per GB).
    #[arg(long, default_value = "auto", allow_hyphen_values = true, value_parser = MaxSel::parse)]
    pub max: MaxSel,
    /// Touch every allocation from the GPU (one write per page) before counting it. Default: on for managed and pageable, which are populated lazily.
    #[arg(long, conflicts_with = "no_touch")]
    pub touch: bool,
    /// Never touch (count what the allocator promises, not what it holds).
    #[arg(long)]
    pub no_touch: bool,
    #[command(flatten)]
    pub device: crate::cli::DeviceArgs,
    // `--force` means more here than in the shared group (probe searches up to the physical
    // size), so its help is this command's own: `mut_arg` above.
    #[command(flatten)]
    pub safety: crate::cli::SafetyArgs,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The `--strategies` help, its default list read from the registry.
fn strategies_help() -> String {
    format!(
        "Strategies to probe (comma-separated keys, or `all`). Default: {} (those the device supports).",
        Strategy::keys(&default_strategies())
    )
}

/// Runs `probe` from the command line.
pub fn main(args: ProbeArgs) -> Result<()> {
    let opts = ProbeOptions {
        strategies: args
            .strategies
            .map(|l| l.0)
            .unwrap_or_else(default_strategies),
        kinds: args.kind.kinds(),
        resolution_bytes: args.resolution,
        chunk_bytes: args.chunk,
        max: args.max,
        touch: if args.touch {
            Some(true)
        } else if args.no_touch {
            Some(false)
        } else {
            None
        },
        page_stride: crate::host::facts::page_size(),
        headroom: args.safety.headroom,
        force: args.safety.force,
        alloc: AllocOptions::default(),
        quiet: args.quiet,
        ..ProbeOptions::default()
    };
    opts.validate()?;
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    let drv = require_driver()?;
    let ordinals = args.device.device.resolve(drv.device_count()?)?;
    let env = Environment::collect(Some(&ordinals));
    let mut sink = ResultSink::new("probe", env, args.output.out.as_deref())?;
    let t = Instant::now();
    let result = run(&ordinals, &opts, &mut sink).and_then(|()| sink.require_rows());
    let was_interrupted = matches!(result, Err(Error::Interrupted)) || interrupted();
    sink.doc
        .notes
        .push(format!("probe took {:.1} s", t.elapsed().as_secs_f64()));
    sink.finish_run(&result, was_interrupted)?;
    args.output
        .print(&sink.doc, &sink.doc.rows, || render(&sink.doc))?;
    if was_interrupted {
        return Err(Error::Interrupted);
    }
    result
}
