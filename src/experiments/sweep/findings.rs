//! The sweep's findings: sentences written from the measured numbers of one device (where
//! memory is populated, each strategy against device memory, CPU-first costs, bandwidth and its
//! spread, unstable phases, allocation time against size, the fill kernel against
//! `cuMemsetD32`). Comparisons follow [`order`]: "slower" only when samples do not overlap.
//! Pure: imports the row types, `memory::Strategy`, `stats` and `units`.

use super::{
    Phase, SweepRow, find, gbps_spread, pct_near, size_label, sizes_of, spread_ms, strategies_of,
};
use crate::memory::{Backing, Strategy};
use crate::stats::{Order, UNSTABLE_CV, fmt_spread, order};
use crate::units::{GB, GIB, fmt_bytes};

/// The protocol's floor for the fill kernel against `cuMemsetD32`, percent.
pub const FILL_THRESHOLD_PCT: f64 = 95.0;

/// One device's rows and what the findings look at: the sizes, the largest size of 1 GiB or more
/// (else the largest), the strategies in measured order.
struct View<'a> {
    rows: &'a [SweepRow],
    dev: i32,
    sizes: Vec<u64>,
    big: u64,
    strategies: Vec<Strategy>,
}

impl View<'_> {
    /// Each strategy at its own largest size (caps leave some strategies at smaller sizes).
    fn largest(&self, st: Strategy) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.device == self.dev && r.strategy == st && r.phase == Phase::Alloc)
            .map(|r| r.bytes)
            .max()
            .unwrap_or(self.big)
    }
}

/// Sentences written from the measured numbers of one device. Comparisons follow the rule of
/// [`order`]: one strategy is slower than another only when their samples do not overlap.
pub fn findings(rows: &[SweepRow], dev: i32) -> Vec<String> {
    let mut out = Vec::new();
    let sizes = sizes_of(rows, dev);
    let Some(&big) = sizes.iter().filter(|s| **s >= GIB).max().or(sizes.last()) else {
        return out;
    };
    let v = View {
        rows,
        dev,
        big,
        strategies: strategies_of(rows, dev),
        sizes,
    };
    how_to_read(&v, &mut out);
    population(&v, &mut out);
    against_device(&v, &mut out);
    cpu_first(&v, &mut out);
    bandwidth(&v, &mut out);
    placement(&v, &mut out);
    unstable(&v, &mut out);
    alloc_against_size(&v, &mut out);
    fill_against_memset(&v, &mut out);
    out
}

/// How to read the comparisons, by the n of the rows.
fn how_to_read(v: &View, out: &mut Vec<String>) {
    let n = v
        .rows
        .iter()
        .filter(|r| r.device == v.dev && r.phase == Phase::Alloc)
        .map(|r| r.runs)
        .min()
        .unwrap_or(1);
    out.push(if n >= 2 {
        format!(
            "How to read these: one-shot phases are measured once on each of n = {n} fresh allocations (or more); \"A slower than B\" means every sample of A is above every sample of B, otherwise the two are called indistinguishable at that n; a phase whose CV is above {:.0}% is flagged unstable.",
            100.0 * UNSTABLE_CV
        )
    } else {
        "How to read these: these rows hold one sample per phase (written before --repeat), so no figure has a spread and an order between two of them may be noise.".to_string()
    });
}

/// Population: at allocation or at first touch.
fn population(v: &View, out: &mut Vec<String>) {
    let (rows, dev, big) = (v.rows, v.dev, v.big);
    let strategies = &v.strategies;
    // Population: at allocation or at first touch.
    let mut at_alloc = Vec::new();
    let mut at_touch = Vec::new();
    for &st in strategies {
        let b = v.largest(st);
        let gib = b as f64 / GIB as f64;
        let (Some(first), Some(second)) = (
            find(rows, dev, st, b, Phase::GpuFirstTouch),
            find(rows, dev, st, b, Phase::GpuSecondTouch),
        ) else {
            continue;
        };
        let extra = first.ms_median - second.ms_median;
        let at = if b == big {
            String::new()
        } else {
            format!(" at {}", fmt_bytes(b))
        };
        if let Some(p) = find(rows, dev, st, b, Phase::Prefetch) {
            at_touch.push(format!(
                "{st}{at} (populated by cuMemPrefetchAsync before the first touch: {} ms, {:.1} GB/s; first GPU touch then {} ms)",
                spread_ms(p, 1),
                p.gbps.unwrap_or(0.0),
                spread_ms(first, 1)
            ));
        } else if order(&first.summary(), &second.summary()) == Order::Above
            && extra > 0.5 * first.ms_median
            && extra > 1.0
        {
            at_touch.push(format!(
                "{st}{at} (first GPU touch {} ms vs {} ms warm: {:.1} ms per GiB, about {:.1} GB/s of population or migration)",
                spread_ms(first, 1),
                spread_ms(second, 1),
                extra / gib,
                b as f64 / 1e9 / (extra / 1e3)
            ));
        } else if let Some(al) = find(rows, dev, st, b, Phase::Alloc) {
            at_alloc.push(format!(
                "{st} ({} ms to allocate {})",
                spread_ms(al, 1),
                fmt_bytes(b)
            ));
        }
    }
    if !at_alloc.is_empty() {
        out.push(format!(
            "These populate at allocation (first GPU touch not above the second): {}.",
            at_alloc.join("; ")
        ));
    }
    if !at_touch.is_empty() {
        out.push(format!(
            "At {}, these populate on first touch: {}.",
            fmt_bytes(big),
            at_touch.join("; ")
        ));
    }
}

/// Allocation and first touch against device memory, by the overlap rule.
fn against_device(v: &View, out: &mut Vec<String>) {
    let (rows, dev, big) = (v.rows, v.dev, v.big);
    let strategies = &v.strategies;
    // Allocation and first touch against device memory, by the overlap rule.
    for (ph, what) in [
        (Phase::Alloc, "allocation"),
        (Phase::GpuFirstTouch, "first GPU touch"),
    ] {
        let Some(reference) = find(rows, dev, Strategy::Device, big, &ph) else {
            continue;
        };
        let parts: Vec<String> = strategies
            .iter()
            .filter(|s| **s != Strategy::Device)
            .filter_map(|&st| {
                find(rows, dev, st, big, &ph).map(|r| {
                    format!(
                        "{st} {} ms, {}",
                        spread_ms(r, 2),
                        compare_words(r, reference)
                    )
                })
            })
            .collect();
        if !parts.is_empty() {
            out.push(format!(
                "{} at {} against device memory ({} ms): {}.",
                capitalise(what),
                fmt_bytes(big),
                spread_ms(reference, 2),
                parts.join("; ")
            ));
        }
    }
}

/// CPU-first: the cost of the GPU touching what the CPU touched first, as per-GiB rates.
fn cpu_first(v: &View, out: &mut Vec<String>) {
    let (rows, dev) = (v.rows, v.dev);
    let strategies = &v.strategies;
    // CPU-first: the cost of the GPU touching what the CPU touched first, as per-GiB rates.
    for &st in strategies {
        let Some(b) = rows
            .iter()
            .filter(|r| r.device == dev && r.strategy == st && r.phase == Phase::CpuFirstTouch)
            .map(|r| r.bytes)
            .max()
        else {
            continue;
        };
        if let (Some(cpu), Some(g)) = (
            find(rows, dev, st, b, Phase::CpuFirstTouch),
            find(rows, dev, st, b, Phase::GpuTouchAfterCpu),
        ) {
            let gib = b as f64 / GIB as f64;
            out.push(format!(
                "{st}: the CPU's first touch of {} took {} ms ({:.0} ms per GiB, {:.2} us per page, {} thread(s)); the GPU's touch after it took {} ms ({:.0} ms per GiB).",
                fmt_bytes(b),
                spread_ms(cpu, 1),
                cpu.ms_median / gib,
                cpu.us_per_page.unwrap_or(0.0),
                cpu.threads.unwrap_or(1),
                spread_ms(g, 1),
                g.ms_median / gib
            ));
        }
    }
}

/// Bandwidth against device memory, by the ranges of the per-allocation medians.
fn bandwidth(v: &View, out: &mut Vec<String>) {
    let (rows, dev, big) = (v.rows, v.dev, v.big);
    let strategies = &v.strategies;
    // Bandwidth against device memory, by the ranges of the per-allocation medians.
    let dev_fill = find(rows, dev, Strategy::Device, big, Phase::Fill);
    let dev_read = find(rows, dev, Strategy::Device, big, Phase::Read);
    if let (Some(df), Some(dr)) = (dev_fill, dev_read) {
        let mut parts = Vec::new();
        for &st in strategies.iter().filter(|s| **s != Strategy::Device) {
            let f = find(rows, dev, st, big, Phase::Fill);
            let r = find(rows, dev, st, big, Phase::Read);
            if let (Some(f), Some(r)) = (f, r) {
                let word = |a: &SweepRow, b: &SweepRow| match order(&a.summary(), &b.summary()) {
                    Order::Above => "slower",
                    Order::Below => "faster",
                    Order::Overlap => "indistinguishable",
                };
                parts.push(format!(
                    "{st} fill {:.1}% ({}) / read {:.1}% ({})",
                    100.0 * f.gbps.unwrap_or(0.0) / df.gbps.unwrap_or(1.0),
                    word(f, df),
                    100.0 * r.gbps.unwrap_or(0.0) / dr.gbps.unwrap_or(1.0),
                    word(r, dr)
                ));
            }
        }
        out.push(format!(
            "Bandwidth at {} against device memory (fill {} GB/s, read {} GB/s; slower or faster only where the run times do not overlap): {}.",
            fmt_bytes(big),
            gbps_spread(df).map_or("-".into(), |s| fmt_spread(&s, 0)),
            gbps_spread(dr).map_or("-".into(), |s| fmt_spread(&s, 0)),
            if parts.is_empty() {
                "no other strategy measured".to_string()
            } else {
                parts.join(", ")
            }
        ));
    }
}

/// Placement: the spread between allocations against the spread between runs on one.
fn placement(v: &View, out: &mut Vec<String>) {
    let (rows, dev, big) = (v.rows, v.dev, v.big);
    let strategies = &v.strategies;
    // Placement: the spread between allocations against the spread between runs on one.
    let split: Vec<String> = strategies
        .iter()
        .flat_map(|&st| [Phase::Fill, Phase::Read].map(|ph| (st, ph)))
        .filter_map(|(st, ph)| {
            let r = find(rows, dev, st, big, &ph)?;
            Some(format!(
                "{st} {ph} {:.1}% / {:.1}%",
                100.0 * r.between_alloc_cv?,
                100.0 * r.within_alloc_cv?
            ))
        })
        .collect();
    if !split.is_empty() {
        out.push(format!(
            "Bandwidth spread at {} between fresh allocations (where the memory landed) / between runs on one allocation (timing noise), as CV: {}.",
            fmt_bytes(big),
            split.join(", ")
        ));
    }
    for r in rows.iter().filter(|r| {
        r.device == dev && r.bytes >= GIB && (r.phase == Phase::Fill || r.phase == Phase::Read)
    }) {
        let (Some(b), Some(w)) = (r.between_alloc_cv, r.within_alloc_cv) else {
            continue;
        };
        if b > 0.02 && b > 2.0 * w {
            let (lo, hi) = r
                .alloc_gbps
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            out.push(format!(
                "{} {} at {}: allocations differ by {:.1}% (CV between allocations; {:.0} to {:.0} GB/s over {}) while runs on one allocation differ by {:.1}%: where the memory landed matters more than timing noise, so one median would hide a gap.",
                r.strategy,
                r.phase,
                fmt_bytes(r.bytes),
                100.0 * b,
                lo,
                hi,
                r.alloc_gbps.len(),
                100.0 * w
            ));
        }
    }
}

/// Unstable phases.
fn unstable(v: &View, out: &mut Vec<String>) {
    let (rows, dev) = (v.rows, v.dev);
    // Unstable phases.
    let mut unstable: Vec<String> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.device == dev && r.runs >= 3 && r.ms_cv > UNSTABLE_CV && !r.phase.is_step())
    {
        unstable.push(format!(
            "{} {} at {} (CV {}, {} ms; likely {})",
            r.strategy,
            r.phase,
            fmt_bytes(r.bytes),
            pct_near(100.0 * r.ms_cv, 100.0 * UNSTABLE_CV),
            spread_ms(r, 2),
            unstable_reason(r.strategy, &r.phase)
        ));
    }
    if !unstable.is_empty() {
        out.push(format!(
            "Unstable (CV above {:.0}%; read their medians with the range): {}.",
            100.0 * UNSTABLE_CV,
            unstable.join("; ")
        ));
    }
}

/// Allocation time against size (the seed preset's question).
fn alloc_against_size(v: &View, out: &mut Vec<String>) {
    let (rows, dev) = (v.rows, v.dev);
    let strategies = &v.strategies;
    let sizes = &v.sizes;
    // Allocation time against size (the seed preset's question): per-GB rates, and any size
    // whose allocation took less time than a smaller one with samples that do not overlap.
    for &st in strategies {
        let allocs: Vec<&SweepRow> = sizes
            .iter()
            .filter(|b| **b >= GB)
            .filter_map(|b| find(rows, dev, st, *b, Phase::Alloc))
            .collect();
        if allocs.len() < 4 {
            continue;
        }
        let dips: Vec<String> = allocs
            .windows(2)
            .filter(|w| order(&w[1].summary(), &w[0].summary()) == Order::Below)
            .map(|w| {
                format!(
                    "{} took {} ms, less than {} at {}",
                    size_label(w[1].bytes),
                    spread_ms(w[1], 1),
                    spread_ms(w[0], 1),
                    size_label(w[0].bytes)
                )
            })
            .collect();
        let rates: Vec<String> = allocs
            .iter()
            .map(|r| format!("{} {}", size_label(r.bytes), fmt_spread(&r.ms_per_gb(), 2)))
            .collect();
        out.push(format!(
            "{st}: allocation time per GB (1e9 bytes), ms: {}; {}.",
            rates.join(", "),
            if dips.is_empty() {
                "no larger size allocated faster than a smaller one with samples that do not overlap".to_string()
            } else {
                format!("not monotonic: {}", dips.join("; "))
            }
        ));
    }
}

/// The fill kernel against cuMemsetD32 at >= 1 GiB.
fn fill_against_memset(v: &View, out: &mut Vec<String>) {
    let (rows, dev) = (v.rows, v.dev);
    let sizes = &v.sizes;
    // The fill kernel against cuMemsetD32 at >= 1 GiB.
    for b in sizes.iter().filter(|b| **b >= GIB) {
        if let (Some(f), Some(m)) = (
            find(rows, dev, Strategy::Device, *b, Phase::Fill).and_then(|r| r.gbps),
            find(rows, dev, Strategy::Device, *b, Phase::MemsetBaseline).and_then(|r| r.gbps),
        ) {
            let pct = 100.0 * f / m;
            out.push(format!(
                "At {} the fill kernel reaches {} of cuMemsetD32 ({:.0} vs {:.0} GB/s){}.",
                fmt_bytes(*b),
                pct_near(pct, FILL_THRESHOLD_PCT),
                f,
                m,
                if pct >= FILL_THRESHOLD_PCT {
                    String::new()
                } else {
                    format!(": BELOW the {FILL_THRESHOLD_PCT:.0}% the protocol requires, so kernel bandwidth understates this memory")
                }
            ));
        }
    }
}

/// "slower" / "faster" / "indistinguishable at n = N" against a reference, by [`order`].
fn compare_words(a: &SweepRow, b: &SweepRow) -> String {
    let n = a.runs.min(b.runs).max(1);
    let single = if n < 2 {
        " (one sample each: the spread is unknown)"
    } else {
        ""
    };
    match order(&a.summary(), &b.summary()) {
        Order::Above => format!("slower{single}"),
        Order::Below => format!("faster{single}"),
        Order::Overlap => format!("indistinguishable at n = {n}"),
    }
}

/// The likely reason a phase of `strategy` varies, where one is known.
fn unstable_reason(strategy: Strategy, ph: &Phase) -> &'static str {
    let host_side = matches!(strategy.info().backing, Backing::Host | Backing::Managed);
    let bandwidth = matches!(ph, Phase::Fill | Phase::Read);
    if strategy == Strategy::Registered && !bandwidth {
        "host memory being populated and pinned (by the kernel, or by the hypervisor on a virtual machine), the page cache when --file maps a file, and other processes on the host"
    } else if matches!(ph, Phase::CpuFirstTouch | Phase::GpuTouchAfterCpu)
        || (host_side && !bandwidth)
    {
        "host memory being populated (by the kernel, or by the hypervisor on a virtual machine) and other processes on the host"
    } else if bandwidth {
        "where each allocation landed (see the split between allocations and runs) or clocks"
    } else {
        "driver work that varies between allocations, or other processes on the GPU"
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_from_numbers() {
        let mk = |st: Strategy, ph: Phase, ms: f64| SweepRow::new(0, st, 4 * GIB, ph).times(&[ms]);
        let mut rows = vec![
            mk(Strategy::Device, Phase::Alloc, 1.0),
            mk(Strategy::Device, Phase::GpuFirstTouch, 2.0),
            mk(Strategy::Device, Phase::GpuSecondTouch, 2.0),
            mk(Strategy::Managed, Phase::Alloc, 0.1),
            mk(Strategy::Managed, Phase::GpuFirstTouch, 400.0),
            mk(Strategy::Managed, Phase::GpuSecondTouch, 2.0),
        ];
        let mut fill = mk(Strategy::Device, Phase::Fill, 2.0);
        fill.gbps = Some(2000.0);
        let mut memset = mk(Strategy::Device, Phase::MemsetBaseline, 2.0);
        memset.gbps = Some(2500.0);
        rows.push(fill);
        rows.push(memset);
        let f = findings(&rows, 0).join("\n");
        assert!(
            f.contains("populate at allocation") && f.contains("device (1.0 ms"),
            "{f}"
        );
        assert!(f.contains("populate on first touch: managed (first GPU touch 400.0 ms vs 2.0 ms warm: 99.5 ms per GiB"), "{f}");
        assert!(
            f.contains("80.0% of cuMemsetD32") && f.contains("BELOW"),
            "{f}"
        );
    }
}
