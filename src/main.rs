//! The `cumemlab` binary: the enum of subcommands (here, the only place that names every
//! experiment, so the flag groups in `cumemlab::cli` stay below the experiments), parse the command
//! line, run the subcommand, map errors to exit codes (2 bad input, 130 interrupted, 1 anything
//! else) and report releases that failed during cleanup.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

use cumemlab::experiments;

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
struct Cli {
    /// Long forms: every library path tried when there is no CUDA driver; `plan`'s formulas,
    /// capacity matrix and assumptions.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    Plan(cumemlab::plan::command::PlanArgs),
}

fn main() {
    let cli = Cli::parse();
    cumemlab::driver::set_verbose_errors(cli.verbose);
    experiments::install_interrupt_handlers();
    let result = match cli.command {
        Command::Lab(a) => experiments::lab::main(a),
        Command::Compare(a) => experiments::compare::main(a),
        Command::Info(a) => experiments::info::main(a),
        Command::Selftest(a) => experiments::selftest::main(a),
        Command::Sweep(a) => experiments::sweep::main(a),
        Command::Layout(a) => experiments::layout::main(a),
        Command::Probe(a) => experiments::probe::main(a),
        Command::Load(a) => experiments::load::main(a),
        Command::Cache(a) => experiments::cache::main(a),
        Command::Watch(a) => experiments::watch::main(a),
        Command::Plan(a) => cumemlab::plan::command::main(a, cli.verbose),
    };
    let leaks = cumemlab::driver::take_drop_failures();
    for l in &leaks {
        cumemlab::report::diag::warn(&format!(
            "cumemlab: warning: a release failed during cleanup: {l}"
        ));
    }
    match result {
        Ok(()) => std::process::exit(if leaks.is_empty() { 0 } else { 1 }),
        Err(cumemlab::error::Error::OutputClosed) => std::process::exit(141),
        Err(e) => {
            eprintln!("cumemlab: error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
