//! What a layout run found, typed: the totals over the allocated set, the fragmentation result,
//! and the summary read back from the rows ([`summarize`]), for the tables, the findings, `lab`
//! and `compare`. Pure arithmetic on rows; imports only the row types.

use serde::{Deserialize, Serialize};

use super::row::{LayoutRow, Moment, Phase, RowData};
use crate::host::Accounting;
use crate::units::MIB;

/// cuMemAlloc's usual granularity for large allocations; the totals say what rounding every
/// tensor up to it would add, beside the overhead measured.
pub const ROUNDING_2MIB: u64 = 2 * MIB;

/// The totals over an allocated set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub tensors: u64,
    pub requested_bytes: u64,
    pub mapped_bytes: u64,
    /// Baseline `cuMemGetInfo` free minus free after the allocations.
    pub device_free_drop_bytes: i64,
    /// Baseline MemAvailable minus MemAvailable after the allocations.
    pub mem_available_drop_bytes: i64,
    /// `device_free_drop_bytes - requested_bytes`.
    pub overhead_bytes: i64,
    /// The overhead as % of the request.
    pub overhead_pct: f64,
    /// What rounding every tensor up to 2 MiB would add.
    pub rounding_2mib_bytes: u64,
}

impl Totals {
    /// From the sizes requested and mapped and the accounting before and after.
    pub fn compute(
        requested: &[u64],
        mapped: &[u64],
        before: &Accounting,
        after: &Accounting,
    ) -> Totals {
        let req: u64 = requested.iter().sum();
        let drop = before.device_free_or_zero() as i64 - after.device_free_or_zero() as i64;
        let overhead = drop - req as i64;
        Totals {
            tensors: requested.len() as u64,
            requested_bytes: req,
            mapped_bytes: mapped.iter().sum(),
            device_free_drop_bytes: drop,
            mem_available_drop_bytes: before.mem_available as i64 - after.mem_available as i64,
            overhead_bytes: overhead,
            overhead_pct: if req > 0 {
                100.0 * overhead as f64 / req as f64
            } else {
                0.0
            },
            rounding_2mib_bytes: requested
                .iter()
                .map(|b| b.div_ceil(ROUNDING_2MIB) * ROUNDING_2MIB - b)
                .sum(),
        }
    }
}

/// The fragmentation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fragmentation {
    pub pattern: String,
    pub freed_tensors: u64,
    pub freed_bytes: u64,
    pub largest_freed_bytes: u64,
    /// `cuMemGetInfo` free and MemAvailable when the search started.
    pub device_free_bytes: u64,
    #[serde(default)]
    pub mem_available_bytes: u64,
    /// The free total: `cuMemGetInfo` free for device and managed memory, MemAvailable for
    /// host memory (`free_total_of` names it).
    #[serde(default)]
    pub free_total_bytes: u64,
    #[serde(default)]
    pub free_total_of: String,
    /// The search's upper bound: the free total within the safety ceiling.
    pub bound_bytes: u64,
    pub resolution_bytes: u64,
    /// The largest single allocation that succeeded.
    pub largest_bytes: u64,
    pub attempts: u32,
    pub reached_bound: bool,
}

impl Fragmentation {
    /// The largest allocation as % of the free total.
    pub fn largest_pct_of_free(&self) -> f64 {
        // Documents written before `free_total_bytes` existed measured device memory only.
        let total = if self.free_total_bytes > 0 {
            self.free_total_bytes
        } else {
            self.device_free_bytes
        };
        if total == 0 {
            0.0
        } else {
            100.0 * self.largest_bytes as f64 / total as f64
        }
    }
}

/// What the rows of one run say, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LayoutSummary {
    /// Tensors allocated (alloc rows).
    pub allocated: u64,
    /// Tensors freed at the end (cleanup rows) plus those the pattern freed.
    pub freed: u64,
    pub totals: Option<Totals>,
    pub fragmentation: Option<Fragmentation>,
    /// `cuMemGetInfo` free at the baseline and after cleanup.
    pub baseline_device_free_bytes: Option<u64>,
    pub after_cleanup_device_free_bytes: Option<u64>,
    /// Baseline free minus free after cleanup: what the run left behind (noise aside).
    pub residual_bytes: Option<i64>,
}

/// Reads the typed summary back from the rows (of a run, or of a result file).
pub fn summarize(rows: &[LayoutRow]) -> LayoutSummary {
    let count = |ph: Phase| rows.iter().filter(|r| r.phase() == ph).count() as u64;
    let snap = |m: Moment| {
        rows.iter().find_map(|r| match &r.data {
            RowData::Snapshot(s) if s.moment == m => Some(s.device_free_bytes),
            _ => None,
        })
    };
    let base = snap(Moment::Baseline);
    let end = snap(Moment::AfterCleanup);
    LayoutSummary {
        allocated: count(Phase::Alloc),
        freed: count(Phase::Free) + count(Phase::Cleanup),
        totals: rows.iter().find_map(|r| match &r.data {
            RowData::Total(t) => Some(*t),
            _ => None,
        }),
        fragmentation: rows.iter().find_map(|r| match &r.data {
            RowData::Fragmentation(f) => Some(f.clone()),
            _ => None,
        }),
        baseline_device_free_bytes: base,
        after_cleanup_device_free_bytes: end,
        residual_bytes: match (base, end) {
            (Some(b), Some(e)) => Some(b as i64 - e as i64),
            _ => None,
        },
    }
}

/// A finished run, for callers that want it in memory (`lab`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayoutReport {
    pub rows: Vec<LayoutRow>,
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
    pub summary: LayoutSummary,
    /// Ctrl-C or SIGTERM arrived: everything was freed and the rows so far are here.
    pub interrupted: bool,
}
