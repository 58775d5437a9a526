//! The `cache` command's actions (status, `--drop`, `--fill`, `--evict`): each reads the memory
//! state before and after and streams [`CacheRow`]s. Imports the status rows from [`super`],
//! the page-cache controls from `host::cache`, and the device view from `watch`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CacheRow, CacheState, signed};
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::interrupted;
use crate::experiments::watch::{DeviceView, sleep_unless_interrupted};
use crate::host::MemInfo;
use crate::host::cache::{self as hc, FillFile};
use crate::report::{Progress, ResultSink};
use crate::units::{MIB, fmt_bytes, gbps};

/// What a `cache` command does.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheAction {
    Status,
    Drop,
    Fill {
        bytes: u64,
        dir: PathBuf,
        /// `Keep`: leave the file; `Hold(None)`: until Ctrl-C; `Hold(Some(d))`: for `d`.
        end: FillEnd,
    },
    Evict {
        path: PathBuf,
        remove: bool,
    },
}

/// How a `--fill` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillEnd {
    Keep,
    Hold(Option<Duration>),
}

/// The whole-command document type.
pub type CacheDoc = crate::report::Document<CacheRow, Environment>;

/// Checks an action's input before anything is read or changed (one sentence per refusal).
pub fn validate(action: &CacheAction, is_root: bool) -> Result<()> {
    match action {
        CacheAction::Drop if !is_root => {
            // The same refusal `drop_caches` gives, before any GPU is opened.
            hc::open_drop_switch(&hc::drop_caches_path(), false).map(|_| ())
        }
        CacheAction::Evict { path, remove } => {
            if !path.exists() {
                return Err(Error::usage(format!(
                    "--evict {}: no such file; give the path of a file whose pages to drop",
                    path.display()
                )));
            }
            if !path.is_file() {
                return Err(Error::usage(format!(
                    "--evict {} is not a regular file; give a file (to drop everything, use --drop as root)",
                    path.display()
                )));
            }
            if *remove && !hc::is_fill_file(path) {
                return Err(Error::usage(format!(
                    "--remove deletes only files made by `cache --fill --keep` (named {}*), and {} is not one: remove it yourself if you mean to",
                    hc::FILL_PREFIX,
                    path.display()
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Runs one `cache` action, streaming its states into `sink`. `dev` is the device whose
/// `cuMemGetInfo` is shown (none without a GPU). Returns the sentences to print after the table.
pub fn run_action(
    action: &CacheAction,
    dev: Option<&DeviceView>,
    sink: &mut ResultSink<CacheRow, Environment>,
    quiet: bool,
) -> Result<Vec<String>> {
    let mut said = Vec::new();
    match action {
        CacheAction::Status => sink.push(CacheRow::take(CacheState::Now, dev)?)?,
        CacheAction::Drop => drop_all(dev, sink, &mut said)?,
        CacheAction::Fill { bytes, dir, end } => {
            fill(*bytes, dir, *end, dev, sink, &mut said, quiet)?
        }
        CacheAction::Evict { path, remove } => evict(path, *remove, dev, sink, &mut said)?,
    }
    Ok(said)
}

/// `--drop`: `sync`, then `drop_caches=3`, with the state before and after.
fn drop_all(
    dev: Option<&DeviceView>,
    sink: &mut ResultSink<CacheRow, Environment>,
    said: &mut Vec<String>,
) -> Result<()> {
    let path = hc::drop_caches_path();
    // Refusals come before anything is measured.
    let switch = hc::open_drop_switch(&path, nix::unistd::geteuid().is_root())?;
    let before = CacheRow::take(CacheState::BeforeDrop, dev)?;
    sink.push(before.clone())?;
    let t = Instant::now();
    switch.drop_caches()?;
    let mut after = CacheRow::take(CacheState::AfterDrop, dev)?;
    after.action_ms = Some(t.elapsed().as_secs_f64() * 1e3);
    said.push(format!(
        "sync; echo 3 > {} took {:.0} ms and freed {} of page cache (Cached {} -> {}); MemFree rose by {}{}.",
        path.display(),
        after.action_ms.unwrap_or(0.0),
        fmt_bytes(before.cached_bytes.saturating_sub(after.cached_bytes)),
        fmt_bytes(before.cached_bytes),
        fmt_bytes(after.cached_bytes),
        signed(after.mem_free_bytes as i64 - before.mem_free_bytes as i64),
        match (before.device_free_bytes, after.device_free_bytes) {
            (Some(a), Some(b)) => format!(
                " and cuMemGetInfo free by {}",
                signed(b as i64 - a as i64)
            ),
            _ => String::new(),
        }
    ));
    sink.push(after)?;
    Ok(())
}

/// `--fill`: write and read back a file, then keep it or hold it and remove it.
fn fill(
    bytes: u64,
    dir: &Path,
    end: FillEnd,
    dev: Option<&DeviceView>,
    sink: &mut ResultSink<CacheRow, Environment>,
    said: &mut Vec<String>,
    quiet: bool,
) -> Result<()> {
    let m = MemInfo::read().map_err(Error::Failed)?;
    hc::check_fill(dir, bytes, m.mem_available)?;
    let before = CacheRow::take(CacheState::BeforeFill, dev)?;
    sink.push(before.clone())?;
    let fill = fill_with_progress(dir, bytes, rand::random(), quiet)?;
    let (_, read_ms) = hc::read_through(fill.path())?;
    let mut after = CacheRow::take(CacheState::AfterFill, dev)?.with_file(fill.path());
    after.action_ms = Some(fill.write_ms + read_ms);
    said.push(format!(
        "Wrote {} to {} in {:.1} s (with fdatasync) and read it back in {:.2} s ({:.1} GB/s from the cache); Cached rose by {}, MemAvailable moved by {}{}.",
        fmt_bytes(bytes),
        fill.path().display(),
        fill.write_ms / 1e3,
        read_ms / 1e3,
        gbps(bytes, read_ms),
        signed(after.cached_bytes as i64 - before.cached_bytes as i64),
        signed(after.mem_available_bytes as i64 - before.mem_available_bytes as i64),
        match (before.device_free_bytes, after.device_free_bytes) {
            (Some(a), Some(b)) => format!(
                ", cuMemGetInfo free by {}",
                signed(b as i64 - a as i64)
            ),
            _ => String::new(),
        }
    ));
    sink.push(after)?;
    match end {
        FillEnd::Keep => {
            let path = fill.keep()?;
            said.push(format!(
                "The file stays, and its pages stay cached until the kernel needs them: drop them with `cumemlab cache --evict {0}`, or drop them and delete the file with `cumemlab cache --evict {0} --remove`.",
                path.display()
            ));
        }
        FillEnd::Hold(d) => {
            // Always said (quiet or not): it names the file held and how to drop it meanwhile.
            crate::report::diag::note(&format!(
                "cumemlab: holding {} of page cache in {} {}; `cumemlab cache --evict {}` from another shell drops its pages meanwhile",
                fmt_bytes(bytes),
                fill.path().display(),
                match d {
                    Some(d) => format!("for {}", humantime::format_duration(d)),
                    None => "until Ctrl-C".to_string(),
                },
                fill.path().display()
            ));
            let path = fill.path().to_path_buf();
            let done = sleep_unless_interrupted(d.unwrap_or(Duration::MAX));
            fill.remove()?;
            let gone = CacheRow::take(CacheState::AfterRemoval, dev)?;
            said.push(format!(
                "Held the fill {}, then removed {} (its pages went with it: Cached {} since the fill).",
                if done { "for the time asked" } else { "until Ctrl-C" },
                path.display(),
                signed(gone.cached_bytes as i64 - before.cached_bytes as i64)
            ));
            sink.push(gone)?;
        }
    }
    Ok(())
}

/// `--evict`: drop one file's pages (and, with `--remove`, the file).
fn evict(
    path: &Path,
    remove: bool,
    dev: Option<&DeviceView>,
    sink: &mut ResultSink<CacheRow, Environment>,
    said: &mut Vec<String>,
) -> Result<()> {
    let before = CacheRow::take(CacheState::BeforeEvict, dev)?.with_file(path);
    sink.push(before.clone())?;
    let t = Instant::now();
    hc::evict(path)?;
    let mut after = CacheRow::take(CacheState::AfterEvict, dev)?.with_file(path);
    after.action_ms = Some(t.elapsed().as_secs_f64() * 1e3);
    let left = after.file_resident_bytes.unwrap_or(0);
    said.push(format!(
        "fdatasync + posix_fadvise(DONTNEED) on {} took {:.1} ms: the file's pages in the cache went {} -> {}{}; Cached moved by {}.",
        path.display(),
        after.action_ms.unwrap_or(0.0),
        fmt_bytes(before.file_resident_bytes.unwrap_or(0)),
        fmt_bytes(left),
        if left > 0 {
            " (pages another process maps or locks stay)"
        } else {
            ""
        },
        signed(after.cached_bytes as i64 - before.cached_bytes as i64)
    ));
    sink.push(after)?;
    if remove {
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        said.push(format!("Removed {}.", path.display()));
    }
    Ok(())
}

/// Writes a fill with a progress bar over its blocks; Ctrl-C aborts it (the file is removed).
fn fill_with_progress(dir: &Path, bytes: u64, seed: u32, quiet: bool) -> Result<FillFile> {
    let step = 64 * MIB;
    let progress = Progress::new(bytes.div_ceil(step), quiet);
    progress.message(format!(
        "writing {} into {}",
        fmt_bytes(bytes),
        dir.display()
    ));
    let mut shown = 0u64;
    let r = FillFile::create(
        dir,
        bytes,
        seed,
        |done| {
            while shown + step <= done {
                shown += step;
                progress.inc();
            }
        },
        interrupted,
    );
    progress.finish();
    r
}
