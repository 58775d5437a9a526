//! The typed options of a sweep ([`SweepOptions`], parsed before anything runs), its size caps
//! and its default sizes. Pure: imports `memory` (types) and `units` only.

use serde::{Deserialize, Serialize};

use crate::memory::{AllocOptions, Strategy};
use crate::units::{GIB, MIB};

/// Options of a sweep (typed: parsed before anything runs).
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub strategies: Option<Vec<Strategy>>,
    pub sizes: Option<Vec<u64>>,
    pub runs: u32,
    pub page_stride: u64,
    pub cpu_threads: usize,
    pub headroom: u64,
    pub force: bool,
    pub alloc: AllocOptions,
    pub quiet: bool,
    /// Fresh allocations per (strategy, size): every one-shot phase is measured on each.
    pub repeat: u32,
    /// Sizes at or below this use one CPU thread for the CPU-first touch (the single-thread
    /// rate); larger sizes use `cpu_threads`. 0: `cpu_threads` everywhere.
    pub cpu_single_max: u64,
    pub caps: Caps,
}

impl SweepOptions {
    /// Threads for the CPU-first touch of `size`.
    pub fn cpu_threads_for(&self, size: u64) -> usize {
        if size <= self.cpu_single_max {
            1
        } else {
            self.cpu_threads.max(1)
        }
    }
}

/// Size caps for costs that are linear in size (the lab sets them from its budget; `sweep` on
/// its own has none). A capped combination is listed as skipped with the reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Caps {
    /// Host-backed strategies (pinned, registered, pageable): pinning.
    pub host_max: Option<u64>,
    /// Managed strategies: migration on first touch.
    pub managed_max: Option<u64>,
    /// The CPU-first variant (CPU faulting, then migration back to the GPU).
    pub cpu_first_max: Option<u64>,
}

/// `--preset seed`: the sizes of the DGX Spark allocation table, GB (1e9 bytes).
pub const SEED_SIZES_GB: &[u64] = &[1, 2, 4, 8, 10, 20, 30, 40, 50, 60, 70, 80];

/// The default sizes for a device: 256 MiB, 1 GiB, 4 GiB, 16 GiB and a quarter of the usable
/// memory (rounded down to 256 MiB), keeping only sizes up to half of the usable memory.
pub fn default_sizes(usable: u64) -> Vec<u64> {
    let quarter = (usable / 4) / (256 * MIB) * (256 * MIB);
    let mut v: Vec<u64> = [256 * MIB, GIB, 4 * GIB, 16 * GIB, quarter]
        .into_iter()
        .filter(|s| *s > 0 && *s <= usable / 2)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GB;

    #[test]
    fn default_sizes_for_an_80gb_card_and_a_unified_host() {
        // H100: about 79 GiB free.
        let h100 = default_sizes(79 * GIB + 300 * MIB);
        assert_eq!(
            h100,
            vec![256 * MIB, GIB, 4 * GIB, 16 * GIB, 19 * GIB + 768 * MIB]
        );
        // GB10-like: MemAvailable + SwapFree about 110 GiB.
        let gb10 = default_sizes(110 * GIB);
        assert_eq!(
            gb10,
            vec![256 * MIB, GIB, 4 * GIB, 16 * GIB, 27 * GIB + 512 * MIB]
        );
        // A 24 GB card keeps only sizes up to half its memory.
        let small = default_sizes(24 * GB);
        assert_eq!(small, vec![256 * MIB, GIB, 4 * GIB, 5 * GIB + 512 * MIB]);
    }
}
