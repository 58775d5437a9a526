//! `cumemlab compare A B [C...]`: results from different machines or runs side by side (a GB10
//! against an H100, say). Inputs are lab folders (or their `results.json`), a folder of lab
//! folders (a fleet's shared `--out`), or plain `sweep` and `probe` result documents; each device
//! of each input is one column ("machine"), labelled by host and device name. Per experiment,
//! one table with every column and its ratio to the first; with `--out DIR`, `compare.md` and a
//! self-contained `compare.html` with one series per machine in every plot, and `compare.json`;
//! `--json` prints the same JSON on stdout.
//!
//! Inputs are read with the checks every reader shares (a newer schema or a corrupt file is one
//! sentence, exit 2) and normalized into [`LabResults`] (plain documents through
//! [`lab::assemble`]), so one set of accessors serves every kind of input.
//!
//! The parts: [`crate::experiments::lab::comparable`] (tables, rows, columns and the hooks'
//! contexts, in the lab's module with the registry whose hooks use them), [`input`] (reading),
//! [`build`] (the tables, asked of each experiment of the registry), [`render`] (text and page).
//! This module keeps the command line.

pub mod build;
pub mod input;
pub mod render;

use std::path::{Path, PathBuf};

pub use crate::experiments::lab::comparable::{
    Column, CompareReport, CompareRow, CompareTable, FactRow, HeadlineTable, Input, table_cells,
};
pub use build::build;
pub use input::{column_id, columns, read_inputs};
pub use render::{page, render_text};

use crate::error::{Error, Result};
use crate::report::sink::to_json;
use crate::report::write_atomic;

/// `cumemlab compare` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab compare cumemlab-results/spark-2025-06-01 cumemlab-results/h100-2025-06-01\n  cumemlab compare /shared/cumemlab --out compare/     (every lab folder of a fleet)\n  cumemlab compare gb10/results.json h100-sweep.json --json\n\n\
Inputs: lab folders (or their results.json), a folder of lab folders, sweep or probe result\n\
files. Each device of each input is one machine; the first is the reference of every ratio."
)]
pub struct CompareArgs {
    /// Results to compare (the first is the reference for the ratios).
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Write compare.md, compare.html (plots inline), compare.json and plots/ into this folder (created).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the comparison as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Reads every input; at least two machines are needed.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for p in paths {
        inputs.extend(read_inputs(p)?);
    }
    let n = columns(&inputs).len();
    if n < 2 {
        return Err(Error::usage(format!(
            "compare needs at least two machines (devices of the inputs) and found {n}: give two result folders or files, or a folder of lab folders"
        )));
    }
    Ok(inputs)
}

/// Writes compare.md, compare.html, compare.json and the plots into `dir`.
pub fn write(rep: &CompareReport, inputs: &[Input], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("plots")).map_err(|e| {
        Error::usage(format!(
            "--out {}: cannot create the folder ({e})",
            dir.display()
        ))
    })?;
    let p = page(rep, inputs)?;
    for f in p.figures() {
        write_atomic(&dir.join("plots").join(&f.file), f.svg.as_bytes())?;
    }
    write_atomic(
        &dir.join("compare.md"),
        crate::report::markdown::to_markdown(&p, "plots").as_bytes(),
    )?;
    write_atomic(
        &dir.join("compare.html"),
        crate::report::html::to_html(&p).as_bytes(),
    )?;
    write_atomic(&dir.join("compare.json"), &to_json(rep)?)?;
    Ok(())
}

/// Runs `compare` from the command line.
pub fn main(args: CompareArgs) -> Result<()> {
    let inputs = load(&args.inputs)?;
    let rep = build(&inputs);
    if let Some(dir) = &args.out {
        super::exit_on_first_signal();
        super::check_interrupt()?;
        write(&rep, &inputs, dir)?;
    }
    if args.json {
        crate::report::sink::print_stdout(to_json(&rep)?)?;
    } else {
        let mut text = render_text(&rep);
        if let Some(dir) = &args.out {
            text.push_str(&format!(
                "written: {}, {}, {}\n",
                dir.join("compare.html").display(),
                dir.join("compare.md").display(),
                dir.join("compare.json").display()
            ));
        }
        crate::report::sink::print_stdout(text)?;
    }
    Ok(())
}
