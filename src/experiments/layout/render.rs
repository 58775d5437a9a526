//! The human side of `layout`: the tensor table (first and last few when there are many), the
//! groups by component, the totals, the fragmentation result, and the findings written from the
//! measured numbers; plus the `--dry-run` view of a layout.

use super::{AllocRow, Fragmentation, Layout, LayoutDoc, LayoutRow, RowData, Totals, summarize};
use crate::report::new_table;
use crate::stats::Summary;
use crate::units::{GB, GIB, MIB, fmt_bytes};

fn gb(bytes: u64) -> String {
    crate::units::fmt_gb_dp(bytes, 3)
}

fn gib_signed(bytes: i64) -> String {
    crate::units::fmt_gib_signed(bytes, 3)
}

/// Why the overhead is what it is, against the 2 MiB rounding figure.
pub(super) fn overhead_reason(t: &Totals) -> Option<String> {
    let (o, r) = (t.overhead_bytes, t.rounding_2mib_bytes as i64);
    if t.device_free_drop_bytes.unsigned_abs() < t.requested_bytes / 2 {
        // Not device memory (host-backed, or not populated): the overhead says nothing.
        return None;
    }
    let close = (o - r).abs() <= (r / 10).max(2 * MIB as i64);
    Some(if o < 0 {
        format!(
            "cuMemGetInfo free fell by {:.1} MiB less than requested: small tensors were placed in memory the driver had already set aside (it packs small allocations into shared pages), so the free count never saw them.",
            -o as f64 / MIB as f64
        )
    } else if close {
        "the overhead matches rounding every tensor up to the 2 MiB page: nothing beyond the granularity.".to_string()
    } else if o < r {
        "the overhead is below what rounding every tensor up to 2 MiB would give: the allocator packs tensors more tightly than whole 2 MiB pages (small ones can share a page).".to_string()
    } else {
        format!(
            "the overhead exceeds 2 MiB rounding by {:.1} MiB: driver bookkeeping (page tables), or another process allocating during the run.",
            (o - r) as f64 / MIB as f64
        )
    })
}

/// "2 MiB below the baseline" for a residual (baseline minus now) of 2 MiB.
fn versus_baseline(residual: i64) -> String {
    match residual {
        0 => "back at the baseline exactly".to_string(),
        r if r > 0 => format!("{} below the baseline", fmt_bytes(r.unsigned_abs())),
        r => format!("{} above the baseline", fmt_bytes(r.unsigned_abs())),
    }
}

/// Tables show every tensor up to this many; beyond, the first and last few and the groups.
const FULL_LIST_MAX: usize = 30;

/// The tensor table, the groups, the totals, the fragmentation result and the findings.
pub fn render(doc: &LayoutDoc) -> String {
    let rows = &doc.rows;
    let mut out = String::new();
    if let Some(d) = doc.environment.devices.first() {
        out.push_str(&format!("device {}: {}\n", d.ordinal, d.name));
    }
    let found = findings(rows);
    for n in doc.notes.iter().filter(|n| !found.contains(n)) {
        out.push_str(&format!("{n}\n"));
    }
    out.push('\n');
    out.push_str(&tensor_table(rows));
    let sum = summarize(rows);
    if let Some(tot) = &sum.totals {
        out.push_str(&totals_table(tot));
    }
    if let Some(f) = &sum.fragmentation {
        out.push_str(&fragmentation_table(f));
    }
    if let Some(r) = sum.residual_bytes {
        out.push_str(&format!(
            "after cleanup: cuMemGetInfo free is {} ({} tensors freed)\n\n",
            versus_baseline(r),
            sum.freed
        ));
    }
    if !found.is_empty() {
        out.push_str("What this shows:\n");
        for n in &found {
            out.push_str(&format!("- {n}\n"));
        }
        out.push('\n');
    }
    out.push_str(&crate::report::bullet_section("Skipped", &doc.skipped));
    out
}

/// The tensor table (first and last few when there are many) and the groups by component.
fn tensor_table(rows: &[LayoutRow]) -> String {
    let mut out = String::new();
    let allocs: Vec<&AllocRow> = rows
        .iter()
        .filter_map(|r| match &r.data {
            RowData::Alloc(a) => Some(a),
            _ => None,
        })
        .collect();
    if let Some(first) = rows.iter().find(|r| matches!(r.data, RowData::Alloc(_))) {
        let strategy = first.strategy;
        let freed = |i: u64, at_cleanup: bool| {
            rows.iter().find_map(|r| match &r.data {
                RowData::Free(f) if !at_cleanup && f.index == i => Some(f.free_ms),
                RowData::Cleanup(f) if at_cleanup && f.index == i => Some(f.free_ms),
                _ => None,
            })
        };
        let any_mapped = allocs.iter().any(|r| r.mapped_bytes != r.bytes);
        let any_touch = allocs.iter().any(|r| r.touch_ms.is_some());
        let any_prefetch = allocs.iter().any(|r| r.prefetch_ms.is_some());
        let mut header = vec!["#", "tensor", "dtype", "size", "GB (1e9)"];
        if any_mapped {
            header.push("mapped");
        }
        header.push("alloc ms");
        if any_prefetch {
            header.push("prefetch ms");
        }
        if any_touch {
            header.push("touch ms");
        }
        header.extend(["freed by pattern, ms", "freed at cleanup, ms"]);
        let mut t = new_table(&header);
        let shown: Vec<Option<&AllocRow>> = if allocs.len() <= FULL_LIST_MAX {
            allocs.iter().map(|r| Some(*r)).collect()
        } else {
            let mut v: Vec<Option<&AllocRow>> = allocs[..10].iter().map(|r| Some(*r)).collect();
            v.push(None);
            v.extend(allocs[allocs.len() - 5..].iter().map(|r| Some(*r)));
            v
        };
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |m| format!("{m:.3}"));
        for r in shown {
            let Some(r) = r else {
                let mut line = vec![
                    "...".to_string(),
                    format!(
                        "{} more (every tensor is in --json and --out)",
                        allocs.len() - 15
                    ),
                ];
                line.resize(header.len(), String::new());
                t.add_row(line);
                continue;
            };
            let mut line = vec![
                r.index.to_string(),
                r.name.clone(),
                r.dtype.clone().unwrap_or_else(|| "-".into()),
                fmt_bytes(r.bytes),
                gb(r.bytes),
            ];
            if any_mapped {
                line.push(fmt_bytes(r.mapped_bytes));
            }
            line.push(ms(Some(r.alloc_ms)));
            if any_prefetch {
                line.push(ms(r.prefetch_ms));
            }
            if any_touch {
                line.push(ms(r.touch_ms));
            }
            line.push(ms(freed(r.index, false)));
            line.push(ms(freed(r.index, true)));
            t.add_row(line);
        }
        out.push_str(&format!(
            "tensors, strategy {strategy} (allocation time: host clock around the call and a synchronize)\n{t}\n\n"
        ));
        out.push_str(&group_table(&allocs));
    }
    out
}

/// The allocation times grouped by component, when some component repeats (else empty).
fn group_table(allocs: &[&AllocRow]) -> String {
    let mut out = String::new();
    // Groups by component, when some component repeats.
    let mut groups: Vec<(String, Vec<&AllocRow>)> = Vec::new();
    for r in allocs {
        let c = r.component.clone();
        match groups.iter_mut().find(|(k, _)| *k == c) {
            Some((_, v)) => v.push(r),
            None => groups.push((c, vec![r])),
        }
    }
    if groups.len() < allocs.len() {
        let mut t = new_table(&[
            "component",
            "tensors",
            "size each",
            "total GB (1e9)",
            "alloc ms median",
            "alloc ms max",
            "alloc ms sum",
        ]);
        for (c, v) in &groups {
            let times: Vec<f64> = v.iter().map(|r| r.alloc_ms).collect();
            let s = Summary::of(&times);
            let (lo, hi) = v.iter().fold((u64::MAX, 0), |(lo, hi), r| {
                (lo.min(r.bytes), hi.max(r.bytes))
            });
            t.add_row(vec![
                c.clone(),
                v.len().to_string(),
                if lo == hi {
                    fmt_bytes(lo)
                } else {
                    format!("{} - {}", fmt_bytes(lo), fmt_bytes(hi))
                },
                gb(v.iter().map(|r| r.bytes).sum()),
                s.as_ref()
                    .map_or("-".into(), |s| format!("{:.3}", s.median)),
                s.as_ref().map_or("-".into(), |s| format!("{:.3}", s.max)),
                format!("{:.3}", times.iter().sum::<f64>()),
            ]);
        }
        out.push_str(&format!("by component\n{t}\n\n"));
    }
    out
}

/// The totals: requested, mapped, the drops in free memory and the overhead.
fn totals_table(tot: &Totals) -> String {
    let mut t = new_table(&["", "bytes", "GiB", "GB (1e9)"]);
    let line = |label: String, b: i64| {
        vec![
            label,
            b.to_string(),
            format!("{:.3}", b as f64 / GIB as f64),
            format!("{:.3}", b as f64 / GB as f64),
        ]
    };
    t.add_row(line(
        format!("requested ({} tensors)", tot.tensors),
        tot.requested_bytes as i64,
    ));
    if tot.mapped_bytes != tot.requested_bytes {
        t.add_row(line(
            "mapped (after granularity rounding)".into(),
            tot.mapped_bytes as i64,
        ));
    }
    t.add_row(line(
        "drop in cuMemGetInfo free".into(),
        tot.device_free_drop_bytes,
    ));
    t.add_row(line(
        "drop in MemAvailable".into(),
        tot.mem_available_drop_bytes,
    ));
    let mut ov = line(
        format!(
            "overhead: drop in free - requested ({:+.2}% of requested)",
            tot.overhead_pct
        ),
        tot.overhead_bytes,
    );
    ov[2] = gib_signed(tot.overhead_bytes);
    t.add_row(ov);
    t.add_row(line(
        "rounding every tensor up to 2 MiB would add".into(),
        tot.rounding_2mib_bytes as i64,
    ));
    format!("totals (accounting before and after the allocations)\n{t}\n\n")
}

/// The fragmentation result: what the pattern freed and the largest allocation after it.
fn fragmentation_table(f: &Fragmentation) -> String {
    let mut t = new_table(&["", "bytes", "GiB"]);
    let line = |label: String, b: u64| {
        vec![
            label,
            b.to_string(),
            format!("{:.3}", b as f64 / GIB as f64),
        ]
    };
    t.add_row(line(
        format!(
            "freed by `{}` ({} tensor{})",
            f.pattern,
            f.freed_tensors,
            if f.freed_tensors == 1 { "" } else { "s" }
        ),
        f.freed_bytes,
    ));
    t.add_row(line("largest tensor freed".into(), f.largest_freed_bytes));
    t.add_row(line(
        format!("{} after freeing (the free total)", f.free_total_of),
        f.free_total_bytes,
    ));
    t.add_row(line(
        "search bound (the free total, within the safety ceiling)".into(),
        f.bound_bytes,
    ));
    t.add_row(line(
        format!(
            "largest single allocation that succeeded ({:.1}% of free; {} attempt{} at {} resolution{})",
            f.largest_pct_of_free(),
            f.attempts,
            if f.attempts == 1 { "" } else { "s" },
            fmt_bytes(f.resolution_bytes),
            if f.reached_bound { "; the bound itself fit" } else { "" }
        ),
        f.largest_bytes,
    ));
    format!("fragmentation\n{t}\n\n")
}

/// Sentences written from the measured numbers ([`render`] prints them under "What this shows",
/// apart from the notes that describe the layout).
pub fn findings(rows: &[LayoutRow]) -> Vec<String> {
    let mut out = Vec::new();
    let sum = summarize(rows);
    let how = How::of(rows);
    if let Some(t) = &sum.totals
        && t.tensors > 0
    {
        totals_findings(t, &how, &mut out);
    }
    if let Some(f) = &sum.fragmentation {
        fragmentation_findings(f, &how, &mut out);
    }
    if let Some(r) = sum.residual_bytes {
        out.push(format!(
            "after cleanup cuMemGetInfo free is {}.",
            versus_baseline(r)
        ));
    }
    out
}

/// What the findings need to know about how the tensors were allocated.
struct How {
    /// The strategy's key ("" without rows).
    strategy: &'static str,
    /// Host memory (`pinned`, `registered`, `pageable`).
    host_backed: bool,
    /// Populated on first touch (`managed`).
    lazy: bool,
    /// Touched or prefetched after allocation.
    touched: bool,
}

impl How {
    fn of(rows: &[LayoutRow]) -> How {
        let strategy = rows.first().map(|r| r.strategy);
        How {
            strategy: strategy.map_or("", |s| s.key()),
            host_backed: strategy.is_some_and(|s| s.info().backing == crate::memory::Backing::Host),
            lazy: strategy.is_some_and(|s| s.info().lazily_populated),
            touched: rows.iter().any(|r| match &r.data {
                RowData::Alloc(a) => a.touch_ms.is_some() || a.prefetch_ms.is_some(),
                _ => false,
            }),
        }
    }
}

/// The findings on the totals: the overhead and why, granularity, where the memory came from.
fn totals_findings(t: &Totals, how: &How, out: &mut Vec<String>) {
    let How {
        strategy,
        host_backed,
        lazy,
        touched,
    } = *how;
    let seen = t.device_free_drop_bytes.unsigned_abs() >= t.requested_bytes / 2;
    let head = format!(
        "{} tensors requested {} ({:.2} GB); cuMemGetInfo free fell by {} ({:.2} GB)",
        t.tensors,
        fmt_bytes(t.requested_bytes),
        t.requested_bytes as f64 / GB as f64,
        fmt_bytes(t.device_free_drop_bytes.max(0) as u64),
        t.device_free_drop_bytes as f64 / GB as f64,
    );
    out.push(if seen {
        format!(
            "{head}: an overhead of {:+.1} MiB ({:+.2}%), {:+.1} KiB per tensor; rounding every tensor up to 2 MiB would add {:.1} MiB.",
            t.overhead_bytes as f64 / MIB as f64,
            t.overhead_pct,
            t.overhead_bytes as f64 / t.tensors as f64 / 1024.0,
            t.rounding_2mib_bytes as f64 / MIB as f64
        )
    } else {
        format!("{head}: the tensors do not sit in device memory (yet), so there is no device overhead to measure.")
    });
    if let Some(why) = overhead_reason(t) {
        out.push(why);
    }
    if t.mapped_bytes != t.requested_bytes {
        out.push(format!(
            "the strategy mapped {} for {} requested: {:.1} MiB of granularity rounding.",
            fmt_bytes(t.mapped_bytes),
            fmt_bytes(t.requested_bytes),
            (t.mapped_bytes - t.requested_bytes.min(t.mapped_bytes)) as f64 / MIB as f64
        ));
    }
    let ratio = t.mem_available_drop_bytes as f64 / t.requested_bytes.max(1) as f64;
    out.push(if ratio > 0.5 {
        format!(
            "MemAvailable fell by {} ({:.0}% of the request): these allocations come out of host memory (unified memory, or a host-backed strategy).",
            fmt_bytes(t.mem_available_drop_bytes.max(0) as u64),
            100.0 * ratio
        )
    } else {
        format!(
            "MemAvailable moved by {:+.1} MiB ({:.1}% of the request): the allocations did not come out of host memory (the driver's own bookkeeping aside).",
            -(t.mem_available_drop_bytes as f64) / MIB as f64,
            100.0 * ratio
        )
    });
    if host_backed && t.device_free_drop_bytes.unsigned_abs() < t.requested_bytes / 2 {
        out.push(format!(
            "{strategy} memory is host memory: on a discrete card cuMemGetInfo does not see it, so the overhead against free memory is meaningless here; compare MemAvailable."
        ));
    }
    if lazy && !touched && t.device_free_drop_bytes.unsigned_abs() < t.requested_bytes / 2 {
        out.push(format!(
            "{strategy} memory is populated on first touch and nothing touched it: run with --touch to see it take memory."
        ));
    }
}

/// The findings on the fragmentation result.
fn fragmentation_findings(f: &Fragmentation, how: &How, out: &mut Vec<String>) {
    let How {
        strategy,
        lazy,
        touched,
        ..
    } = *how;
    let vs_freed = if f.largest_bytes > f.largest_freed_bytes {
        format!(
            "larger than the largest tensor freed ({}): the free memory was usable as one block, not only as the holes the pattern left (the driver maps physical pages that need not be contiguous into one virtual range)",
            fmt_bytes(f.largest_freed_bytes)
        )
    } else {
        format!(
            "no larger than the largest tensor freed ({}): free memory was usable only as the holes the pattern left",
            fmt_bytes(f.largest_freed_bytes)
        )
    };
    out.push(format!(
        "after freeing {} of the tensors by `{}` ({}), {} was {}; the largest single allocation that succeeded was {} ({:.1}% of it, within {}), {vs_freed}.",
        f.freed_tensors,
        f.pattern,
        fmt_bytes(f.freed_bytes),
        f.free_total_of,
        fmt_bytes(f.free_total_bytes),
        fmt_bytes(f.largest_bytes),
        f.largest_pct_of_free(),
        fmt_bytes(f.resolution_bytes)
    ));
    let reserved_only = lazy && !touched;
    if f.reached_bound && f.bound_bytes >= f.free_total_bytes && !reserved_only {
        out.push(format!(
            "the whole free total ({}) could be taken as one allocation, to within the {} resolution: nothing was lost to fragmentation.",
            fmt_bytes(f.free_total_bytes),
            fmt_bytes(f.resolution_bytes)
        ));
    } else if f.reached_bound && f.bound_bytes < f.free_total_bytes {
        out.push(format!(
            "the search bound itself ({}) succeeded: the safety ceiling stopped the search below the free total ({}), so the true largest allocation may be larger.",
            fmt_bytes(f.bound_bytes),
            fmt_bytes(f.free_total_bytes)
        ));
    }
    if reserved_only {
        out.push(format!(
            "{strategy} allocations reserve address space, not memory, until touched: with --touch the search measures memory that is really populated."
        ));
    }
}

/// The layout alone (`--dry-run`): the tensors, the groups and the total.
pub fn render_layout(layout: &Layout) -> String {
    let mut out = String::new();
    for n in &layout.notes {
        out.push_str(&format!("{n}\n"));
    }
    out.push('\n');
    let n = layout.tensors.len();
    let mut t = new_table(&["#", "tensor", "dtype", "elements", "size", "GB (1e9)"]);
    for (i, ts) in layout.tensors.iter().enumerate() {
        if n > FULL_LIST_MAX && i == 10 {
            t.add_row(vec![
                "...".to_string(),
                format!("{} more (every tensor is in --json)", n - 15),
            ]);
        }
        if n > FULL_LIST_MAX && (10..n - 5).contains(&i) {
            continue;
        }
        t.add_row(vec![
            i.to_string(),
            ts.name.clone(),
            ts.dtype.map_or("-".into(), |d| d.name().to_string()),
            ts.elements.map_or("-".into(), |e| e.to_string()),
            fmt_bytes(ts.bytes),
            gb(ts.bytes),
        ]);
    }
    let total = layout.total_bytes();
    out.push_str(&format!(
        "{t}\n\ntotal: {n} tensors, {total} bytes = {:.3} GB (1e9) = {:.3} GiB\n",
        total as f64 / GB as f64,
        total as f64 / GIB as f64
    ));
    out
}
