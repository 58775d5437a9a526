//! The sweep's runner: devices, then (size, strategy) combinations, each checked against the
//! capabilities, the caps and the safety ceiling, then measured on `--repeat` fresh allocations
//! (the protocol of one allocation is in `protocol`); what one device's run needs ([`Ctx`]),
//! including the wait after a large device free. May import `driver`, `memory`, `host`,
//! `report` (the sink and progress) and the experiments' `Gpu`.

use std::time::Instant;

use super::acc::Acc;
use super::protocol::{Job, one_allocation};
use super::{SweepOptions, SweepRow, default_sizes};
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::{Gpu, check_interrupt, require_driver};
use crate::host::MemInfo;
use crate::memory::safety::{Budget, Forced};
use crate::memory::{Backing, Strategy, trim_default_pool};
use crate::report::{Progress, ResultSink};
use crate::units::{GIB, fmt_bytes};

/// What one device's sweep needs, and the wall time spent per phase.
pub(super) struct Ctx<'a> {
    pub gpu: &'a Gpu,
    pub opts: &'a SweepOptions,
    pub dev: i32,
    clock: std::cell::RefCell<(Instant, std::collections::BTreeMap<&'static str, f64>)>,
    /// The last free of device-resident memory (when, bytes) and the waits it caused (count, ms).
    last_free: std::cell::Cell<Option<(Instant, u64)>>,
    settled: std::cell::Cell<(u32, f64)>,
}

/// After a large free of device memory the DRAM is busy in the background for a while, and
/// whatever is timed then runs about 8.5% slow: measured on an H200 (driver 580.159.04), about
/// 2.5 ms per GiB freed at any size from 4.3 to 69.5 GiB, after cuMemFree, VMM release and a
/// pool trim alike, never after freeing managed memory (docs/results/h200-2026-11-30-fill). That
/// was the 34.8 GiB device/vmm fill deficit of the earlier labs: the strategy timed right after
/// a free lost, whatever it was. So bandwidth waits out this window: 3 ms per GiB freed, at least
/// 50 ms, counted from the free.
const SETTLE_MS_PER_GIB: f64 = 3.0;
const SETTLE_MIN_MS: f64 = 50.0;

/// How long to wait after freeing `bytes` of device memory before timing bandwidth.
pub fn settle_window_ms(bytes: u64) -> f64 {
    (SETTLE_MS_PER_GIB * bytes as f64 / GIB as f64).max(SETTLE_MIN_MS)
}

impl Ctx<'_> {
    /// Records a free of device-resident memory (`device`, `pool`, `vmm`: backed by the device).
    pub fn freed(&self, st: Strategy, bytes: u64) {
        if st.info().backing == Backing::Device {
            self.last_free.set(Some((Instant::now(), bytes)));
        }
    }

    /// Waits until the background traffic of the last device free is over (see
    /// [`SETTLE_MS_PER_GIB`]).
    pub fn settle(&self) {
        if let Some((at, bytes)) = self.last_free.get() {
            let left = settle_window_ms(bytes) - at.elapsed().as_secs_f64() * 1e3;
            if left > 0.0 {
                std::thread::sleep(std::time::Duration::from_secs_f64(left / 1e3));
                let (n, ms) = self.settled.get();
                self.settled.set((n + 1, ms + left));
            }
            self.last_free.set(None);
        }
    }

    /// Charges the wall time since the last lap to `phase`.
    pub fn lap(&self, phase: &'static str) {
        let mut c = self.clock.borrow_mut();
        let dt = c.0.elapsed().as_secs_f64();
        *c.1.entry(phase).or_insert(0.0) += dt;
        c.0 = Instant::now();
    }
}

/// Runs the sweep on each device in `ordinals`, streaming into `sink`.
pub fn run(
    ordinals: &[i32],
    opts: &SweepOptions,
    sink: &mut ResultSink<SweepRow, Environment>,
) -> Result<()> {
    let drv = require_driver()?;
    for &o in ordinals {
        let gpu = Gpu::open(&drv, o)?;
        let r = run_device(&gpu, opts, sink);
        // Return pooled memory whatever happened.
        let _ = trim_default_pool(&gpu.ctx);
        r?;
    }
    Ok(())
}

fn usable_bytes(gpu: &Gpu) -> Result<u64> {
    let m = MemInfo::read().map_err(Error::Failed)?;
    Ok(crate::memory::arch::UsableEstimate::new(gpu.arch, gpu.free_bytes()?, &m).estimate_bytes)
}

fn run_device(
    gpu: &Gpu,
    opts: &SweepOptions,
    sink: &mut ResultSink<SweepRow, Environment>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let strategies = opts.strategies.clone().unwrap_or_else(Strategy::all);
    let sizes = match &opts.sizes {
        Some(s) => s.clone(),
        None => default_sizes(usable_bytes(gpu)?),
    };
    let c = Ctx {
        gpu,
        opts,
        dev,
        clock: std::cell::RefCell::new((Instant::now(), Default::default())),
        last_free: std::cell::Cell::new(None),
        settled: std::cell::Cell::new((0, 0.0)),
    };
    let progress = Progress::new((strategies.len() * sizes.len()) as u64, opts.quiet);
    for &size in &sizes {
        for &st in &strategies {
            check_interrupt()?;
            progress.message(format!("device {dev}: {st} {}", fmt_bytes(size)));
            if let Err(reason) = st.supported(&gpu.attrs) {
                sink.skip(format!(
                    "device {dev} {st}@{}: not supported: {reason}",
                    fmt_bytes(size)
                ))?;
                progress.inc();
                continue;
            }
            match combination(&c, st, size, sink, &progress) {
                Ok(()) => {}
                Err(Error::Driver(e)) if e.is_out_of_memory() => {
                    sink.skip(format!(
                        "device {dev} {st}@{}: out of memory: {e}",
                        fmt_bytes(size)
                    ))?;
                }
                // cuMemHostRegister on GB10 (antirez/ds4 PR #158): skipped with the reason.
                Err(Error::Driver(e)) if e.is_not_supported() => {
                    sink.skip(format!(
                        "device {dev} {st}@{}: not supported by the driver: {e}",
                        fmt_bytes(size)
                    ))?;
                }
                Err(e) => return Err(e),
            }
            progress.inc();
        }
    }
    progress.finish();
    let (waits, waited) = c.settled.get();
    if waits > 0 {
        sink.doc.notes.push(format!(
            "device {dev}: bandwidth was timed after the background DRAM traffic that follows a large device free had passed ({SETTLE_MS_PER_GIB} ms per GiB freed, at least {SETTLE_MIN_MS} ms; measured on an H200: about 8.5% slower runs otherwise): {waits} waits, {:.1} s in all",
            waited / 1e3
        ));
    }
    let clock = c.clock.borrow();
    let total: f64 = clock.1.values().sum();
    let mut parts: Vec<(&&str, &f64)> = clock.1.iter().collect();
    parts.sort_by(|a, b| b.1.total_cmp(a.1));
    sink.doc.notes.push(format!(
        "device {dev}: wall time by phase: {}",
        parts
            .iter()
            .map(|(p, s)| format!("{p} {s:.1} s ({:.0}%)", 100.0 * **s / total.max(1e-9)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// Checks the safety ceiling for one allocation; Ok(false) means skipped (recorded).
fn allowed(
    c: &Ctx,
    st: Strategy,
    size: u64,
    sink: &mut ResultSink<SweepRow, Environment>,
    progress: &Progress,
) -> Result<bool> {
    match budget_now(c)?.check_forced(st, size, c.opts.force) {
        Ok(Forced::Allowed) => Ok(true),
        Ok(Forced::Warn(why)) => {
            progress.warn(format!("WARNING: --force: {why}; allocating anyway"));
            Ok(true)
        }
        Err(why) => {
            let hint = if c.opts.force {
                ""
            } else {
                " (use --force to override)"
            };
            sink.skip(format!(
                "device {} {st}@{}: refused: {why}{hint}",
                c.dev,
                fmt_bytes(size)
            ))?;
            Ok(false)
        }
    }
}

/// Why `st` at `size` is left out by a cap of the options, if it is.
fn capped(opts: &SweepOptions, st: Strategy, size: u64) -> Option<String> {
    let over = |cap: Option<u64>| cap.is_some_and(|c| size > c);
    if st.info().backing == Backing::Host && over(opts.caps.host_max) {
        return Some(format!(
            "capped: pinning or registering host memory costs about {:.2} s per GiB, so it is measured up to {} (its per-GiB rate is in the smaller sizes); a larger --budget lifts the cap",
            crate::experiments::cost::PIN_S_PER_GIB,
            fmt_bytes(opts.caps.host_max.unwrap_or(0))
        ));
    }
    if st.info().backing == Backing::Managed && over(opts.caps.managed_max) {
        return Some(format!(
            "capped: migrating managed memory on first touch is linear in size, so it is measured up to {} (its per-GiB rate is in the smaller sizes); a larger --budget lifts the cap",
            fmt_bytes(opts.caps.managed_max.unwrap_or(0))
        ));
    }
    None
}

fn combination(
    c: &Ctx,
    st: Strategy,
    size: u64,
    sink: &mut ResultSink<SweepRow, Environment>,
    progress: &Progress,
) -> Result<()> {
    if let Some(why) = capped(c.opts, st, size) {
        sink.skip(format!("device {} {st}@{}: {why}", c.dev, fmt_bytes(size)))?;
        return Ok(());
    }
    let mut acc = Acc {
        pages: size.div_ceil(c.opts.page_stride),
        ..Default::default()
    };
    let repeats = c.opts.repeat.max(1);
    let mut result = Ok(true);
    let mut job = Job {
        c,
        st,
        size,
        sink,
        progress,
    };
    for i in 0..repeats {
        result = one_allocation(&mut job, i, &mut acc);
        if !matches!(result, Ok(true)) {
            break;
        }
    }
    // Whatever finished is written, also when a later allocation failed or was interrupted.
    for r in acc.rows(c.dev, st, size) {
        job.sink.push(r)?;
    }
    result.map(|_| ())
}
/// The safety ceiling as it stands now.
fn budget_now(c: &Ctx) -> Result<Budget> {
    let m = MemInfo::read().map_err(Error::Failed)?;
    Ok(Budget {
        unified: c.gpu.arch.is_unified(),
        device_free: c.gpu.free_bytes()?,
        mem_available: m.mem_available,
        headroom: c.opts.headroom,
    })
}

/// The safety check without recording a refusal (repeats after the first).
fn fits(c: &Ctx, st: Strategy, size: u64) -> Result<bool> {
    Ok(budget_now(c)?.check_forced(st, size, c.opts.force).is_ok())
}

/// The safety check, recorded as skipped on the first allocation only.
pub(super) fn check(
    c: &Ctx,
    st: Strategy,
    size: u64,
    first: bool,
    sink: &mut ResultSink<SweepRow, Environment>,
    progress: &Progress,
) -> Result<bool> {
    if first {
        allowed(c, st, size, sink, progress)
    } else {
        fits(c, st, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_window_grows_with_the_bytes_freed_above_a_floor() {
        assert_eq!(settle_window_ms(GIB), 50.0);
        assert_eq!(settle_window_ms(0), 50.0);
        assert!((settle_window_ms(34 * GIB + GIB / 2) - 103.5).abs() < 1e-9);
        assert!((settle_window_ms(70 * GIB) - 210.0).abs() < 1e-9);
    }
}
