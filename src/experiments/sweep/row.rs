//! The sweep's row ([`SweepRow`]: one struct is the JSON row, the CSV row and the source of the
//! tables) and the accounting snapshot its deltas are taken from. May import `memory` (the
//! strategy type), `host`, `stats` and the experiments' `Gpu`.

use serde::{Deserialize, Serialize};

use super::Phase;
use crate::host::Accounting;
use crate::memory::Strategy;
use crate::stats::Summary;

/// One measurement. The same struct is the JSON row, the CSV row and the source of the tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepRow {
    pub device: i32,
    pub strategy: Strategy,
    pub bytes: u64,
    /// A phase of the protocol, or `alloc:<call>` / `free:<call>` for the steps of one.
    pub phase: Phase,
    pub runs: u32,
    pub ms_median: f64,
    pub ms_min: f64,
    pub ms_max: f64,
    /// Coefficient of variation of the times (0 for single-run phases).
    pub ms_cv: f64,
    /// GB/s (1e9 bytes per second) at the median time: bytes written (fill, memset), read (read),
    /// copied (copy).
    pub gbps: Option<f64>,
    /// Copy only: read plus write traffic, GB/s.
    pub gbps_traffic: Option<f64>,
    /// Touch phases: pages touched, microseconds per page and pages per second.
    pub pages: Option<u64>,
    pub us_per_page: Option<f64>,
    pub pages_per_s: Option<f64>,
    /// CPU touches: threads, and the mean rate of one thread.
    pub threads: Option<u32>,
    pub pages_per_s_per_thread: Option<f64>,
    /// Accounting changes (after minus before), bytes. `alloc`: across the allocation;
    /// `gpu_first_touch`: since before the allocation; `free`: since before the allocation.
    pub delta_device_free_bytes: Option<i64>,
    pub delta_mem_free_bytes: Option<i64>,
    pub delta_mem_available_bytes: Option<i64>,
    pub delta_cached_bytes: Option<i64>,
    pub delta_rss_bytes: Option<i64>,
    /// Change of the free 2 MiB-block supply and of the cgroup's memory.current (same spans),
    /// and PSI full avg10 (percent) at the end of the span.
    #[serde(default)]
    pub delta_free_2m_bytes: Option<i64>,
    #[serde(default)]
    pub delta_cgroup_current_bytes: Option<i64>,
    #[serde(default)]
    pub psi_full_avg10: Option<f64>,
    /// Verify: elements that differed (must be 0), and how they were checked.
    pub mismatches: Option<u64>,
    pub note: Option<String>,
    /// Fresh allocations the samples come from (absent in files written before `--repeat`).
    #[serde(default)]
    pub allocations: Option<u32>,
    /// Every sample, ms: one per fresh allocation for one-shot phases; for bandwidth phases
    /// every timed run, `runs / allocations` per allocation in allocation order. JSON only (CSV
    /// keeps median, min, max, CV and n); absent in older files.
    #[serde(default, skip_serializing_if = "crate::report::sink::in_csv")]
    pub samples_ms: Vec<f64>,
    /// Bandwidth phases: GB/s at each allocation's median time, in allocation order (JSON only).
    #[serde(default, skip_serializing_if = "crate::report::sink::in_csv")]
    pub alloc_gbps: Vec<f64>,
    /// Bandwidth phases: CV of the per-allocation medians (where the memory landed).
    #[serde(default)]
    pub between_alloc_cv: Option<f64>,
    /// Bandwidth phases: mean CV of the runs on one allocation (timing noise).
    #[serde(default)]
    pub within_alloc_cv: Option<f64>,
}

impl SweepRow {
    /// A row with no figures yet.
    pub fn new(device: i32, strategy: Strategy, bytes: u64, phase: Phase) -> SweepRow {
        SweepRow {
            device,
            strategy,
            bytes,
            phase,
            runs: 0,
            ms_median: 0.0,
            ms_min: 0.0,
            ms_max: 0.0,
            ms_cv: 0.0,
            gbps: None,
            gbps_traffic: None,
            pages: None,
            us_per_page: None,
            pages_per_s: None,
            threads: None,
            pages_per_s_per_thread: None,
            delta_device_free_bytes: None,
            delta_mem_free_bytes: None,
            delta_mem_available_bytes: None,
            delta_cached_bytes: None,
            delta_rss_bytes: None,
            delta_free_2m_bytes: None,
            delta_cgroup_current_bytes: None,
            psi_full_avg10: None,
            mismatches: None,
            note: None,
            allocations: None,
            samples_ms: Vec::new(),
            alloc_gbps: Vec::new(),
            between_alloc_cv: None,
            within_alloc_cv: None,
        }
    }

    /// Median, spread and samples of `ms`.
    pub fn times(mut self, ms: &[f64]) -> SweepRow {
        if let Some(s) = Summary::of(ms) {
            self.runs = s.runs;
            self.ms_median = s.median;
            self.ms_min = s.min;
            self.ms_max = s.max;
            self.ms_cv = s.cv;
            self.samples_ms = ms.to_vec();
        }
        self
    }

    /// The times as a [`Summary`] (from the stored fields, so older files work too).
    pub fn summary(&self) -> Summary {
        Summary {
            median: self.ms_median,
            min: self.ms_min,
            max: self.ms_max,
            cv: self.ms_cv,
            runs: self.runs,
        }
    }

    /// Milliseconds per GB (1e9 bytes): median, min and max.
    pub fn ms_per_gb(&self) -> Summary {
        let gb = self.bytes as f64 / 1e9;
        let s = self.summary();
        Summary {
            median: s.median / gb,
            min: s.min / gb,
            max: s.max / gb,
            ..s
        }
    }

    pub fn pages(mut self, pages: u64) -> SweepRow {
        self.pages = Some(pages);
        if self.ms_median > 0.0 && pages > 0 {
            self.us_per_page = Some(self.ms_median * 1e3 / pages as f64);
            self.pages_per_s = Some(pages as f64 / (self.ms_median / 1e3));
        }
        self
    }

    pub(super) fn deltas(mut self, before: &Accounting, after: &Accounting) -> SweepRow {
        let d = |a: u64, b: u64| a as i64 - b as i64;
        self.delta_device_free_bytes =
            Some(d(after.device_free_or_zero(), before.device_free_or_zero()));
        self.delta_mem_free_bytes = Some(d(after.mem_free, before.mem_free));
        self.delta_mem_available_bytes = Some(d(after.mem_available, before.mem_available));
        self.delta_cached_bytes = Some(d(after.cached, before.cached));
        self.delta_rss_bytes = Some(d(after.rss, before.rss));
        let od = |a: Option<u64>, b: Option<u64>| Some(d(a?, b?));
        self.delta_free_2m_bytes = od(after.free_2m, before.free_2m);
        self.delta_cgroup_current_bytes = od(after.cgroup_current, before.cgroup_current);
        self.psi_full_avg10 = after.psi_full_avg10;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sink::to_csv;
    use crate::units::GIB;

    #[test]
    fn one_row_type_to_json_and_csv() {
        let r = SweepRow::new(0, Strategy::Managed, GIB, Phase::GpuFirstTouch)
            .times(&[10.0, 12.0, 11.0])
            .pages(262_144);
        assert_eq!(
            (r.ms_median, r.ms_min, r.ms_max, r.runs),
            (11.0, 10.0, 12.0, 3)
        );
        assert!((r.us_per_page.unwrap() - 11.0 * 1e3 / 262_144.0).abs() < 1e-9);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["strategy"], "managed");
        assert_eq!(j["phase"], "gpu_first_touch");
        let csv = String::from_utf8(to_csv(std::slice::from_ref(&r)).unwrap()).unwrap();
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("device,strategy,bytes,phase,runs,ms_median"));
        let line = lines.next().unwrap();
        assert!(
            line.starts_with("0,managed,1073741824,gpu_first_touch,3,11.0,10.0,12.0,"),
            "{line}"
        );
        let back: SweepRow = csv::Reader::from_reader(csv.as_bytes())
            .deserialize()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(back.pages, r.pages);
        assert_eq!((back.strategy, &back.phase), (Strategy::Managed, &r.phase));
    }
}
