//! `cumemlab load` (issue 11): a model file into GPU memory by every path, cold and warm, and the
//! host↔device copy matrix (`--copies`). A real safetensors file is read through its header, or a
//! synthetic file with a planner model's tensor sizes is written and removed afterwards. Every
//! run's data is checksummed on the GPU and compared with the file's checksum on the CPU.
//!
//! Files: `args` (options), `header` (safetensors), `synthetic` (the temporary file), `paths`
//! and `stream_paths` (the paths registry), `monitor` (host sampling, cold/warm), `run` (one run
//! and the loop), `copies` (the matrix), `render` (rows, table, findings). [`lab_step`] is the
//! thin adapter the lab's experiment registry calls.
//! Imports: experiments' shared GPU opening and interrupt flag, report, memory, host, driver.

mod args;
mod copies;
mod header;
mod monitor;
mod paths;
mod render;
mod run;
mod stream_paths;
mod synthetic;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

pub use args::{CacheState, LoadArgs};
pub use copies::{CopyRow, cells, render_copies};
pub use header::{ModelFile, Tensor};
pub use paths::PATHS;
pub use render::{LoadRow, findings, render, render_table};
pub use synthetic::{PREFIX, SyntheticFile};

use super::env::Environment;
use super::{Gpu, interrupted, require_driver};
use crate::driver::load_kernels::host_checksum_parallel;
use crate::error::{Error, Result};
use crate::host::MemInfo;
use crate::memory::Strategy;
use crate::memory::filemap::FileMap;
use crate::memory::safety::{Budget, Forced};
use crate::report::sink::{ResultSink, print_stdout};
use crate::units::{fmt_bytes, gbps};

/// Progress lines (the synthetic file being written, each run's figure): on a terminal only, so a
/// piped or logged run is not filled with what its results already hold; through the one
/// diagnostics channel. Warnings do not come here: they go to `diag::warn`, terminal or not.
fn note(line: impl AsRef<str>) {
    if std::io::stderr().is_terminal() {
        crate::report::diag::note(line.as_ref());
    }
}

/// The file to load: FILE, or a synthetic one (kept alive by the returned guard).
fn open_file(args: &LoadArgs) -> Result<(ModelFile, Option<SyntheticFile>)> {
    if let Some(p) = &args.file {
        return Ok((ModelFile::open(p)?, None));
    }
    let dir = synthetic::dir_or_default(args.dir.as_deref());
    note(format!(
        "writing a {} {} file into {}",
        fmt_bytes(args.size),
        args.preset,
        dir.display()
    ));
    let s = SyntheticFile::create(&dir, &args.preset, args.size, |_| {})?;
    let m = ModelFile::open(s.path())?;
    Ok((m, Some(s)))
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len())
}

/// A warm run needs the whole file in the page cache: refuse a file larger than MemAvailable.
fn warm_fits(bytes: u64) -> Result<()> {
    let avail = MemInfo::read().map_err(Error::Failed)?.mem_available;
    if bytes > avail {
        return Err(Error::usage(format!(
            "a warm load of {} cannot have the file in the page cache (MemAvailable is {}): give a smaller --size or --states cold",
            fmt_bytes(bytes),
            fmt_bytes(avail)
        )));
    }
    Ok(())
}

/// The CPU checksum of the data section, and its host ms.
fn cpu_checksum(file: &ModelFile) -> Result<(u64, f64)> {
    let t = Instant::now();
    let map = FileMap::open(&file.path, 0).map_err(|e| Error::io(&file.path, e))?;
    let data = &map.as_slice()[file.data_offset as usize..];
    Ok((
        host_checksum_parallel(data),
        t.elapsed().as_secs_f64() * 1e3,
    ))
}

pub fn main(args: LoadArgs) -> Result<()> {
    let paths = paths::parse_paths(&args.paths).map_err(Error::usage)?;
    let states = CacheState::parse_list(&args.states).map_err(Error::usage)?;
    if args.drop_caches {
        let root = nix::unistd::geteuid().is_root();
        crate::host::cache::open_drop_switch(&crate::host::cache::drop_caches_path(), root)?;
    }
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    if args.dry_run {
        return dry_run(&args);
    }
    // A named file is checked before the GPU: a bad file is the user's input (exit 2).
    if let Some(p) = &args.file {
        ModelFile::open(p)?;
    }
    let drv = require_driver()?;
    if drv.device_count()? <= 0 {
        return Err(Error::Failed(
            "no CUDA device found: `load` needs a GPU".into(),
        ));
    }
    let gpu = Gpu::open(&drv, args.device)?;
    let env = Environment::collect(Some(&[args.device]));
    if args.copies {
        return copies_main(&args, &gpu, env);
    }
    if states.contains(&CacheState::Warm) {
        warm_fits(args.file.as_ref().map_or(Ok(args.size), |p| file_len(p))?)?;
    }
    let (file, synthetic) = open_file(&args)?;
    let (expected, _) = cpu_checksum(&file)?;
    let plan = run::Plan {
        paths: &paths,
        states: &states,
        repeat: args.repeat,
        drop_all: args.drop_caches,
        headroom: args.headroom,
        force: args.force,
        expected,
    };
    let mut sink: ResultSink<LoadRow, Environment> =
        ResultSink::new("load", env, args.output.out.as_deref())?;
    let sink_cell = std::cell::RefCell::new(&mut sink);
    let result = run::run_all(
        &gpu,
        &plan,
        &file,
        |r| {
            note(format!(
                "{} {} run {}: {:.2} GB/s",
                r.path, r.state, r.run, r.gbps
            ));
            sink_cell.borrow_mut().push(r)
        },
        |s| sink_cell.borrow_mut().skip(s),
    );
    drop(synthetic);
    sink.doc.notes = findings(&sink.doc.rows, gpu.arch.is_unified());
    sink.finish_run(&result, interrupted())?;
    args.output.print(&sink.doc, &sink.doc.rows, || {
        render(&sink.doc.rows, &sink.doc.skipped, &sink.doc.notes)
    })?;
    result?;
    if sink.doc.rows.iter().any(|r| !r.checksum_ok) {
        return Err(Error::Failed(
            "a load path delivered data whose GPU checksum differs from the file's".into(),
        ));
    }
    sink.require_rows()
}

fn copies_main(args: &LoadArgs, gpu: &Gpu, env: Environment) -> Result<()> {
    let mut sink: ResultSink<CopyRow, Environment> =
        ResultSink::new("load-copies", env, args.output.out.as_deref())?;
    let cell = std::cell::RefCell::new(&mut sink);
    let guard = |s: Strategy, bytes: u64| guard(gpu, args.headroom, args.force, s, bytes);
    let result = copies::run_matrix(
        gpu,
        args.copies_max,
        args.repeat,
        guard,
        |r| cell.borrow_mut().push(r),
        |s| cell.borrow_mut().skip(s),
    );
    sink.doc.notes = copies::copy_findings(&sink.doc.rows);
    sink.finish_run(&result, interrupted())?;
    let text = || {
        let mut t = render_copies(&sink.doc.rows);
        t.push_str(&crate::report::table::bullet_section(
            "Skipped",
            &sink.doc.skipped,
        ));
        t.push_str(&crate::report::table::bullet_section(
            "Findings",
            &sink.doc.notes,
        ));
        t
    };
    args.output.print(&sink.doc, &sink.doc.rows, text)?;
    result?;
    sink.require_rows()
}

/// The safety ceiling for `bytes` of `strategy`: None to go on (a warning printed under
/// `--force`), Some(reason) to skip.
pub(super) fn guard(
    gpu: &Gpu,
    headroom: u64,
    force: bool,
    s: Strategy,
    bytes: u64,
) -> Result<Option<String>> {
    let m = MemInfo::read().map_err(Error::Failed)?;
    let budget = Budget {
        unified: gpu.arch.is_unified(),
        device_free: gpu.free_bytes()?,
        mem_available: m.mem_available,
        headroom,
    };
    Ok(match budget.check_forced(s, bytes, force) {
        Ok(Forced::Allowed) => None,
        Ok(Forced::Warn(w)) => {
            crate::report::diag::warn(&format!("cumemlab: warning: --force: {w}"));
            None
        }
        Err(why) => Some(why),
    })
}

/// `--dry-run`: the file and its CPU checksum, no GPU.
fn dry_run(args: &LoadArgs) -> Result<()> {
    let (file, synthetic) = open_file(args)?;
    let write = synthetic.as_ref().map(|s| (s.bytes, s.write_ms));
    let (sum, ms) = cpu_checksum(&file)?;
    super::check_interrupt()?;
    let largest = file.tensors.iter().map(Tensor::bytes).max().unwrap_or(0);
    let mut out = format!(
        "{}: {} tensors, {} of data at offset {} (largest tensor {}), checksum {sum:#018x} ({:.0} ms on the CPU)\n",
        file.path.display(),
        file.tensors.len(),
        fmt_bytes(file.data_bytes),
        file.data_offset,
        fmt_bytes(largest),
        ms
    );
    if let Some((bytes, ms)) = write {
        out.push_str(&format!(
            "synthetic file written in {:.2} s ({:.2} GB/s) and removed\n",
            ms / 1e3,
            gbps(bytes, ms)
        ));
    }
    drop(synthetic);
    print_stdout(out)
}

/// What the lab's load step measured.
pub struct LabStep {
    pub rows: Vec<LoadRow>,
    pub copies: Vec<CopyRow>,
    pub skipped: Vec<String>,
    pub findings: Vec<String>,
}

/// The lab's load step: a synthetic `llama-3.1-8b` file of `size` bytes in `dir` through every
/// supported path, cold and warm, `repeat` times, then the copy matrix up to `copies_max`.
pub fn lab_step(
    gpu: &Gpu,
    dir: &Path,
    size: u64,
    copies_max: u64,
    repeat: u32,
    headroom: u64,
) -> Result<LabStep> {
    let s = SyntheticFile::create(dir, "llama-3.1-8b", size, |_| {})?;
    let file = ModelFile::open(s.path())?;
    let (expected, _) = cpu_checksum(&file)?;
    let all: Vec<&'static paths::PathInfo> = PATHS.iter().collect();
    let plan = run::Plan {
        paths: &all,
        states: &[CacheState::Cold, CacheState::Warm],
        repeat,
        drop_all: false,
        headroom,
        force: false,
        expected,
    };
    let (mut rows, mut copies, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let skip = std::cell::RefCell::new(&mut skipped);
    let keep = |v: &mut Vec<_>, x| {
        v.push(x);
        Ok(())
    };
    run::run_all(
        gpu,
        &plan,
        &file,
        |r| keep(&mut rows, r),
        |s| {
            skip.borrow_mut().push(s);
            Ok(())
        },
    )?;
    drop(s);
    copies::run_matrix(
        gpu,
        copies_max,
        repeat,
        |st, b| guard(gpu, headroom, false, st, b),
        |r| {
            copies.push(r);
            Ok(())
        },
        |s| {
            skip.borrow_mut().push(s);
            Ok(())
        },
    )?;
    let mut notes = findings(&rows, gpu.arch.is_unified());
    notes.extend(copies::copy_findings(&copies));
    notes.extend(copies::bus_finding(&rows, &copies));
    Ok(LabStep {
        rows,
        copies,
        skipped,
        findings: notes,
    })
}
