//! Running a layout on a GPU: the preflight against the safety ceiling, then alloc, totals,
//! fragmentation (pattern free and largest-allocation search) and cleanup, each writing typed
//! [`LayoutRow`]s into a sink. Every tensor is an RAII allocation, freed on every path.
//! Imports the memory layer, the safety budget and the host's accounting snapshot.

use std::time::Instant;

use serde::Serialize;

use super::row::{AllocRow, FreedRow, LayoutRow, Moment, ProbeRow, RowData, SnapshotRow};
use super::summary::{Fragmentation, LayoutReport, Totals, summarize};
use super::{FreePattern, LayoutOptions, findings, largest_fitting};
use crate::error::{Error, Result};
use crate::experiments::{Gpu, check_interrupt};
use crate::host::{Accounting, MemInfo};
use crate::memory::safety::{Budget, Forced};
use crate::memory::{Allocation, Backing, Strategy, allocate, prefetch_to_device};
use crate::report::{Progress, ResultSink};
use crate::units::{GB, fmt_bytes};

/// The accounting now, with this device's `cuMemGetInfo` free.
/// A snapshot row at `moment`.
pub(super) fn snapshot_row(
    device: i32,
    strategy: Strategy,
    moment: Moment,
    s: &Accounting,
) -> LayoutRow {
    let snap = SnapshotRow {
        moment,
        device_free_bytes: s.device_free_or_zero(),
        mem_available_bytes: s.mem_available,
        mem_free_bytes: s.mem_free,
    };
    LayoutRow::new(device, strategy, RowData::Snapshot(snap))
}

/// One live tensor.
struct Held {
    index: usize,
    alloc: Box<dyn Allocation>,
}

fn budget(gpu: &Gpu, headroom: u64) -> Result<Budget> {
    let m = MemInfo::read().map_err(Error::Failed)?;
    Ok(Budget {
        unified: gpu.arch.is_unified(),
        device_free: gpu.free_bytes()?,
        mem_available: m.mem_available,
        headroom,
    })
}

/// The bytes the layout will take with `strategy`: `vmm` rounds each tensor up to the
/// granularity, the others are counted as requested.
fn footprint(gpu: &Gpu, opts: &LayoutOptions) -> Result<u64> {
    let g = if opts.strategy == Strategy::Vmm {
        crate::memory::vmm::granularity(&gpu.ctx)?
    } else {
        1
    };
    Ok(opts
        .layout
        .tensors
        .iter()
        .fold(0u64, |a, t| a.saturating_add(t.bytes.div_ceil(g) * g)))
}

/// Checks the whole layout against the safety ceiling before anything is allocated: Err(Usage)
/// with one sentence when it does not fit, Ok(Some(warning)) when `--force` overrides.
pub fn preflight(gpu: &Gpu, opts: &LayoutOptions) -> Result<Option<String>> {
    let total = footprint(gpu, opts)?;
    let b = budget(gpu, opts.headroom)?;
    match b.check_forced(opts.strategy, total, opts.force) {
        Ok(Forced::Allowed) => Ok(None),
        Ok(Forced::Warn(why)) => Ok(Some(format!(
            "WARNING: --force: {} ({} tensors): {why}; allocating anyway",
            opts.layout.source,
            opts.layout.tensors.len()
        ))),
        Err(why) => Err(Error::usage(format!(
            "{} ({} tensors, {:.2} GB): {why}; nothing was allocated: choose a smaller layout or precision, or pass --force",
            opts.layout.source,
            opts.layout.tensors.len(),
            total as f64 / GB as f64
        ))),
    }
}

/// Runs the layout on `gpu`, streaming rows into `sink`. Whatever happens (an error, Ctrl-C),
/// every tensor is freed before it returns; on Ctrl-C it returns `Err(Interrupted)` after
/// writing the rows so far. An unsupported strategy is recorded as skipped.
pub fn run<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let st = opts.strategy;
    if let Err(reason) = st.supported(&gpu.attrs) {
        return sink.skip(format!(
            "device {dev} {st}: {}: not supported: {reason}",
            opts.layout.source
        ));
    }
    if let Some(w) = preflight(gpu, opts)? {
        crate::report::diag::warn(&w);
        sink.doc.notes.push(w);
    }
    let mut held: Vec<Held> = Vec::new();
    let r = phases(gpu, opts, sink, &mut held);
    let c = cleanup(gpu, opts, sink, &mut held);
    let _ = crate::memory::trim_default_pool(&gpu.ctx);
    let s = gpu
        .accounting()
        .and_then(|s| sink.push(snapshot_row(dev, st, Moment::AfterCleanup, &s)));
    r.and(c).and(s)
}

/// Runs the layout and returns the rows in memory. Ctrl-C is not an error here: the report
/// comes back with `interrupted` set (everything freed).
pub fn measure(gpu: &Gpu, opts: &LayoutOptions) -> Result<LayoutReport> {
    let mut sink: ResultSink<LayoutRow, ()> = ResultSink::new("layout", (), None)?;
    sink.doc.notes.extend(opts.layout.notes.iter().cloned());
    let r = run(gpu, opts, &mut sink);
    let was_interrupted = matches!(r, Err(Error::Interrupted));
    if !was_interrupted {
        r?;
    }
    let summary = summarize(&sink.doc.rows);
    let mut notes = sink.doc.notes;
    notes.extend(findings(&sink.doc.rows));
    Ok(LayoutReport {
        summary,
        rows: sink.doc.rows,
        skipped: sink.doc.skipped,
        notes,
        interrupted: was_interrupted,
    })
}

/// Populates one allocation the way the options ask: prefetch (`managed+prefetch`), touch.
fn populate(
    gpu: &Gpu,
    opts: &LayoutOptions,
    a: &dyn Allocation,
) -> Result<(Option<f64>, Option<f64>)> {
    let prefetch = if opts.strategy == Strategy::ManagedPrefetch {
        Some(prefetch_to_device(&gpu.stream, a.span())?)
    } else {
        None
    };
    let touch = if opts.touch && a.writable() {
        let stride = crate::host::facts::page_size();
        Some(
            gpu.kernels
                .touch(&gpu.stream, a.span(), stride, 0x5a5a_5a5a)?,
        )
    } else {
        None
    };
    Ok((prefetch, touch))
}

fn phases<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
    held: &mut Vec<Held>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let st = opts.strategy;
    let baseline = gpu.accounting()?;
    sink.push(snapshot_row(dev, st, Moment::Baseline, &baseline))?;

    // 1. alloc, in layout order.
    alloc_all(gpu, opts, sink, held)?;

    // 2. totals.
    let after = gpu.accounting()?;
    sink.push(snapshot_row(dev, st, Moment::AfterAlloc, &after))?;
    let requested: Vec<u64> = held.iter().map(|h| h.alloc.bytes()).collect();
    let mapped: Vec<u64> = held.iter().map(|h| h.alloc.mapped_bytes()).collect();
    let totals = Totals::compute(&requested, &mapped, &baseline, &after);
    sink.push(LayoutRow::new(dev, st, RowData::Total(totals)))?;

    // 3. fragmentation: free the pattern, then the largest single allocation that succeeds.
    if opts.free_pattern == FreePattern::None || held.is_empty() {
        return Ok(());
    }
    fragment(gpu, opts, sink, held, &requested)
}

/// Allocates the tensors in layout order, each checked against the safety ceiling first; stops
/// (recording why as skipped) at the first refusal or out-of-memory.
fn alloc_all<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
    held: &mut Vec<Held>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let st = opts.strategy;
    let tensors = &opts.layout.tensors;
    let n = tensors.len();
    let progress = Progress::new(n as u64, opts.quiet);
    for (i, t) in tensors.iter().enumerate() {
        check_interrupt()?;
        progress.message(format!("{st}: {} ({})", t.name, fmt_bytes(t.bytes)));
        let rest = n - i - 1;
        let unallocated = if rest > 0 {
            format!("it and the {rest} after it were not allocated")
        } else {
            "it was not allocated".to_string()
        };
        match budget(gpu, opts.headroom)?.check_forced(st, t.bytes, opts.force) {
            Ok(Forced::Allowed) => {}
            Ok(Forced::Warn(why)) => {
                progress.warn(format!(
                    "WARNING: --force: tensor {i} `{}`: {why}; allocating anyway",
                    t.name
                ));
            }
            Err(why) => {
                sink.skip(format!(
                    "tensor {i} `{}` ({}): refused: {why}; {unallocated}{}",
                    t.name,
                    fmt_bytes(t.bytes),
                    if opts.force {
                        ""
                    } else {
                        " (use --force to override)"
                    }
                ))?;
                break;
            }
        }
        let clock = Instant::now();
        let a = match allocate(&gpu.ctx, &gpu.stream, st, t.bytes, &opts.alloc) {
            Ok(a) => a,
            Err(e) if e.is_out_of_memory() => {
                sink.skip(format!(
                    "tensor {i} `{}` ({}): out of memory after {} tensors: {e}; {unallocated}",
                    t.name,
                    fmt_bytes(t.bytes),
                    held.len()
                ))?;
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let alloc_ms = clock.elapsed().as_secs_f64() * 1e3;
        let steps = a.alloc_steps().to_vec();
        let mapped = a.mapped_bytes();
        held.push(Held { index: i, alloc: a });
        let (prefetch_ms, touch_ms) = match held.last() {
            Some(h) => populate(gpu, opts, h.alloc.as_ref())?,
            None => (None, None),
        };
        let note = (steps.len() > 1).then(|| {
            steps
                .iter()
                .map(|s| format!("{} {:.3} ms", s.name, s.ms))
                .collect::<Vec<_>>()
                .join("; ")
        });
        let row = AllocRow {
            index: i as u64,
            name: t.name.clone(),
            component: t.component.clone(),
            dtype: t.dtype.map(|d| d.name().to_string()),
            elements: t.elements,
            bytes: t.bytes,
            mapped_bytes: mapped,
            alloc_ms,
            prefetch_ms,
            touch_ms,
            note,
        };
        sink.push(LayoutRow::new(dev, st, RowData::Alloc(row)))?;
        progress.inc();
    }
    progress.finish();
    Ok(())
}

/// Frees the pattern's tensors (timed), then searches for the largest single allocation and
/// writes the fragmentation row.
fn fragment<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
    held: &mut Vec<Held>,
    requested: &[u64],
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let st = opts.strategy;
    let tensors = &opts.layout.tensors;
    check_interrupt()?;
    let pick = opts.free_pattern.select(requested);
    let mut kept = Vec::with_capacity(held.len());
    let mut freeing = Vec::with_capacity(pick.len());
    for (k, h) in held.drain(..).enumerate() {
        if pick.binary_search(&k).is_ok() {
            freeing.push(h);
        } else {
            kept.push(h);
        }
    }
    *held = kept;
    let (mut freed_bytes, mut largest_freed, freed_tensors) = (0u64, 0u64, freeing.len() as u64);
    // Free in layout order. On an early return, what is left of `freeing` is dropped, which
    // frees it (RAII), and `held` goes to the cleanup.
    for h in freeing {
        let t = &tensors[h.index];
        let bytes = h.alloc.bytes();
        let clock = Instant::now();
        h.alloc.free()?;
        let free_ms = clock.elapsed().as_secs_f64() * 1e3;
        freed_bytes += bytes;
        largest_freed = largest_freed.max(bytes);
        let row = FreedRow {
            index: h.index as u64,
            name: Some(t.name.clone()),
            component: Some(t.component.clone()),
            bytes,
            free_ms,
        };
        sink.push(LayoutRow::new(dev, st, RowData::Free(row)))?;
    }
    let mid = gpu.accounting()?;
    sink.push(snapshot_row(dev, st, Moment::AfterPatternFree, &mid))?;
    check_interrupt()?;
    // Host memory is bounded by MemAvailable (less the headroom), everything else by the free
    // memory the driver reports (less, on unified memory, what the headroom leaves).
    let ceiling = budget(gpu, opts.headroom)?.ceiling(st);
    let host = st.info().backing == Backing::Host;
    let (free_total, free_total_of) = if host {
        (mid.mem_available, "MemAvailable")
    } else {
        (mid.device_free_or_zero(), "cuMemGetInfo free")
    };
    let bound = free_total.min(ceiling);
    if !opts.quiet {
        crate::report::diag::note(&format!(
            "searching for the largest single {st} allocation up to {} (resolution {})",
            fmt_bytes(bound),
            fmt_bytes(opts.resolution)
        ));
    }
    let search = largest_fitting(bound, opts.resolution, |bytes| {
        probe(gpu, opts, sink, bytes)
    })?;
    sink.push(LayoutRow::new(
        dev,
        st,
        RowData::Fragmentation(Fragmentation {
            pattern: opts.free_pattern.name(),
            freed_tensors,
            freed_bytes,
            largest_freed_bytes: largest_freed,
            device_free_bytes: mid.device_free_or_zero(),
            mem_available_bytes: mid.mem_available,
            free_total_bytes: free_total,
            free_total_of: free_total_of.to_string(),
            bound_bytes: bound,
            resolution_bytes: opts.resolution,
            largest_bytes: search.largest_bytes,
            attempts: search.attempts,
            reached_bound: search.reached_bound,
        }),
    ))?;
    Ok(())
}

/// One attempt of the search: allocate `bytes` (and populate it as the options ask), free it.
fn probe<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
    bytes: u64,
) -> Result<bool> {
    check_interrupt()?;
    let dev = gpu.device.ordinal();
    let clock = Instant::now();
    let mut row = ProbeRow {
        bytes,
        ..ProbeRow::default()
    };
    let ok = match allocate(&gpu.ctx, &gpu.stream, opts.strategy, bytes, &opts.alloc) {
        Ok(a) => {
            row.alloc_ms = Some(clock.elapsed().as_secs_f64() * 1e3);
            match populate(gpu, opts, a.as_ref()) {
                Ok((p, t)) => {
                    row.prefetch_ms = p;
                    row.touch_ms = t;
                }
                Err(Error::Driver(e)) if e.is_out_of_memory() => {
                    row.note = Some(format!("allocated, but populating it failed: {e}"));
                }
                Err(e) => return Err(e),
            }
            a.free()?;
            row.note.is_none()
        }
        Err(e) if e.is_out_of_memory() => {
            row.note = Some(e.to_string());
            false
        }
        Err(e) => return Err(e.into()),
    };
    row.ok = ok;
    sink.push(LayoutRow::new(dev, opts.strategy, RowData::Probe(row)))?;
    Ok(ok)
}

/// Frees everything still held, in layout order, timing each; keeps going past a failure and
/// returns the first.
fn cleanup<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
    held: &mut Vec<Held>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let mut first: Option<Error> = None;
    for h in held.drain(..) {
        let bytes = h.alloc.bytes();
        let clock = Instant::now();
        match h.alloc.free() {
            Ok(_) => {
                let freed = FreedRow {
                    index: h.index as u64,
                    name: opts.layout.tensors.get(h.index).map(|t| t.name.clone()),
                    component: None,
                    bytes,
                    free_ms: clock.elapsed().as_secs_f64() * 1e3,
                };
                let row = LayoutRow::new(dev, opts.strategy, RowData::Cleanup(freed));
                if let Err(e) = sink.push(row) {
                    first.get_or_insert(e);
                }
            }
            Err(e) => {
                first.get_or_insert(e.into());
            }
        }
    }
    first.map_or(Ok(()), Err)
}
