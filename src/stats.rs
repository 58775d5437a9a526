//! Summary statistics of repeated measurements: median, min, max and coefficient of variation;
//! the rule that decides when one set of samples is slower than another; and the split of a
//! bandwidth's spread into the part between fresh allocations and the part between runs on one.
//! First-run costs are measured as phases of their own (each over fresh allocations) and never
//! pass through here mixed with warm runs.
//!
//! Written by hand: these are a few lines of arithmetic on small sample sets (n of 3 to 10), and
//! the comparison rule is deliberately the simplest one a reader can check by eye (ranges that do
//! not overlap), not a significance test a crate would provide.

use serde::{Deserialize, Serialize};

/// Median, spread and count of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Sample standard deviation over the mean (0 for a single sample).
    pub cv: f64,
    pub runs: u32,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none or one is not finite.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let mean = v.iter().sum::<f64>() / n as f64;
        let cv = if n < 2 || mean == 0.0 {
            0.0
        } else {
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            var.sqrt() / mean.abs()
        };
        Some(Summary {
            median,
            min: v[0],
            max: v[n - 1],
            cv,
            runs: n as u32,
        })
    }

    /// One sample (first-touch phases).
    pub fn single(v: f64) -> Summary {
        Summary {
            median: v,
            min: v,
            max: v,
            cv: 0.0,
            runs: 1,
        }
    }
}

/// A phase whose coefficient of variation is above this (10%) is flagged unstable in findings.
pub const UNSTABLE_CV: f64 = 0.10;

/// How a set of samples `a` compares with a set `b` (larger values are slower times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Every sample of `a` is above every sample of `b`.
    Above,
    /// Every sample of `a` is below every sample of `b`.
    Below,
    /// The ranges overlap (or a side has no samples): no order is claimed.
    Overlap,
}

/// The rule every finding uses: `a` is above `b` only when min(a) > max(b), below only when
/// max(a) < min(b); otherwise the two are indistinguishable at these sample counts.
pub fn order(a: &Summary, b: &Summary) -> Order {
    if a.runs == 0 || b.runs == 0 {
        Order::Overlap
    } else if a.min > b.max {
        Order::Above
    } else if a.max < b.min {
        Order::Below
    } else {
        Order::Overlap
    }
}

/// `median [min-max]` with `decimals` digits; just the median for a single sample.
pub fn fmt_spread(s: &Summary, decimals: usize) -> String {
    if s.runs <= 1 {
        format!("{:.*}", decimals, s.median)
    } else {
        format!(
            "{:.*} [{:.*}-{:.*}]",
            decimals, s.median, decimals, s.min, decimals, s.max
        )
    }
}

/// The spread of a bandwidth measured on several fresh allocations, several runs on each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacementSplit {
    /// CV of the per-allocation medians: where the memory landed.
    pub between_cv: f64,
    /// Mean of the per-allocation CVs: timing noise on one allocation.
    pub within_cv: f64,
    pub allocations: u32,
}

/// Splits the spread of `groups` (one group of run times per allocation); `None` with fewer than
/// two groups or a group without samples.
pub fn placement_split(groups: &[Vec<f64>]) -> Option<PlacementSplit> {
    if groups.len() < 2 {
        return None;
    }
    let each: Option<Vec<Summary>> = groups.iter().map(|g| Summary::of(g)).collect();
    let each = each?;
    let medians: Vec<f64> = each.iter().map(|s| s.median).collect();
    let between = Summary::of(&medians)?;
    Some(PlacementSplit {
        between_cv: between.cv,
        within_cv: each.iter().map(|s| s.cv).sum::<f64>() / each.len() as f64,
        allocations: groups.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_and_spread() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert!((s.cv - 0.5).abs() < 1e-12); // sd 1, mean 2
        assert_eq!(Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        assert_eq!(Summary::of(&[5.0]).unwrap().cv, 0.0);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn order_needs_ranges_that_do_not_overlap() {
        let a = Summary::of(&[10.0, 11.0, 12.0]).unwrap();
        let b = Summary::of(&[5.0, 6.0, 9.9]).unwrap();
        assert_eq!(order(&a, &b), Order::Above);
        assert_eq!(order(&b, &a), Order::Below);
        let c = Summary::of(&[9.0, 10.5, 20.0]).unwrap();
        assert_eq!(order(&a, &c), Order::Overlap);
        assert_eq!(order(&a, &Summary::default()), Order::Overlap);
        assert_eq!(fmt_spread(&a, 2), "11.00 [10.00-12.00]");
        assert_eq!(fmt_spread(&Summary::single(1.5), 1), "1.5");
    }

    #[test]
    fn placement_split_separates_allocations_from_runs() {
        // Runs on one allocation agree to 1%; the allocations differ by about 10%.
        let g = vec![
            vec![1.00, 1.01, 0.99],
            vec![1.10, 1.11, 1.09],
            vec![1.20, 1.21, 1.19],
        ];
        let s = placement_split(&g).unwrap();
        assert!((s.between_cv - 0.1 / 1.1).abs() < 1e-9, "{s:?}");
        assert!(s.within_cv < 0.011 && s.within_cv > 0.008, "{s:?}");
        assert_eq!(s.allocations, 3);
        assert!(placement_split(&g[..1]).is_none());
        assert!(placement_split(&[vec![1.0], vec![]]).is_none());
    }
}
