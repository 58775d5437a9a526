//! `cumemlab cache` and `cache effect` on the command line: clap options, then the action or
//! the experiment, then the chosen output (table, `--json`, `--csv`, `--out`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::probe;
use crate::experiments::watch::parse_duration;
use crate::experiments::{Gpu, interrupted, require_driver};
use crate::host::MemInfo;
use crate::host::cache as hc;
use crate::report::ResultSink;
use crate::units::{fmt_bytes, parse_size};

/// `cumemlab cache` options.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Without an option: the status. --drop needs root; --evict does not.\n\
--fill writes SIZE into a temporary file named cumemlab-fill-* (in --dir, default the temporary folder, or the current folder when that is a tmpfs), reads it back so it is cached, and holds it until Ctrl-C (or for --hold), then removes it: Ctrl-C is the normal end of a hold (exit 0; during the writing it is an interruption, exit 130). With --keep the file stays (and stays cached until the kernel needs the memory): `cache --evict PATH --remove` drops its pages and deletes it. A second Ctrl-C exits at once and can leave the file behind.\n\n\
Examples:\n  cumemlab cache\n  sudo cumemlab cache --drop\n  cumemlab cache --fill 8GiB                  # hold 8 GiB of cache until Ctrl-C\n  cumemlab cache --fill 4GiB --hold 60s --dir /data\n  cumemlab cache --fill 1GiB --keep --json\n  cumemlab cache --evict /data/model.safetensors\n  cumemlab cache --evict /tmp/cumemlab-fill-AbC123.bin --remove\n  cumemlab cache effect --fill 8GiB --out cache-effect.json"
)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: Option<CacheCommand>,
    /// Drop the whole page cache (root): `sync`, then 3 into /proc/sys/vm/drop_caches; reports what it freed.
    #[arg(long, conflicts_with_all = ["fill", "evict"])]
    pub drop: bool,
    /// Fill the page cache with a temporary file of this size (real pressure: written, then read back).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_size, conflicts_with = "evict")]
    pub fill: Option<u64>,
    /// Folder of the --fill file (a disk filesystem, not tmpfs).
    #[arg(long, requires = "fill")]
    pub dir: Option<PathBuf>,
    /// Leave the --fill file in place and exit, printing how to evict and remove it.
    #[arg(long, requires = "fill", conflicts_with = "hold")]
    pub keep: bool,
    /// Hold the --fill this long, then remove it (1s, 10m...; default: until Ctrl-C).
    #[arg(long, requires = "fill", allow_hyphen_values = true, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// Drop this file's pages from the page cache (posix_fadvise DONTNEED; no root needed).
    #[arg(long)]
    pub evict: Option<PathBuf>,
    /// With --evict: also delete the file (only files made by `--fill --keep`).
    #[arg(long, requires = "evict")]
    pub remove: bool,
    /// Device whose cuMemGetInfo is shown beside the host's figures.
    // One device, not the shared `--device N|all` (`cli::DeviceArgs`): the status shows one
    // device's free memory beside the host's figures.

    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(0..))]
    pub device: i32,
    /// Do not open a GPU (host figures only).
    #[arg(long)]
    pub host_only: bool,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// The experiment: with the cache filled and after eviction, cuMemGetInfo free, MemAvailable, the largest device allocation, one allocation's time, and a file read by the GPU cold and warm.
    Effect(EffectArgs),
}

/// `cumemlab cache effect` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "States, in order: before fill; cache filled (the file written and read back: warm); after evict (posix_fadvise DONTNEED: cold). In each: accounting, the timed device allocations, the registered file mapping read by the GPU (and the pageable mapping where the GPU can read pageable memory), then the device probe. The file is removed on every path.\n\n\
Examples:\n  cumemlab cache effect\n  cumemlab cache effect --fill 16GiB --size 4GiB --out docs/results/cache-effect.json\n  cumemlab cache effect --fill 2GiB --no-probe --dir /data --json"
)]
pub struct EffectArgs {
    /// Size of the cache fill (default: 4 GiB, less if half of MemAvailable minus --headroom or the free disk is smaller).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_size)]
    pub fill: Option<u64>,
    /// Size of the timed device allocation.
    #[arg(long, default_value = "1GiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub size: u64,
    /// Timed allocations after the first (which is reported on its own).
    #[arg(long, default_value_t = 5, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Folder of the fill file (a disk filesystem, not tmpfs). Default: the temporary folder, or the current folder when that is a tmpfs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Resolution of the device probe in each state (a multiple of 2 MiB).
    #[arg(long, default_value = "256MiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub resolution: u64,
    /// Skip the device probe.
    #[arg(long)]
    pub no_probe: bool,
    /// Device ordinal.
    // One device, not the shared `--device N|all` (`cli::DeviceArgs`): the experiment measures one
    // device's reads against one file's page cache.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(0..))]
    pub device: i32,
    /// Memory that must stay available to the host (MemAvailable minus this is the ceiling).
    // Not the shared `SafetyArgs`: this experiment has no `--force` (it sizes its fill
    // from MemAvailable minus the headroom and never crosses it).
    #[arg(long, default_value = "8GiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub headroom: u64,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `cache` (or `cache effect`) from the command line.
pub fn main(args: CacheArgs) -> Result<()> {
    if let Some(CacheCommand::Effect(e)) = args.command {
        return main_effect(e);
    }
    let action = if args.drop {
        CacheAction::Drop
    } else if let Some(bytes) = args.fill {
        CacheAction::Fill {
            bytes,
            dir: args.dir.unwrap_or_else(hc::default_fill_dir),
            end: if args.keep {
                FillEnd::Keep
            } else {
                FillEnd::Hold(args.hold)
            },
        }
    } else if let Some(path) = args.evict {
        CacheAction::Evict {
            path,
            remove: args.remove,
        }
    } else {
        CacheAction::Status
    };
    validate(&action, nix::unistd::geteuid().is_root())?;
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    if let CacheAction::Fill { bytes, dir, .. } = &action {
        let m = MemInfo::read().map_err(Error::Failed)?;
        hc::check_fill(dir, *bytes, m.mem_available)?;
    }
    let (view, absent, env) = crate::experiments::watch::open_view(args.host_only, args.device)?;
    let mut sink: ResultSink<CacheRow, Environment> =
        ResultSink::new("cache", env, args.output.out.as_deref())?;
    let result = run_action(&action, view.as_ref(), &mut sink, args.quiet);
    let was_interrupted = matches!(result, Err(Error::Interrupted));
    let said = match &result {
        Ok(s) => s.clone(),
        Err(_) => Vec::new(),
    };
    let arch = view.as_ref().map(|v| v.arch);
    if let Some(last) = sink.doc.rows.last().cloned() {
        let mut notes = said.clone();
        notes.extend(explain(&last, arch, absent.as_deref()));
        sink.doc.notes.extend(notes);
    }
    sink.finish_run(&result, was_interrupted)?;
    if result.is_err() && !was_interrupted {
        // The error says what went wrong; what was measured is in --out.
        return result.map(|_| ());
    }
    args.output.print(&sink.doc, &sink.doc.rows, || {
        if sink.doc.rows.is_empty() {
            return String::new();
        }
        let mut text = format!("{}\n", render_states(&sink.doc.rows));
        for n in &sink.doc.notes {
            text.push_str(&format!("- {n}\n"));
        }
        text
    })?;
    result.map(|_| ())
}

fn main_effect(args: EffectArgs) -> Result<()> {
    let opts = EffectOptions {
        fill_bytes: args.fill,
        alloc_bytes: args.size,
        runs: args.runs,
        dir: args.dir.unwrap_or_else(hc::default_fill_dir),
        headroom: args.headroom,
        probe_resolution_bytes: (!args.no_probe).then_some(args.resolution),
        quiet: args.quiet,
    };
    if let Some(b) = opts.fill_bytes {
        let m = MemInfo::read().map_err(Error::Failed)?;
        hc::check_fill(&opts.dir, b, m.mem_available)?;
    } else if !opts.dir.is_dir() {
        return Err(Error::usage(format!(
            "--dir {}: no such folder; give an existing folder on a disk filesystem",
            opts.dir.display()
        )));
    }
    if let Some(res) = opts.probe_resolution_bytes
        && (res == 0 || !res.is_multiple_of(probe::ALIGN_BYTES))
    {
        return Err(Error::usage(format!(
            "--resolution {} is not a multiple of 2 MiB: give for example 256MiB",
            fmt_bytes(res)
        )));
    }
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    let drv = require_driver()?;
    let gpu = Gpu::open(&drv, args.device)?;
    let env = Environment::collect(Some(&[args.device]));
    gpu.ctx.bind()?;
    let mut sink = ResultSink::new("cache-effect", env, args.output.out.as_deref())?;
    let t = Instant::now();
    let result = run_effect(&gpu, &opts, &mut sink);
    let was_interrupted = matches!(result, Err(Error::Interrupted)) || interrupted();
    let unified = gpu.arch.is_unified();
    let f = effect_findings(&sink.doc.rows, args.device, unified);
    sink.doc.notes.extend(f);
    sink.doc.notes.push(format!(
        "cache effect took {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    sink.finish_run(&result, was_interrupted)?;
    args.output.print(&sink.doc, &sink.doc.rows, || {
        let mut doc = sink.doc.clone();
        // The findings are printed under the table already.
        doc.notes.retain(|n| n.starts_with("cache effect took"));
        render_effect(&doc)
    })?;
    if was_interrupted {
        return Err(Error::Interrupted);
    }
    result
}
