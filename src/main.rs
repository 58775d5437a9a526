//! The `cumemlab` binary: parse the command line, run the subcommand, map errors to exit codes
//! (2 bad input, 130 interrupted, 1 anything else) and report releases that failed during cleanup.
#![forbid(unsafe_code)]

use clap::Parser;

use cumemlab::cli::{Cli, Command};
use cumemlab::experiments;

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
        eprintln!("cumemlab: warning: a release failed during cleanup: {l}");
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
