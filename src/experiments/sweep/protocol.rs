//! The measurement protocol of DESIGN.md on one fresh allocation, phase by phase: alloc (with
//! accounting around the first allocation), prefetch, GPU first and second touch, fill and read
//! bandwidth, verification, the `device` baselines, free, then the CPU-first variant on a second
//! fresh allocation. Every sample goes into the combination's [`Acc`]. May import `driver`
//! (pointers), `memory`, `host` and the runner's [`Ctx`].

use std::time::Instant;

use super::SweepRow;
use super::acc::Acc;
use super::phase::{self, Phase};
use super::runner::{Ctx, check};
use crate::driver::DeviceSpan;
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::{check_interrupt, interrupted};
use crate::memory::cpu::{cpu_sample_check, cpu_touch};
use crate::memory::{Allocation, Step, Strategy, allocate, prefetch_to_device};
use crate::report::{Progress, ResultSink};
use crate::units::fmt_bytes;

/// One (strategy, size) and where its samples and skips go.
pub(super) struct Job<'a, 'b> {
    pub c: &'a Ctx<'b>,
    pub st: Strategy,
    pub size: u64,
    pub sink: &'a mut ResultSink<SweepRow, Environment>,
    pub progress: &'a Progress,
}

/// One fresh allocation through the protocol; Ok(false) when the safety check refused it.
pub(super) fn one_allocation(job: &mut Job, index: u32, acc: &mut Acc) -> Result<bool> {
    let (c, st, size) = (job.c, job.st, job.size);
    let first = index == 0;
    // Only the first refusal is recorded: later ones would repeat it.
    if !check(c, st, size, first, job.sink, job.progress)? {
        return Ok(false);
    }
    c.lap("setup and safety checks");
    let mut a = alloc_and_touch(c, st, size, first, acc)?;
    let writable = a.writable();
    bandwidth_and_verify(c, st, size, first, acc, a.as_mut())?;

    // 8. free.
    let t = Instant::now();
    let free_steps = a.free()?;
    acc.one(Phase::Free, t.elapsed().as_secs_f64() * 1e3);
    c.freed(st, size);
    if first {
        acc.after_free = Some(c.gpu.accounting()?);
    }
    record_steps(acc, Phase::FreeStep, &free_steps);
    c.lap(phase::FREE);
    check_interrupt()?;

    if st.info().host_accessible && writable {
        cpu_first(job, first, acc)?;
    }
    Ok(true)
}

/// 1-4: the allocation (accounting around the first), prefetch, GPU first and second touch.
fn alloc_and_touch(
    c: &Ctx,
    st: Strategy,
    size: u64,
    first: bool,
    acc: &mut Acc,
) -> Result<Box<dyn Allocation>> {
    let gpu = c.gpu;
    let (k, s) = (&gpu.kernels, &gpu.stream);
    // Accounting around the first allocation only (the rows carry its deltas).
    if first {
        acc.before = Some(gpu.accounting()?);
    }
    let t = Instant::now();
    let a = allocate(&gpu.ctx, &gpu.stream, st, size, &c.opts.alloc)?;
    acc.one(Phase::Alloc, t.elapsed().as_secs_f64() * 1e3);
    if first {
        acc.after_alloc = Some(gpu.accounting()?);
        if a.mapped_bytes() != size {
            acc.alloc_note = Some(format!(
                "rounded to {} bytes (granularity)",
                a.mapped_bytes()
            ));
        }
    }
    record_steps(acc, Phase::AllocStep, a.alloc_steps());
    let span = a.span();
    let writable = a.writable();
    c.lap(phase::ALLOC);
    check_interrupt()?;

    // 2. prefetch (managed+prefetch).
    if st == Strategy::ManagedPrefetch {
        acc.one(Phase::Prefetch, prefetch_to_device(s, span)?);
        c.lap(phase::PREFETCH);
    }

    // 3-4. GPU first and second touch (a read-only touch for read-only file mappings).
    let stride = c.opts.page_stride;
    let touch = |value: u32| -> Result<f64> {
        if writable {
            Ok(k.touch(s, span, stride, value)?)
        } else {
            Ok(k.touch_read(s, span, stride)?.0)
        }
    };
    acc.one(Phase::GpuFirstTouch, touch(0x1111_1111)?);
    if first {
        acc.after_touch = Some(gpu.accounting()?);
    }
    acc.one(Phase::GpuSecondTouch, touch(0x2222_2222)?);
    c.lap("gpu touches");
    check_interrupt()?;
    Ok(a)
}

/// 5-7: fill and read bandwidth (never reading zero-filled data), once the DRAM traffic after the
/// last device free has passed; verification; the baselines on `device` memory.
fn bandwidth_and_verify(
    c: &Ctx,
    st: Strategy,
    size: u64,
    first: bool,
    acc: &mut Acc,
    a: &mut dyn Allocation,
) -> Result<()> {
    let (k, s) = (&c.gpu.kernels, &c.gpu.stream);
    let span = a.span();
    let writable = a.writable();
    c.settle();
    let seed: u32 = rand::random();
    if writable {
        acc.group(
            Phase::Fill,
            repeat(c.opts.runs, || Ok(k.fill(s, span, seed)?))?,
        );
        check_interrupt()?;
    }
    acc.group(Phase::Read, repeat(c.opts.runs, || Ok(k.read(s, span)?.0))?);
    c.lap("fill and read bandwidth");
    check_interrupt()?;

    // 7. verify: the check kernel over everything on every allocation, and the CPU on a sample
    // where it can reach (first allocation only: on managed memory each sampled word migrates).
    if writable {
        let (_, res) = k.check(s, span, seed)?;
        let mut note = format!("check kernel over all {size} bytes of each allocation");
        let mut bad = res.mismatches;
        if first && let Some(mem) = a.host_slice() {
            let (n, b) = cpu_sample_check(mem, seed, 65_536);
            note.push_str(&format!("; CPU read {n} sampled words of the first"));
            bad += b;
        }
        *acc.mismatches.get_or_insert(0) += bad;
        acc.verify_note = Some(note);
        if bad != 0 {
            return Err(Error::Failed(format!(
                "{st} at {}: {bad} elements did not hold the values written (first bad byte {:?}): the memory or the kernels are wrong",
                fmt_bytes(size),
                res.first_bad_offset
            )));
        }
    }
    c.lap(phase::VERIFY);
    if st == Strategy::Device {
        baselines(c, a.span(), acc)?;
        c.lap("baselines");
    }
    Ok(())
}

/// Step 9, the CPU-first variant (host-accessible, writable memory): a fresh allocation touched
/// by the CPU, then by the GPU.
fn cpu_first(job: &mut Job, first: bool, acc: &mut Acc) -> Result<()> {
    let (c, st, size) = (job.c, job.st, job.size);
    let (gpu, dev, stride) = (c.gpu, c.dev, c.opts.page_stride);
    let cpu_capped = c.opts.caps.cpu_first_max.is_some_and(|m| size > m);
    if cpu_capped && first {
        job.sink.skip(format!(
            "device {dev} {st}@{}: CPU-first variant capped: CPU faulting and migration back are linear in size, so they are measured up to {} (per-GiB rates in the smaller sizes)",
            fmt_bytes(size),
            fmt_bytes(c.opts.caps.cpu_first_max.unwrap_or(0))
        ))?;
    }
    if cpu_capped || interrupted() || !check(c, st, size, first, job.sink, job.progress)? {
        return Ok(());
    }
    let mut b = allocate(&gpu.ctx, &gpu.stream, st, size, &c.opts.alloc)?;
    let threads = c.opts.cpu_threads_for(size);
    if let Some(mem) = b.host_slice() {
        let t = cpu_touch(mem, stride, 0x3333_3333, threads);
        acc.one(Phase::CpuFirstTouch, t.ms);
        acc.cpu_pages = t.pages;
        acc.cpu_threads = Some(t.threads);
        acc.cpu_pages_per_s_per_thread
            .push(t.pages_per_s_per_thread());
        let g = gpu
            .kernels
            .touch(&gpu.stream, b.span(), stride, 0x4444_4444)?;
        acc.one(Phase::GpuTouchAfterCpu, g);
    }
    b.free()?;
    c.lap("CPU-first variant (alloc, CPU touch, GPU touch, free)");
    Ok(())
}

/// The timed calls of an allocation or a free as `alloc:<call>` / `free:<call>` samples (only
/// when there are several: one call is the phase itself).
fn record_steps(acc: &mut Acc, as_phase: fn(String) -> Phase, steps: &[Step]) {
    if steps.len() >= 2 {
        for s in steps {
            acc.one(as_phase(s.name.to_string()), s.ms);
        }
    }
}

/// Repeats `f` `runs` times after one discarded warm-up; returns the times.
fn repeat(runs: u32, mut f: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    f()?;
    let mut v = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        v.push(f()?);
    }
    Ok(v)
}

/// `cuMemsetD32` over the buffer, and a device-to-device copy of its first half onto its second.
fn baselines(c: &Ctx, span: DeviceSpan<'_>, acc: &mut Acc) -> Result<()> {
    let (k, s) = (&c.gpu.kernels, &c.gpu.stream);
    acc.group(
        Phase::MemsetBaseline,
        repeat(c.opts.runs, || Ok(k.memset_d32(s, span, 0x5a5a_5a5a)?))?,
    );
    let half = span.bytes() / 2 / 16 * 16;
    if half > 0 {
        acc.group(
            Phase::CopyBaseline,
            repeat(c.opts.runs, || {
                let (lo, hi) = span.split_at(half)?;
                Ok(k.copy(s, hi, lo)?)
            })?,
        );
    }
    Ok(())
}
