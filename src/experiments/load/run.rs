//! One load run and the loop over paths, states and repeats: the safety check of what a path
//! will take (device or managed destination, pinned host memory), the page-cache state, the
//! timed run with the host sampler, then the checksum kernel compared with the file's checksum.
//! Every allocation is freed before the next run; the interrupt flag is checked between runs.
//! Imports: the paths registry, the monitor, the driver's load kernels, the memory layer's guards.

use std::time::Instant;

use super::args::CacheState;
use super::header::ModelFile;
use super::monitor::{Sampler, cached_bytes, prepare};
use super::paths::{PathInfo, RunCtx};
use super::render::LoadRow;
use crate::driver::load_kernels::LoadKernels;
use crate::error::{Error, Result};
use crate::experiments::{Gpu, check_interrupt};
use crate::memory::{AllocOptions, allocate};
use crate::units::gbps;

/// What the loop needs besides the GPU and file.
pub struct Plan<'a> {
    pub paths: &'a [&'static PathInfo],
    pub states: &'a [CacheState],
    pub repeat: u32,
    pub drop_all: bool,
    pub headroom: u64,
    pub force: bool,
    /// The CPU checksum of the file's data section.
    pub expected: u64,
}

/// Why `path` cannot run on this GPU and file (support, then the safety ceiling), if it cannot.
pub fn why_not(
    gpu: &Gpu,
    plan: &Plan,
    file: &ModelFile,
    path: &PathInfo,
) -> Result<Option<String>> {
    if let Err(why) = (path.supported)(gpu, file) {
        return Ok(Some(why));
    }
    if let Some(why) = super::guard(gpu, plan.headroom, plan.force, path.dest, file.data_bytes)? {
        return Ok(Some(why));
    }
    if let Some((s, bytes)) = path.pins.request(file) {
        return super::guard(gpu, plan.headroom, plan.force, s, bytes);
    }
    Ok(None)
}

/// Runs `path` once in `state`; the row carries everything measured.
pub fn run_once(
    gpu: &Gpu,
    plan: &Plan,
    file: &ModelFile,
    k: &LoadKernels,
    path: &PathInfo,
    state: CacheState,
    run: u32,
) -> Result<LoadRow> {
    let resident = prepare(
        &file.path,
        state,
        plan.drop_all && state == CacheState::Cold,
    )?;
    let cached_before = cached_bytes();
    let mut dst = allocate(
        &gpu.ctx,
        &gpu.stream,
        path.dest,
        file.data_bytes.max(16),
        &AllocOptions::default(),
    )?;
    let sampler = Sampler::start();
    let t0 = Instant::now();
    let ctx = RunCtx { gpu, file, t0, k };
    let loaded = (path.run)(&ctx, dst.as_mut());
    gpu.ctx.synchronize()?;
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    let extremes = sampler.stop();
    let loaded = loaded?;
    let cache_growth = cached_bytes() as i64 - cached_before as i64;
    let (kernel_ms, sum) = k.checksum(&gpu.stream, dst.device_ptr(), file.data_bytes)?;
    dst.free()?;
    Ok(LoadRow {
        path: path.key.into(),
        state: state.key().into(),
        run,
        data_bytes: file.data_bytes,
        tensors: file.tensors.len() as u64,
        resident_before_bytes: resident,
        wall_ms,
        gbps: gbps(file.data_bytes, wall_ms),
        first_tensor_ms: loaded.first_ms,
        cache_growth_bytes: cache_growth,
        min_mem_available_bytes: extremes.min_mem_available,
        peak_rss_bytes: extremes.peak_rss,
        pinned_bytes: loaded.pinned_bytes,
        kernel_ms,
        checksum_ok: sum == plan.expected,
        note: loaded.note,
    })
}

/// Every path (supported and within the ceiling) in every state, `repeat` times; rows go to
/// `push` as they finish, skips (with their reasons) to `skip`.
pub fn run_all(
    gpu: &Gpu,
    plan: &Plan,
    file: &ModelFile,
    mut push: impl FnMut(LoadRow) -> Result<()>,
    mut skip: impl FnMut(String) -> Result<()>,
) -> Result<()> {
    let k = LoadKernels::new(&gpu.kernels)?;
    for path in plan.paths {
        if let Some(why) = why_not(gpu, plan, file, path)? {
            skip(format!("{}: {why}", path.key))?;
            continue;
        }
        'path: for &state in plan.states {
            for run in 1..=plan.repeat {
                check_interrupt()?;
                match run_once(gpu, plan, file, &k, path, state, run) {
                    Ok(row) => push(row)?,
                    // The attributes allowed it and the driver refused (cuMemHostRegister on
                    // GB10, antirez/ds4 PR #158): a skip with the driver's words, not a failure.
                    Err(Error::Driver(e)) if e.is_not_supported() => {
                        skip(format!("{}: the driver refused it ({e})", path.key))?;
                        break 'path;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}
