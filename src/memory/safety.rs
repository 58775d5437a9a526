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

use serde::{Deserialize, Serialize};

use super::{Backing, Strategy};
use crate::units::fmt_bytes;

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
}
