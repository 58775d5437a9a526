//! The safety rules of DESIGN.md as pure arithmetic, so that they are tested without a GPU and the
//! same rule guards `sweep`, `probe`, `layout` and `cache effect`:
//!
//! - Unified memory (INTEGRATED = 1, GB10): every request must leave MemAvailable above the
//!   headroom. An oversized allocation there can wedge the whole host (no OOM kill).
//! - Discrete GPUs: `managed` never asks for more than `cuMemGetInfo` free (it can hang the GPU),
//!   nor more than the host can hold minus the headroom (CPU-first touches land in host memory);
//!   pinned, registered and pageable memory keep MemAvailable above the headroom; device-memory
//!   strategies are bounded by the card's free memory (the driver refuses beyond it, safely).
//! - `--force` lifts the limit with a printed warning, except for `managed` past the card's free
//!   memory on a discrete GPU, which [`Budget::check_forced`] refuses even then.
//! - Unified memory, before every allocation of `sweep`, `probe`, `layout`, `cache effect` and
//!   `info --who-sees`: the pressure guard
//!   ([`PressureLimits`]) stops when PSI full avg10 or the supply of free 2 MiB blocks says the
//!   host is near a wedge; `--force` does not lift it (the thresholds are set by environment).
//!
//! The default headroom, 8 GiB, rests on what GB10 owners report: a watchdog stopping vLLM when
//! MemAvailable fell below 8 GiB kept two DGX Sparks up through model loads that dipped to
//! 6.8 GiB (huggingface.co nvidia/GLM-5.3-Flash-FP4-Local discussion #7), and the wedge of
//! MiaAI-Lab/DeepSeek-v4.1-Flash-DGX-Sparks issue #23 came with about 8.7 GiB nominally free but
//! no free 2 MiB blocks: headroom alone does not catch that, which is why the block supply is
//! guarded apart. `--headroom` sets it.

use serde::{Deserialize, Serialize};

use super::{Backing, Strategy};
use crate::host::HostPressure;
use crate::units::{GIB, fmt_bytes};

/// Default headroom: 8 GiB.
pub const DEFAULT_HEADROOM: u64 = 8 << 30;

/// The memory state a decision is made from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The GPU shares the host's memory (INTEGRATED = 1).
    pub unified: bool,
    /// `cuMemGetInfo` free, bytes.
    pub device_free: u64,
    /// MemAvailable, bytes.
    pub mem_available: u64,
    /// Bytes that must stay available to the host.
    pub headroom: u64,
}

impl Budget {
    /// Host memory that may be taken: MemAvailable minus the headroom.
    pub fn host_allowance(&self) -> u64 {
        self.mem_available.saturating_sub(self.headroom)
    }

    /// The most one request of `strategy` may take.
    pub fn ceiling(&self, strategy: Strategy) -> u64 {
        if self.unified {
            return self.host_allowance();
        }
        match strategy.info().backing {
            Backing::Device => self.device_free,
            Backing::Managed => self.device_free.min(self.host_allowance()),
            Backing::Host => self.host_allowance(),
        }
    }

    /// Ok when `bytes` of `strategy` is within the ceiling; else one sentence saying why not and
    /// how to proceed.
    pub fn check(&self, strategy: Strategy, bytes: u64) -> Result<(), String> {
        let ceiling = self.ceiling(strategy);
        if bytes <= ceiling {
            return Ok(());
        }
        let why = if self.unified {
            format!(
                "unified memory: MemAvailable {} minus headroom {} leaves {}",
                fmt_bytes(self.mem_available),
                fmt_bytes(self.headroom),
                fmt_bytes(ceiling)
            )
        } else {
            match strategy.info().backing {
                Backing::Device => format!("the card has {} free", fmt_bytes(self.device_free)),
                Backing::Managed => format!(
                    "managed memory is kept within the card's free memory ({}) and the host's MemAvailable minus headroom ({})",
                    fmt_bytes(self.device_free),
                    fmt_bytes(self.host_allowance())
                ),
                Backing::Host => format!(
                    "host memory: MemAvailable {} minus headroom {} leaves {}",
                    fmt_bytes(self.mem_available),
                    fmt_bytes(self.headroom),
                    fmt_bytes(ceiling)
                ),
            }
        };
        Err(format!(
            "{strategy} {} exceeds the safety ceiling ({why})",
            fmt_bytes(bytes)
        ))
    }
}

/// What `--force` makes of a request: allowed with a warning, or still refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forced {
    /// Within the ceiling: no warning.
    Allowed,
    /// Past the ceiling, allowed by `--force`: print this warning.
    Warn(String),
}

impl Budget {
    /// [`Budget::check`] under `--force` (when `force` is true): past-ceiling requests become a
    /// warning, except managed memory past `cuMemGetInfo` free on a discrete card (it can hang the
    /// GPU), which is refused even then.
    pub fn check_forced(
        &self,
        strategy: Strategy,
        bytes: u64,
        force: bool,
    ) -> Result<Forced, String> {
        if self.unified {
            pressure_check_now(bytes).map_err(|why| {
                format!(
                    "{strategy} {}: {why}; --force does not lift this one",
                    fmt_bytes(bytes)
                )
            })?;
        }
        match self.check(strategy, bytes) {
            Ok(()) => Ok(Forced::Allowed),
            Err(why) if !force => Err(why),
            Err(why)
                if !self.unified
                    && strategy.info().backing == Backing::Managed
                    && bytes > self.device_free =>
            {
                Err(format!(
                    "{why}; --force does not lift this one: more managed memory than the card has free can hang the GPU"
                ))
            }
            Err(why) => Ok(Forced::Warn(why)),
        }
    }
}

/// Default limit of PSI `full avg10`, percent: all non-idle tasks stalled on memory a tenth of
/// the time is thrashing by the kernel's definition of `full` (Documentation/accounting/psi.rst).
pub const DEFAULT_PSI_FULL_AVG10_MAX: f64 = 10.0;

/// Default floor of the free 2 MiB-block supply: 1 GiB (512 blocks). Below it a request larger
/// than the supply needs compaction; fresh GB10 boots show thousands of such blocks and wedged
/// ones none (MiaAI-Lab/DeepSeek-v4.1-Flash-DGX-Sparks #23: 3,909 blocks of 1 MiB+ at boot, 0 to
/// 49 when wedged; FujitsuPolycom/sparkring #173: 0 blocks of 32 MiB on ranks that crawled).
pub const DEFAULT_MIN_FREE_2M: u64 = GIB;

/// The pressure guard's thresholds. Set by `CUMEMLAB_PSI_FULL_MAX` (percent) and
/// `CUMEMLAB_MIN_FREE_2M` (a size; `0` turns the block rule off).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PressureLimits {
    pub psi_full_avg10_max: f64,
    pub min_free_2m_bytes: u64,
}

impl Default for PressureLimits {
    fn default() -> PressureLimits {
        PressureLimits {
            psi_full_avg10_max: DEFAULT_PSI_FULL_AVG10_MAX,
            min_free_2m_bytes: DEFAULT_MIN_FREE_2M,
        }
    }
}

impl PressureLimits {
    /// The defaults, overridden by the environment; a value that does not parse is an error
    /// naming the variable.
    pub fn from_env() -> Result<PressureLimits, String> {
        let mut l = PressureLimits::default();
        if let Ok(v) = std::env::var("CUMEMLAB_PSI_FULL_MAX") {
            l.psi_full_avg10_max = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && (0.0..=100.0).contains(x))
                .ok_or_else(|| {
                    format!("CUMEMLAB_PSI_FULL_MAX `{v}` is not a percentage from 0 to 100")
                })?;
        }
        if let Ok(v) = std::env::var("CUMEMLAB_MIN_FREE_2M") {
            l.min_free_2m_bytes = if v.trim() == "0" {
                0
            } else {
                crate::units::parse_size(&v)
                    .map_err(|e| format!("CUMEMLAB_MIN_FREE_2M `{v}`: {e}"))?
            };
        }
        Ok(l)
    }

    /// Ok when a request of `bytes` may go ahead under `p`; else one sentence with the figure,
    /// the limit, and how to proceed. A source that could not be read does not stop anything.
    pub fn check(&self, p: &HostPressure, bytes: u64) -> Result<(), String> {
        if let Some(full) = p.psi_full_avg10()
            && full >= self.psi_full_avg10_max
        {
            return Err(format!(
                "unified memory under pressure: PSI full avg10 is {full:.2}% (limit {:.2}%, CUMEMLAB_PSI_FULL_MAX): every task stalled on memory that share of the last 10 s; wait for it to fall or free memory",
                self.psi_full_avg10_max
            ));
        }
        if let Some(free_2m) = p.free_2m_bytes()
            && free_2m < self.min_free_2m_bytes
            && bytes > free_2m
        {
            return Err(format!(
                "unified memory fragmented: free blocks of 2 MiB and larger hold {} (limit {}, CUMEMLAB_MIN_FREE_2M) and the request is {}: backing it needs compaction, where GB10 owners saw NV_ERR_NO_MEMORY and host wedges (MiaAI-Lab/DeepSeek-v4.1-Flash-DGX-Sparks #23); drop the page cache and compact (`sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches; echo 1 > /proc/sys/vm/compact_memory'`) or set CUMEMLAB_MIN_FREE_2M=0",
                fmt_bytes(free_2m),
                fmt_bytes(self.min_free_2m_bytes),
                fmt_bytes(bytes)
            ));
        }
        Ok(())
    }
}

/// The pressure guard on this host now: reads PSI and buddyinfo (or their `CUMEMLAB_*`
/// stand-ins) and checks a request of `bytes`. Err carries the stop reason.
pub fn pressure_check_now(bytes: u64) -> Result<(), String> {
    PressureLimits::from_env()?.check(&HostPressure::read(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::MemInfo;
    use crate::units::GIB;

    fn meminfo(name: &str) -> MemInfo {
        crate::test_support::meminfo(name)
    }

    #[test]
    fn unified_host_keeps_headroom_for_every_strategy() {
        let m = meminfo("gb10-cache-heavy.txt");
        // On GB10 cuMemGetInfo free is MemFree.
        let b = Budget {
            unified: true,
            device_free: m.mem_free,
            mem_available: m.mem_available,
            headroom: DEFAULT_HEADROOM,
        };
        let allowance = m.mem_available - 8 * GIB;
        for s in Strategy::all() {
            assert_eq!(b.ceiling(s), allowance, "{s}");
            assert!(b.check(s, allowance).is_ok());
            let e = b.check(s, allowance + 1).unwrap_err();
            assert!(
                e.contains("unified memory") && e.contains("headroom"),
                "{e}"
            );
        }
        // The device strategy may exceed cuMemGetInfo free (MemFree) there: the cache is reclaimable.
        assert!(b.check(Strategy::Device, m.mem_free + GIB).is_ok());
    }

    #[test]
    fn discrete_card_rules() {
        let m = meminfo("h100-host.txt");
        let free = 79 * GIB;
        let b = Budget {
            unified: false,
            device_free: free,
            mem_available: m.mem_available,
            headroom: DEFAULT_HEADROOM,
        };
        assert!(b.check(Strategy::Device, free).is_ok());
        assert!(
            b.check(Strategy::Device, free + 1)
                .unwrap_err()
                .contains("free")
        );
        // managed never past the card's free memory, even though the host has more.
        assert!(m.mem_available > free);
        let e = b.check(Strategy::Managed, free + GIB).unwrap_err();
        assert!(e.contains("managed"), "{e}");
        assert!(b.check(Strategy::ManagedPrefetch, free).is_ok());
        // pinned is bounded by the host, not the card.
        assert!(b.check(Strategy::Pinned, 100 * GIB).is_ok());
        assert!(
            b.check(Strategy::Pinned, m.mem_available - 8 * GIB + 1)
                .is_err()
        );
        // A small host bounds managed too.
        let small = Budget {
            mem_available: 20 * GIB,
            ..b
        };
        assert_eq!(small.ceiling(Strategy::Managed), 12 * GIB);
        // --force lifts the host and device ceilings but never managed past the card's free memory.
        assert_eq!(
            b.check_forced(Strategy::Device, free, true),
            Ok(Forced::Allowed)
        );
        assert!(matches!(
            b.check_forced(Strategy::Pinned, 200 * GIB, true),
            Ok(Forced::Warn(_))
        ));
        let e = b
            .check_forced(Strategy::Managed, free + GIB, true)
            .unwrap_err();
        assert!(e.contains("--force does not lift this one"), "{e}");
        assert!(b.check_forced(Strategy::Pinned, 200 * GIB, false).is_err());
        // Headroom larger than MemAvailable leaves nothing.
        let tight = Budget {
            mem_available: 4 * GIB,
            ..b
        };
        assert_eq!(tight.ceiling(Strategy::Pinned), 0);
    }

    fn pressure(psi_full: f64, buddy: &str) -> HostPressure {
        HostPressure {
            psi: Some(crate::host::pressure::Psi {
                full_avg10: psi_full,
                ..Default::default()
            }),
            buddyinfo: Some(crate::host::pressure::BuddyInfo::parse(buddy, 4096).unwrap()),
            cgroup: None,
            unavailable: Vec::new(),
        }
    }

    #[test]
    fn pressure_guard_stops_near_a_wedge_with_the_figure() {
        let l = PressureLimits::default();
        // 600 blocks of 4 MiB: 2.34 GiB in 2 MiB+ blocks.
        let healthy = pressure(0.0, "Node 0, zone Normal 10 10 10 10 10 10 10 10 10 0 600");
        assert!(l.check(&healthy, 100 * GIB).is_ok());
        // Thrashing: PSI full avg10 at the limit stops any request.
        let e = l
            .check(
                &pressure(12.5, "Node 0, zone Normal 0 0 0 0 0 0 0 0 0 0 600"),
                1,
            )
            .unwrap_err();
        assert!(
            e.contains("PSI full avg10 is 12.50%") && e.contains("limit 10.00%"),
            "{e}"
        );
        // Fragmented: 40 MiB in 2 MiB+ blocks, lots of small ones.
        let frag = pressure(
            0.0,
            "Node 0, zone Normal 90000 50000 20000 9000 4000 1000 300 80 20 4 8",
        );
        let e = l.check(&frag, GIB).unwrap_err();
        assert!(
            e.contains("hold 40 MiB") && e.contains("limit 1 GiB"),
            "{e}"
        );
        assert!(e.contains("#23"), "{e}");
        // A request the existing supply covers goes ahead.
        assert!(l.check(&frag, 32 << 20).is_ok());
        // The thresholds are settable: 0 turns the block rule off.
        let off = PressureLimits {
            min_free_2m_bytes: 0,
            ..l
        };
        assert!(off.check(&frag, GIB).is_ok());
        // Nothing readable: nothing stops.
        assert!(l.check(&HostPressure::default(), 100 * GIB).is_ok());
    }
}
