//! Summary statistics of repeated measurements: median, min, max and coefficient of variation.
//! First-run costs are measured as phases of their own by the experiments and never pass through
//! here with the warm runs.

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
}
