//! The command line: one enum of subcommands. Each subcommand's options are a typed clap `Args`
//! struct next to the experiment that uses them (values are parsed into sizes, strategies and
//! devices by clap value parsers, so bad input fails before anything runs, with exit code 2).

use clap::{Parser, Subcommand};

use crate::experiments;

#[derive(Debug, Parser)]
#[command(
    name = "cumemlab",
    version,
    about = "What GPU memory really costs: allocation time, first touch, bandwidth, limits, and the page cache.",
    long_about = "cumemlab binds the CUDA driver API directly and runs its own kernels to measure what each GPU \
memory allocation strategy costs on this machine: allocation time, first-touch cost on GPU and CPU, steady-state \
bandwidth, the largest allocation that fits, and how the Linux page cache competes with the GPU. Built for \
NVIDIA GB10 (DGX Spark, unified memory) and just as right on discrete GPUs (H100, H200).\n\n\
Sizes always carry a unit: 512MiB, 1GiB (powers of 2) or 4GB (powers of 10); `4G` is refused as ambiguous.",
    after_help = "Examples:\n  cumemlab info\n  cumemlab selftest\n  cumemlab sweep --sizes 256MiB,1GiB --strategies device,managed,pinned\n  cumemlab plan --model llama-3.1-70b --precision fp8 --target gb10"
)]
pub struct Cli {
    /// Long forms: every library path tried when there is no CUDA driver; `plan`'s formulas,
    /// capacity matrix and assumptions.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole lab in one command: every experiment, a results folder with report.md/report.html and plots.
    Lab(experiments::lab::LabArgs),
    /// Results from different machines or runs side by side: one table per experiment with ratios, plots with one series per machine.
    Compare(experiments::compare::CompareArgs),
    /// The host, the driver, each GPU's memory architecture and which strategies it supports.
    Info(experiments::info::InfoArgs),
    /// Verify every kernel and measure fill/read against cuMemsetD32 (run this first).
    Selftest(experiments::selftest::SelftestArgs),
    /// Compare allocation strategies across sizes: alloc time, first touch, bandwidth, free.
    Sweep(experiments::sweep::SweepArgs),
    /// Allocate a model's named tensors (preset, --model, or spec file): per-tensor time, totals vs accounting, fragmentation.
    Layout(experiments::layout::LayoutArgs),
    /// How much can really be allocated, per strategy: the largest single allocation and the cumulative maximum, and why each stopped.
    Probe(experiments::probe::ProbeArgs),
    /// A model file into GPU memory by every path (mmap, read, pinned staging, registered, O_DIRECT, managed), cold and warm; --copies: the host<->device copy matrix.
    Load(experiments::load::LoadArgs),
    /// The page cache against GPU memory: status, --drop, --fill, --evict, and the `cache effect` experiment.
    Cache(experiments::cache::CacheArgs),
    /// A live view of device free/total, MemAvailable, MemFree, Cached and SwapFree, like top.
    Watch(experiments::watch::WatchArgs),
    /// Will a model fit? Weights, KV cache, training state per precision, against a target.
    Plan(crate::plan::command::PlanArgs),
}

/// The output flags every measuring command shares (`selftest`, `sweep`, `probe`, `layout`,
/// `cache`, `cache effect`), flattened into each one's options so they read the same everywhere.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Print the result document as JSON on stdout.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the rows as CSV on stdout.
    #[arg(long)]
    pub csv: bool,
    /// Write results to this file as they finish (.csv for CSV, else JSON), atomically.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// A comma-separated list as one option value. (clap's derive reads `Option<Vec<T>>` as a
/// repeatable option; a list typed as one value needs this wrapper.)
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

/// `--sizes` lists.
pub fn size_list(s: &str) -> std::result::Result<List<u64>, String> {
    crate::units::parse_size_list(s).map(List).map_err(|e| e.0)
}

/// `--strategies` lists.
pub fn strategy_list(s: &str) -> std::result::Result<List<crate::memory::Strategy>, String> {
    crate::memory::Strategy::parse_list(s).map(List)
}
