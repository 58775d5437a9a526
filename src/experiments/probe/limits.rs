//! The limits a probe runs under: the safety ceiling of a strategy (or, with `--force`, the
//! physical size), `--max` caps ([`MaxSel`]), the bound of the next chunk, and the sentences that
//! say what a ceiling is made of and why a search stopped. Pure: imports `memory` (the budget and
//! the strategy registry) and `units`.

use super::{Bound, Limit, ProbeKind, Search, StopReason, align_down};
use crate::memory::safety::Budget;
use crate::memory::{Backing, Strategy};
use crate::units::{GIB, fmt_bytes, parse_size};

/// The default `--max` for host-backed strategies on discrete GPUs: pinning costs about 0.3 s per
/// GB, so a bisection up to a 128 GiB host's ceiling would take many minutes.
pub const DEFAULT_HOST_CAP_BYTES: u64 = 32 * GIB;

/// What bounds a search under `--force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysicalBounds {
    /// `cuMemGetInfo` total.
    pub device_total: u64,
    /// MemTotal.
    pub mem_total: u64,
}

/// The bound of one request of `st` (no `--max`): the safety ceiling of `budget`, or with `force`
/// the physical size, except managed memory on a discrete card, which stays within the card's
/// free memory even then. Aligned down to [`super::ALIGN_BYTES`].
pub fn ceiling_limit(budget: &Budget, st: Strategy, force: Option<PhysicalBounds>) -> Limit {
    let backing = st.info().backing;
    let (bytes, bound) = match force {
        None => (budget.ceiling(st), Bound::SafetyCeiling),
        Some(_) if !budget.unified && backing == Backing::Managed => {
            (budget.device_free, Bound::SafetyCeiling)
        }
        Some(p) if budget.unified => (p.mem_total, Bound::Physical),
        Some(p) => match backing {
            Backing::Device => (p.device_total, Bound::Physical),
            _ => (p.mem_total, Bound::Physical),
        },
    };
    Limit {
        bytes: align_down(bytes),
        bound,
    }
}

/// `limit` lowered to `cap` when the cap is smaller.
pub fn with_cap(limit: Limit, cap: Option<u64>) -> Limit {
    match cap {
        Some(c) if align_down(c) < limit.bytes => Limit {
            bytes: align_down(c),
            bound: Bound::MaxCap,
        },
        _ => limit,
    }
}

/// The most the next chunk may take with `held` bytes held: the ceiling now, the ceiling at the
/// start less what is held (memory that is held but not yet populated, such as untouched managed
/// memory, does not show in the accounting), and the cap less what is held.
pub fn chunk_limit(now: Limit, start: Limit, cap: Option<u64>, held: u64) -> Limit {
    let from_start = Limit {
        bytes: start.bytes.saturating_sub(held),
        bound: start.bound,
    };
    let lim = if from_start.bytes < now.bytes {
        from_start
    } else {
        now
    };
    with_cap(lim, cap.map(|c| c.saturating_sub(held)))
}

/// `--max`: `auto`, `none` or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxSel {
    /// No cap, except [`DEFAULT_HOST_CAP_BYTES`] for host-backed strategies on discrete GPUs.
    Auto,
    None,
    Bytes(u64),
}

impl MaxSel {
    pub fn parse(s: &str) -> std::result::Result<MaxSel, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(MaxSel::Auto),
            "none" => Ok(MaxSel::None),
            _ => parse_size(s)
                .map(MaxSel::Bytes)
                .map_err(|e| format!("{e} (or `auto`, `none`)")),
        }
    }

    /// The cap for `st` on a device that is (not) unified.
    pub fn cap_for(self, st: Strategy, unified: bool) -> Option<u64> {
        self.cap_with(st, unified, DEFAULT_HOST_CAP_BYTES)
    }

    /// As [`MaxSel::cap_for`], with `host_cap` as the `auto` cap of host-backed strategies.
    pub fn cap_with(self, st: Strategy, unified: bool, host_cap: u64) -> Option<u64> {
        match self {
            MaxSel::None => None,
            MaxSel::Bytes(b) => Some(b),
            MaxSel::Auto if !unified && st.info().backing == Backing::Host => Some(host_cap),
            MaxSel::Auto => None,
        }
    }
}

/// One sentence on what the safety ceiling of `st` is made of.
pub fn ceiling_reason(budget: &Budget, st: Strategy) -> String {
    let allowance = format!(
        "MemAvailable {} minus headroom {}",
        gib2(budget.mem_available),
        gib2(budget.headroom)
    );
    if budget.unified {
        return format!("unified memory: {allowance}");
    }
    match st.info().backing {
        Backing::Device => format!("cuMemGetInfo free {}", gib2(budget.device_free)),
        Backing::Managed => format!(
            "managed memory stays within the card's free memory ({}) and the host's {allowance}",
            gib2(budget.device_free)
        ),
        Backing::Host => format!("host memory: {allowance}"),
    }
}

/// The sentence saying why a search stopped.
pub(super) fn stop_detail(
    s: &Search,
    budget: &Budget,
    st: Strategy,
    kind: ProbeKind,
    step: u64,
    forced: bool,
) -> String {
    let near = match kind {
        ProbeKind::Single => format!("within {} of", fmt_bytes(step)),
        ProbeKind::Cumulative => format!("one more {} chunk would pass", fmt_bytes(step)),
    };
    match s.stop {
        StopReason::Failure => format!(
            "stopped at a failure: {} did not fit ({})",
            fmt_bytes(s.first_failure_bytes.unwrap_or(0)),
            s.failure.as_deref().unwrap_or("out of memory")
        ),
        StopReason::SafetyCeiling => {
            let mut t = format!(
                "stopped at the safety ceiling, not at a failure: {near} the {} allowed ({})",
                gib2(s.limit.bytes),
                ceiling_reason(budget, st)
            );
            if forced {
                t.push_str(
                    "; --force does not lift this one: more managed memory than the card has free can hang the GPU",
                );
            }
            t
        }
        StopReason::MaxCap => format!(
            "stopped at the --max cap of {}, not at a failure{}",
            gib2(s.limit.bytes),
            if st.info().backing == Backing::Host && !budget.unified {
                if s.limit.bytes == DEFAULT_HOST_CAP_BYTES {
                    " (host memory strategies on a discrete GPU are capped at 32 GiB by default: pinning costs about 0.3 to 0.5 s per GB; `--max none` lifts it)"
                } else {
                    " (host memory strategies on a discrete GPU are capped to keep pinning, about 0.3 to 0.5 s per GB, within the time budget; `--max none` lifts it)"
                }
            } else {
                ""
            }
        ),
        StopReason::Physical => format!(
            "stopped at the physical size {} (--force), not at a failure",
            gib2(s.limit.bytes)
        ),
        StopReason::Interrupted => {
            "interrupted before the search ended: the figure is a lower bound".to_string()
        }
        StopReason::NothingAllowed => format!(
            "nothing tried: the limit {} is below one step ({})",
            gib2(s.limit.bytes),
            ceiling_reason(budget, st)
        ),
    }
}

/// GiB with two decimals (the sentences compare figures a few hundred MiB apart).
fn gib2(bytes: u64) -> String {
    format!("{} GiB", crate::units::fmt_gib_dp(bytes, 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::MemInfo;
    use crate::memory::safety::DEFAULT_HEADROOM;
    use crate::units::MIB;

    fn lim(bytes: u64, bound: Bound) -> Limit {
        Limit { bytes, bound }
    }

    fn budget(name: &str, unified: bool, device_free: u64) -> (Budget, MemInfo) {
        let m = crate::test_support::meminfo(name);
        (
            Budget {
                unified,
                device_free,
                mem_available: m.mem_available,
                headroom: DEFAULT_HEADROOM,
            },
            m,
        )
    }

    #[test]
    fn ceilings_on_unified_memory() {
        // GB10: cuMemGetInfo free is MemFree, yet the ceiling is MemAvailable - headroom for
        // every strategy.
        let (b, m) = budget("gb10-cache-heavy.txt", true, 0);
        let b = Budget {
            device_free: m.mem_free,
            ..b
        };
        let want = align_down(m.mem_available - DEFAULT_HEADROOM);
        for st in Strategy::all() {
            let l = ceiling_limit(&b, st, None);
            assert_eq!((l.bytes, l.bound), (want, Bound::SafetyCeiling), "{st}");
            assert!(
                l.bytes > m.mem_free,
                "the page cache does not lower the ceiling"
            );
            // No default cap on unified memory: host memory is the GPU's memory there.
            assert_eq!(MaxSel::Auto.cap_for(st, true), None);
        }
        assert!(ceiling_reason(&b, Strategy::Device).contains("unified memory"));
        // --force: MemTotal.
        let f = PhysicalBounds {
            device_total: m.mem_total,
            mem_total: m.mem_total,
        };
        let l = ceiling_limit(&b, Strategy::Pinned, Some(f));
        assert_eq!(
            (l.bytes, l.bound),
            (align_down(m.mem_total), Bound::Physical)
        );
    }

    #[test]
    fn ceilings_on_a_discrete_card() {
        let free = 79 * GIB + 100 * MIB;
        let (b, m) = budget("h100-host.txt", false, free);
        let dev = ceiling_limit(&b, Strategy::Device, None);
        assert_eq!(dev.bytes, align_down(free));
        for st in [Strategy::Pool, Strategy::Vmm] {
            assert_eq!(ceiling_limit(&b, st, None), dev);
        }
        // managed: the card's free memory, though the host has more.
        assert!(m.mem_available - DEFAULT_HEADROOM > free);
        assert_eq!(
            ceiling_limit(&b, Strategy::Managed, None).bytes,
            align_down(free)
        );
        // host-backed: the host's allowance, capped at 32 GiB by default.
        let pinned = ceiling_limit(&b, Strategy::Pinned, None);
        assert_eq!(pinned.bytes, align_down(m.mem_available - DEFAULT_HEADROOM));
        let cap = MaxSel::Auto.cap_for(Strategy::Pinned, false);
        assert_eq!(cap, Some(32 * GIB));
        assert_eq!(with_cap(pinned, cap).bound, Bound::MaxCap);
        assert_eq!(MaxSel::Auto.cap_for(Strategy::Device, false), None);
        assert_eq!(MaxSel::None.cap_for(Strategy::Pinned, false), None);
        // --force: device-backed up to the card's total, host-backed to MemTotal, and managed
        // still only to the card's free memory (the hard rule).
        let f = PhysicalBounds {
            device_total: 80 * GIB,
            mem_total: m.mem_total,
        };
        assert_eq!(
            ceiling_limit(&b, Strategy::Device, Some(f)),
            lim(80 * GIB, Bound::Physical)
        );
        assert_eq!(
            ceiling_limit(&b, Strategy::Managed, Some(f)),
            lim(align_down(free), Bound::SafetyCeiling)
        );
        assert_eq!(
            ceiling_limit(&b, Strategy::Registered, Some(f)).bound,
            Bound::Physical
        );
        // A small host bounds managed below the card.
        let small = Budget {
            mem_available: 20 * GIB,
            ..b
        };
        assert_eq!(
            ceiling_limit(&small, Strategy::Managed, None).bytes,
            12 * GIB
        );
        let r = ceiling_reason(&small, Strategy::Managed);
        assert!(r.contains("free memory") && r.contains("headroom"), "{r}");
    }

    #[test]
    fn max_sel_and_sentences() {
        assert_eq!(MaxSel::parse("none"), Ok(MaxSel::None));
        assert_eq!(MaxSel::parse("AUTO"), Ok(MaxSel::Auto));
        assert_eq!(MaxSel::parse("16GiB"), Ok(MaxSel::Bytes(16 * GIB)));
        assert!(MaxSel::parse("16G").unwrap_err().contains("ambiguous"));
        // The sentences name the reason for stopping.
        let (b, _) = budget("h100-host.txt", false, 79 * GIB);
        let mut s = Search::new(lim(79 * GIB, Bound::SafetyCeiling));
        s.stop = StopReason::SafetyCeiling;
        let t = stop_detail(
            &s,
            &b,
            Strategy::Device,
            ProbeKind::Single,
            256 * MIB,
            false,
        );
        assert!(
            t.starts_with("stopped at the safety ceiling, not at a failure: within 256 MiB of the 79.00 GiB allowed"),
            "{t}"
        );
        assert!(t.contains("cuMemGetInfo free 79.00 GiB"), "{t}");
        let t = stop_detail(&s, &b, Strategy::Device, ProbeKind::Cumulative, GIB, false);
        assert!(
            t.contains("one more 1 GiB chunk would pass the 79.00 GiB allowed"),
            "{t}"
        );
        let t = stop_detail(
            &s,
            &b,
            Strategy::Managed,
            ProbeKind::Single,
            256 * MIB,
            true,
        );
        assert!(t.contains("--force does not lift this one"), "{t}");
        s.stop = StopReason::MaxCap;
        s.limit = lim(32 * GIB, Bound::MaxCap);
        let t = stop_detail(&s, &b, Strategy::Pinned, ProbeKind::Cumulative, GIB, false);
        assert!(
            t.contains("--max cap of 32.00 GiB") && t.contains("--max none"),
            "{t}"
        );
    }
}
