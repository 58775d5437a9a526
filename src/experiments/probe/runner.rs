//! The probe's runner: devices, then strategies and kinds, each search wired to the GPU (the
//! ceiling re-read before every attempt, the pressure guard on unified memory, one attempt =
//! allocate, touch when asked, free; or a chunk kept until the search ends) and every allocation
//! freed on every path. May import `driver` (errors), `memory`, `host`, `report` (the sink and
//! progress) and the experiments' `Gpu`.

use std::time::Instant;

use super::{
    Attempt, Limit, PhysicalBounds, ProbeKind, ProbeOptions, ProbeRow, StopReason, accumulate,
    bisect, budget_of, ceiling_limit, chunk_limit, stop_detail, with_cap,
};
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::{Gpu, check_interrupt, require_driver};
use crate::memory::{Allocation, Strategy, allocate, trim_default_pool};
use crate::report::{Progress, ResultSink};
use crate::units::fmt_bytes;

/// Runs the probe on each device in `ordinals`, streaming into `sink`.
pub fn run(
    ordinals: &[i32],
    opts: &ProbeOptions,
    sink: &mut ResultSink<ProbeRow, Environment>,
) -> Result<()> {
    opts.validate()?;
    let drv = require_driver()?;
    for &o in ordinals {
        let gpu = Gpu::open(&drv, o)?;
        run_gpu(&gpu, opts, sink)?;
    }
    Ok(())
}

/// Runs the probe on one open device, streaming into `sink`; unsupported strategies are recorded
/// as skipped with their reason. Returns `Err(Interrupted)` after writing the interrupted row.
pub fn run_gpu(
    gpu: &Gpu,
    opts: &ProbeOptions,
    sink: &mut ResultSink<ProbeRow, Environment>,
) -> Result<()> {
    opts.validate()?;
    let dev = gpu.device.ordinal();
    let progress = Progress::new(
        (opts.strategies.len() * opts.kinds.len()) as u64,
        opts.quiet,
    );
    if opts.force {
        progress.warn(format!(
            "WARNING: --force: device {dev}: probing past the safety ceiling up to the physical size{}; managed memory on a discrete card still stops at cuMemGetInfo free",
            if gpu.arch.is_unified() {
                " (on unified memory this can wedge the whole host)"
            } else {
                ""
            }
        ));
    }
    for &st in &opts.strategies {
        if let Err(reason) = st.supported(&gpu.attrs) {
            sink.skip(format!("device {dev} {st}: not supported: {reason}"))?;
            for _ in &opts.kinds {
                progress.inc();
            }
            continue;
        }
        for &kind in &opts.kinds {
            check_interrupt()?;
            if kind == ProbeKind::Cumulative && !opts.cumulative_lazy && opts.touches(st) {
                sink.skip(format!(
                    "device {dev} {st} cumulative: left out to fit the lab's budget (it touches all it holds: about {:.0} s per 100 GiB of migration); a larger --budget includes it",
                    100.0 / crate::experiments::cost::MIGRATE_GIB_PER_S
                ))?;
                progress.inc();
                continue;
            }
            let row = probe_one(gpu, st, kind, opts, &progress)?;
            let stopped = row.stop_reason == StopReason::Interrupted;
            progress.println(format!(
                "device {dev} {st} {}: {} ({})",
                kind.key(),
                fmt_bytes(row.max_bytes),
                row.stop_detail
            ));
            sink.push(row)?;
            progress.inc();
            if stopped {
                progress.finish();
                return Err(Error::Interrupted);
            }
        }
    }
    progress.finish();
    Ok(())
}

/// Probes one strategy on one device. Interruption ends the search with the figure found so far
/// (stop reason `interrupted`); every allocation made is freed before this returns.
pub fn probe_one(
    gpu: &Gpu,
    st: Strategy,
    kind: ProbeKind,
    opts: &ProbeOptions,
    progress: &Progress,
) -> Result<ProbeRow> {
    let dev = gpu.device.ordinal();
    let unified = gpu.arch.is_unified();
    let touch = opts.touches(st);
    let cap = opts.max.cap_with(st, unified, opts.host_cap_bytes);
    let before = gpu.accounting()?;
    let start_budget = budget_of(&before, unified, opts.headroom);
    // `Gpu::accounting` always reads the device's total.
    let device_total = before.device_total.unwrap_or_default();
    let force = opts.force.then_some(PhysicalBounds {
        device_total,
        mem_total: before.mem_total,
    });
    let start_limit = ceiling_limit(&start_budget, st, force);
    let current_limit = || -> Result<Limit> {
        let a = gpu.accounting()?;
        Ok(ceiling_limit(
            &budget_of(&a, unified, opts.headroom),
            st,
            force,
        ))
    };
    let label = format!("device {dev}: {st} {}", kind.key());
    let t = Instant::now();
    let (search, step) = match kind {
        ProbeKind::Single => {
            let s = bisect(
                opts.resolution_bytes,
                || Ok(with_cap(current_limit()?, cap)),
                |bytes| {
                    progress.message(format!("{label}: trying {}", fmt_bytes(bytes)));
                    pressure_guard(unified, &label, bytes)?;
                    try_once(gpu, st, bytes, touch, opts)
                },
            )?;
            (s, opts.resolution_bytes)
        }
        ProbeKind::Cumulative => {
            let mut held: Vec<Box<dyn Allocation>> = Vec::new();
            let s = accumulate(
                opts.chunk_bytes,
                |h| Ok(chunk_limit(current_limit()?, start_limit, cap, h)),
                |bytes| {
                    progress.message(format!(
                        "{label}: holding {}, adding {}",
                        fmt_bytes(bytes * held.len() as u64),
                        fmt_bytes(bytes)
                    ));
                    pressure_guard(unified, &label, bytes)?;
                    add_chunk(gpu, st, bytes, touch, opts, &mut held)
                },
            )?;
            progress.message(format!("{label}: freeing {} chunks", held.len()));
            // Free in reverse order; a failed free is an error, and what is left is freed by drop.
            while let Some(a) = held.pop() {
                a.free()?;
            }
            if st == Strategy::Pool {
                trim_default_pool(&gpu.ctx)?;
            }
            (s, opts.chunk_bytes)
        }
    };
    let elapsed_ms = t.elapsed().as_secs_f64() * 1e3;
    let stop_detail = stop_detail(&search, &start_budget, st, kind, step, force.is_some());
    Ok(ProbeRow {
        device: dev,
        strategy: st,
        kind,
        max_bytes: search.max_bytes,
        stop_reason: search.stop,
        stop_detail,
        attempts: search.attempts,
        failures: search.failures,
        touched: touch,
        step_bytes: step,
        ceiling_bytes: start_budget.ceiling(st),
        limit_bytes: search.limit.bytes,
        cap_bytes: cap,
        first_failure_bytes: search.first_failure_bytes,
        failure: search.failure.clone(),
        device_free_bytes: before.device_free_or_zero(),
        device_total_bytes: device_total,
        mem_free_bytes: before.mem_free,
        mem_available_bytes: before.mem_available,
        cached_bytes: before.cached,
        swap_free_bytes: before.swap_free,
        psi_full_avg10: before.psi_full_avg10,
        free_2m_bytes: before.free_2m,
        cgroup_current_bytes: before.cgroup_current,
        elapsed_ms,
        tried: search.tried_text(),
    })
}

/// On unified memory, the pressure guard before each allocation (see
/// `memory::safety::PressureLimits`): a host near a wedge stops the probe, exit 1, with the figure.
fn pressure_guard(unified: bool, label: &str, bytes: u64) -> Result<()> {
    if !unified {
        return Ok(());
    }
    crate::memory::safety::pressure_check_now(bytes).map_err(|why| {
        Error::Failed(format!(
            "{label}: stopped before allocating {}: {why}",
            fmt_bytes(bytes)
        ))
    })
}

/// Out-of-memory from the memory layer or a kernel is a result; anything else is an error.
fn classify<T>(r: crate::driver::Result<T>) -> Result<std::result::Result<T, String>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.is_out_of_memory() => Ok(Err(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Allocates `bytes`, touches it when asked, frees it.
fn try_once(
    gpu: &Gpu,
    st: Strategy,
    bytes: u64,
    touch: bool,
    opts: &ProbeOptions,
) -> Result<Attempt> {
    let a = match classify(allocate(&gpu.ctx, &gpu.stream, st, bytes, &opts.alloc))? {
        Ok(a) => a,
        Err(msg) => return Ok(Attempt::OutOfMemory(msg)),
    };
    let out = if touch {
        match classify(
            gpu.kernels
                .touch(&gpu.stream, a.span(), opts.page_stride, 0x5052_4f42),
        )? {
            Ok(_) => Attempt::Fit,
            Err(msg) => Attempt::OutOfMemory(msg),
        }
    } else {
        Attempt::Fit
    };
    a.free()?;
    if st == Strategy::Pool {
        trim_default_pool(&gpu.ctx)?;
    }
    Ok(out)
}

/// Allocates one chunk (touched when asked) and keeps it in `held`.
fn add_chunk(
    gpu: &Gpu,
    st: Strategy,
    bytes: u64,
    touch: bool,
    opts: &ProbeOptions,
    held: &mut Vec<Box<dyn Allocation>>,
) -> Result<Attempt> {
    let a = match classify(allocate(&gpu.ctx, &gpu.stream, st, bytes, &opts.alloc))? {
        Ok(a) => a,
        Err(msg) => return Ok(Attempt::OutOfMemory(msg)),
    };
    if touch
        && let Err(msg) =
            classify(
                gpu.kernels
                    .touch(&gpu.stream, a.span(), opts.page_stride, 0x5052_4f42),
            )?
    {
        a.free()?;
        return Ok(Attempt::OutOfMemory(msg));
    }
    held.push(a);
    Ok(Attempt::Fit)
}
