//! The samples of one (strategy, size) over its fresh allocations ([`Acc`]) and how they become
//! rows: one row per phase with every sample, accounting deltas around the first allocation,
//! the bandwidth spread split between allocations and runs. Pure (no GPU): imports the row
//! types, `memory::Strategy`, `stats` and `units`.

use super::{Phase, SweepRow};
use crate::host::Accounting;
use crate::memory::Strategy;
use crate::stats::{Summary, placement_split};
use crate::units::gbps;

/// The samples of one (strategy, size) gathered over its fresh allocations, turned into rows at
/// the end (so every row carries all of its samples).
#[derive(Default)]
pub(super) struct Acc {
    /// One-shot phases (and `alloc:<step>` / `free:<step>`), in first-seen order: one sample per
    /// fresh allocation.
    pub one_shot: Vec<(Phase, Vec<f64>)>,
    /// Bandwidth phases: one group of timed runs per allocation.
    pub bandwidth: Vec<(Phase, Vec<Vec<f64>>)>,
    /// Accounting around the first allocation: before, after alloc, after first touch, after free.
    pub before: Option<Accounting>,
    pub after_alloc: Option<Accounting>,
    pub after_touch: Option<Accounting>,
    pub after_free: Option<Accounting>,
    pub alloc_note: Option<String>,
    pub pages: u64,
    /// Pages the CPU touch wrote (its own count).
    pub cpu_pages: u64,
    pub cpu_threads: Option<usize>,
    pub cpu_pages_per_s_per_thread: Vec<f64>,
    pub mismatches: Option<u64>,
    pub verify_note: Option<String>,
}

impl Acc {
    /// One sample of a one-shot phase.
    pub fn one(&mut self, phase: Phase, ms: f64) {
        match self.one_shot.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, v)) => v.push(ms),
            None => self.one_shot.push((phase, vec![ms])),
        }
    }

    /// The timed runs of a bandwidth phase on one allocation.
    pub fn group(&mut self, phase: Phase, runs: Vec<f64>) {
        match self.bandwidth.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, v)) => v.push(runs),
            None => self.bandwidth.push((phase, vec![runs])),
        }
    }

    /// The rows, in protocol order.
    pub fn rows(self, dev: i32, st: Strategy, size: u64) -> Vec<SweepRow> {
        let mut out = Vec::new();
        let mut one_shot = self.one_shot;
        one_shot.sort_by_key(|(p, _)| p.rank());
        for (ph, ms) in one_shot {
            let is_free = ph == Phase::Free;
            let mut r = SweepRow::new(dev, st, size, ph.clone()).times(&ms);
            r.allocations = Some(ms.len() as u32);
            let between = |a: &Option<Accounting>, b: &Option<Accounting>| a.zip(*b);
            match ph {
                Phase::Alloc => {
                    if let Some((b, a)) = between(&self.before, &self.after_alloc) {
                        r = r.deltas(&b, &a);
                    }
                    r.note = self.alloc_note.clone();
                }
                Phase::GpuFirstTouch => {
                    r = r.pages(self.pages);
                    if let Some((b, a)) = between(&self.before, &self.after_touch) {
                        r = r.deltas(&b, &a);
                    }
                }
                Phase::GpuSecondTouch | Phase::GpuTouchAfterCpu => r = r.pages(self.pages),
                Phase::CpuFirstTouch => {
                    r = r.pages(self.cpu_pages);
                    r.threads = self.cpu_threads.map(|t| t as u32);
                    r.pages_per_s_per_thread =
                        Summary::of(&self.cpu_pages_per_s_per_thread).map(|s| s.median);
                }
                Phase::Free => {
                    if let Some((b, a)) = between(&self.before, &self.after_free) {
                        r = r.deltas(&b, &a);
                    }
                }
                Phase::Prefetch => r.gbps = Some(gbps(size, r.ms_median)),
                _ => {}
            }
            if is_free && let Some(bad) = self.mismatches {
                let mut v = SweepRow::new(dev, st, size, Phase::Verify);
                v.mismatches = Some(bad);
                v.note = self.verify_note.clone();
                out.push(v);
            }
            out.push(r);
        }
        for (ph, groups) in self.bandwidth {
            let all: Vec<f64> = groups.iter().flatten().copied().collect();
            let bytes = match ph {
                Phase::CopyBaseline => size / 2 / 16 * 16,
                Phase::MemsetBaseline => size / 4 * 4,
                _ => size,
            };
            let is_copy = ph == Phase::CopyBaseline;
            let mut r = SweepRow::new(dev, st, bytes, ph).times(&all);
            r.gbps = Some(gbps(bytes, r.ms_median));
            r.allocations = Some(groups.len() as u32);
            r.alloc_gbps = groups
                .iter()
                .filter_map(|g| Summary::of(g).map(|s| gbps(bytes, s.median)))
                .collect();
            if let Some(split) = placement_split(&groups) {
                r.between_alloc_cv = Some(split.between_cv);
                r.within_alloc_cv = Some(split.within_cv);
            }
            if is_copy {
                r.gbps_traffic = Some(gbps(2 * bytes, r.ms_median));
                r.note = Some(
                    "bytes = bytes copied (first half onto second half of the device buffer)"
                        .into(),
                );
            }
            out.push(r);
        }
        out.sort_by_key(|r| r.phase.rank());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

    #[test]
    fn three_allocations_become_rows_with_their_samples() {
        let snap = |device_free: u64| Accounting {
            device_free: Some(device_free),
            ..Default::default()
        };
        let mut acc = Acc {
            pages: 1024,
            cpu_pages: 1024,
            before: Some(snap(10 * GIB)),
            after_alloc: Some(snap(9 * GIB)),
            after_touch: Some(snap(9 * GIB)),
            after_free: Some(snap(10 * GIB)),
            mismatches: Some(0),
            ..Default::default()
        };
        for (i, ms) in [1.0, 3.0, 2.0].into_iter().enumerate() {
            acc.one(Phase::Alloc, ms);
            acc.one(Phase::AllocStep("cuMemCreate".into()), ms / 2.0);
            acc.one(Phase::GpuFirstTouch, 10.0 * ms);
            acc.group(Phase::Fill, vec![1.0 + i as f64, 1.01 + i as f64]);
            acc.one(Phase::Free, 0.5);
        }
        let rows = acc.rows(0, Strategy::Vmm, GIB);
        let phases: Vec<String> = rows.iter().map(|r| r.phase.to_string()).collect();
        assert_eq!(
            phases,
            [
                "alloc",
                "alloc:cuMemCreate",
                "gpu_first_touch",
                "fill",
                "verify",
                "free"
            ]
        );
        let alloc = &rows[0];
        assert_eq!(alloc.samples_ms, [1.0, 3.0, 2.0]);
        assert_eq!((alloc.runs, alloc.allocations), (3, Some(3)));
        assert_eq!(
            (alloc.ms_median, alloc.ms_min, alloc.ms_max),
            (2.0, 1.0, 3.0)
        );
        assert_eq!(alloc.delta_device_free_bytes, Some(-(GIB as i64)));
        assert_eq!(rows[2].pages, Some(1024));
        let fill = &rows[3];
        assert_eq!((fill.runs, fill.allocations), (6, Some(3)));
        assert_eq!(fill.alloc_gbps.len(), 3);
        assert!(
            fill.alloc_gbps[0] > fill.alloc_gbps[2],
            "{:?}",
            fill.alloc_gbps
        );
        let (b, w) = (
            fill.between_alloc_cv.unwrap(),
            fill.within_alloc_cv.unwrap(),
        );
        assert!(b > 0.3 && w < 0.01, "between {b}, within {w}");
        assert_eq!(rows[4].mismatches, Some(0));
        assert_eq!(rows[5].delta_device_free_bytes, Some(0));
    }
}
