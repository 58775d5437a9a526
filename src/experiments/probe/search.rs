//! The two searches of a probe, pure over two callbacks (the limit now, one attempt) so they are
//! tested without a GPU against simulated allocators: [`bisect`] (the largest single allocation,
//! approached from below) and [`accumulate`] (chunks held at once), with what bounds them
//! ([`Limit`], [`Bound`]) and why they stop ([`StopReason`]). Imports `units` and the
//! experiments' interrupt flag only.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::experiments::interrupted;
use crate::units::{MIB, fmt_bytes};

/// Every size tried is a multiple of this (the usual VMM granularity, a multiple of every page).
pub const ALIGN_BYTES: u64 = 2 * MIB;

/// What bounds a search when no allocation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The safety ceiling of [`crate::memory::safety::Budget`].
    SafetyCeiling,
    /// `--max` (or its default for host-backed strategies on discrete GPUs).
    MaxCap,
    /// `--force`: the card's total memory or MemTotal.
    Physical,
}

/// The most the next request may take, and what sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub bound: Bound,
}

/// Why a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An allocation failed with out-of-memory: the figure is what the system really gives.
    Failure,
    /// Everything tried fit; the next step would pass the safety ceiling.
    SafetyCeiling,
    /// Everything tried fit; the next step would pass `--max`.
    MaxCap,
    /// Everything tried fit up to the physical bound (`--force`).
    Physical,
    /// Ctrl-C: the figure is a lower bound.
    Interrupted,
    /// The ceiling leaves less than one aligned step: nothing was tried.
    NothingAllowed,
}

impl StopReason {
    pub(super) fn from_bound(b: Bound) -> StopReason {
        match b {
            Bound::SafetyCeiling => StopReason::SafetyCeiling,
            Bound::MaxCap => StopReason::MaxCap,
            Bound::Physical => StopReason::Physical,
        }
    }

    /// A short phrase for tables.
    pub fn phrase(self) -> &'static str {
        match self {
            StopReason::Failure => "failure (out of memory)",
            StopReason::SafetyCeiling => "safety ceiling, not a failure",
            StopReason::MaxCap => "--max cap, not a failure",
            StopReason::Physical => "physical size (--force), not a failure",
            StopReason::Interrupted => "interrupted (lower bound)",
            StopReason::NothingAllowed => "nothing allowed by the ceiling",
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Fit,
    /// `CUDA_ERROR_OUT_OF_MEMORY` (or `ENOMEM` from `mmap`), with the failed call's message.
    OutOfMemory(String),
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub max_bytes: u64,
    pub attempts: u32,
    pub failures: u32,
    pub stop: StopReason,
    /// The limit in force when the search ended.
    pub limit: Limit,
    /// Single: the smallest size that failed; cumulative: the total that the failing chunk would
    /// have made.
    pub first_failure_bytes: Option<u64>,
    pub failure: Option<String>,
    /// Every size tried with its outcome, in order.
    pub tried: Vec<(u64, bool)>,
}

impl Search {
    pub(super) fn new(limit: Limit) -> Search {
        Search {
            max_bytes: 0,
            attempts: 0,
            failures: 0,
            stop: StopReason::NothingAllowed,
            limit,
            first_failure_bytes: None,
            failure: None,
            tried: Vec::new(),
        }
    }

    fn record(&mut self, bytes: u64, outcome: &Attempt) {
        self.attempts += 1;
        self.tried.push((bytes, *outcome == Attempt::Fit));
        if let Attempt::OutOfMemory(msg) = outcome {
            self.failures += 1;
            if self.first_failure_bytes.is_none_or(|f| bytes < f) {
                self.first_failure_bytes = Some(bytes);
                self.failure = Some(msg.clone());
            }
        }
    }

    /// `256 MiB ok, 79.75 GiB oom, ...`.
    pub fn tried_text(&self) -> String {
        self.tried
            .iter()
            .map(|(b, ok)| format!("{} {}", fmt_bytes(*b), if *ok { "ok" } else { "oom" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `bytes` rounded down to [`ALIGN_BYTES`].
pub(super) fn align_down(bytes: u64) -> u64 {
    bytes / ALIGN_BYTES * ALIGN_BYTES
}

/// The largest single allocation: verifies a floor (the resolution, or the limit when smaller),
/// tries one resolution step under the limit (the limit itself when it is a `--max` cap), then
/// bisects between the largest size that fit and the smallest that failed (or the limit) until
/// they are at most `resolution` apart. `limit` is called before every attempt; a limit that
/// falls below the upper end replaces it, and no attempt ever exceeds the limit of that moment.
pub fn bisect(
    resolution: u64,
    mut limit: impl FnMut() -> Result<Limit>,
    mut attempt: impl FnMut(u64) -> Result<Attempt>,
) -> Result<Search> {
    let resolution = resolution.max(ALIGN_BYTES);
    let first = limit()?;
    let mut s = Search::new(first);
    let floor = align_down(resolution.min(first.bytes));
    if floor == 0 {
        return Ok(s);
    }
    if interrupted() {
        s.stop = StopReason::Interrupted;
        return Ok(s);
    }
    let out = attempt(floor)?;
    s.record(floor, &out);
    if out != Attempt::Fit {
        s.stop = StopReason::Failure;
        return Ok(s);
    }
    let mut lo = floor;
    let mut hi = align_down(first.bytes);
    let mut hi_fails = false;
    let guess = match first.bound {
        Bound::MaxCap => hi,
        _ => align_down(first.bytes.saturating_sub(resolution)),
    };
    let mut next = (guess > lo).then_some(guess);
    loop {
        let size = match next.take() {
            Some(g) => g,
            None => {
                if hi <= lo.saturating_add(resolution) {
                    break;
                }
                let mid = align_down(lo + (hi - lo) / 2);
                if mid <= lo {
                    break;
                }
                mid
            }
        };
        if interrupted() {
            s.max_bytes = lo;
            s.stop = StopReason::Interrupted;
            return Ok(s);
        }
        let now = limit()?;
        let now_bytes = align_down(now.bytes);
        if now_bytes < hi {
            hi = now_bytes;
            hi_fails = false;
            s.limit = now;
        }
        if size > now_bytes {
            continue;
        }
        let out = attempt(size)?;
        s.record(size, &out);
        if out == Attempt::Fit {
            lo = size;
        } else {
            hi = size;
            hi_fails = true;
        }
    }
    s.max_bytes = lo;
    s.stop = if hi_fails {
        StopReason::Failure
    } else {
        StopReason::from_bound(s.limit.bound)
    };
    Ok(s)
}

/// The cumulative maximum: adds chunks of `chunk` bytes while `limit(held)` (the most the next
/// chunk may take, given what is held) allows a whole chunk, until one fails. The caller owns
/// the chunks `add` made and frees them afterwards. The limit reported is a total (what was held
/// plus what the next chunk could take).
pub fn accumulate(
    chunk: u64,
    mut limit: impl FnMut(u64) -> Result<Limit>,
    mut add: impl FnMut(u64) -> Result<Attempt>,
) -> Result<Search> {
    let first = limit(0)?;
    let mut s = Search::new(first);
    let mut held = 0u64;
    loop {
        if interrupted() {
            s.stop = StopReason::Interrupted;
            break;
        }
        let lim = if held == 0 { first } else { limit(held)? };
        // Reported as a total: what is held plus what the next chunk could have taken.
        s.limit = Limit {
            bytes: held.saturating_add(lim.bytes),
            bound: lim.bound,
        };
        if chunk == 0 || chunk > lim.bytes {
            s.stop = if held == 0 {
                StopReason::NothingAllowed
            } else {
                StopReason::from_bound(lim.bound)
            };
            break;
        }
        let out = add(chunk)?;
        s.attempts += 1;
        s.tried.push((held + chunk, out == Attempt::Fit));
        match out {
            Attempt::Fit => held += chunk,
            Attempt::OutOfMemory(msg) => {
                s.failures += 1;
                s.first_failure_bytes = Some(held + chunk);
                s.failure = Some(msg);
                s.stop = StopReason::Failure;
                break;
            }
        }
    }
    s.max_bytes = held;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::chunk_limit;
    use super::*;
    use crate::units::GIB;

    /// A simulated allocator: a single allocation fits up to `max`, and the ceiling is `ceiling`.
    struct Sim {
        max: u64,
        tried: Vec<u64>,
    }

    fn lim(bytes: u64, bound: Bound) -> Limit {
        Limit { bytes, bound }
    }

    fn sim_bisect(max: u64, ceiling: u64, bound: Bound, res: u64) -> (Search, Vec<u64>) {
        let mut sim = Sim {
            max,
            tried: Vec::new(),
        };
        let s = bisect(
            res,
            || Ok(lim(ceiling, bound)),
            |b| {
                sim.tried.push(b);
                Ok(if b <= sim.max {
                    Attempt::Fit
                } else {
                    Attempt::OutOfMemory("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY".into())
                })
            },
        )
        .unwrap();
        (s, sim.tried)
    }

    #[test]
    fn bisection_finds_a_failure_to_the_resolution_and_never_passes_the_limit() {
        let res = 256 * MIB;
        // An 80 GiB card whose allocator gives 77.3 GiB, probed with --force (physical bound).
        let max = 77 * GIB + 300 * MIB;
        let (s, tried) = sim_bisect(max, 80 * GIB, Bound::Physical, res);
        assert_eq!(s.stop, StopReason::Failure);
        assert!(s.max_bytes <= max && max - s.max_bytes <= res, "{s:?}");
        let fail = s.first_failure_bytes.unwrap();
        assert!(fail > max && fail - s.max_bytes <= res, "{s:?}");
        assert!(tried.iter().all(|b| *b <= 80 * GIB && b % ALIGN_BYTES == 0));
        assert_eq!(tried[0], res, "the floor is verified first");
        assert_eq!(tried[1], 80 * GIB - res, "then one step under the limit");
        // log2(80 GiB / 256 MiB) ~ 8.3: about ten attempts, not hundreds.
        assert!(s.attempts <= 12, "{} attempts: {tried:?}", s.attempts);
        assert_eq!(s.attempts as usize, tried.len());
        assert!(s.failure.as_deref().unwrap().contains("OUT_OF_MEMORY"));
    }

    #[test]
    fn bisection_that_fits_everywhere_stops_at_the_ceiling_in_two_attempts() {
        let (s, tried) = sim_bisect(u64::MAX, 79 * GIB, Bound::SafetyCeiling, 256 * MIB);
        assert_eq!(s.stop, StopReason::SafetyCeiling);
        assert_eq!(s.max_bytes, 79 * GIB - 256 * MIB);
        assert_eq!(tried, vec![256 * MIB, 79 * GIB - 256 * MIB]);
        assert_eq!(s.failures, 0);
        // Within 2% of the ceiling (what the GPU test asserts of `device` on a discrete card).
        assert!((79 * GIB - s.max_bytes) as f64 / (79 * GIB) as f64 <= 0.02);
        // A --max cap is tried exactly.
        let (s, tried) = sim_bisect(u64::MAX, 32 * GIB, Bound::MaxCap, 256 * MIB);
        assert_eq!((s.stop, s.max_bytes), (StopReason::MaxCap, 32 * GIB));
        assert_eq!(tried, vec![256 * MIB, 32 * GIB]);
    }

    #[test]
    fn bisection_edge_cases() {
        // The floor fails: nothing fits.
        let (s, _) = sim_bisect(100 * MIB, 10 * GIB, Bound::SafetyCeiling, 256 * MIB);
        assert_eq!(
            (s.stop, s.max_bytes, s.attempts),
            (StopReason::Failure, 0, 1)
        );
        // A ceiling below one alignment step: nothing tried.
        let (s, tried) = sim_bisect(u64::MAX, MIB, Bound::SafetyCeiling, 256 * MIB);
        assert_eq!((s.stop, s.max_bytes), (StopReason::NothingAllowed, 0));
        assert!(tried.is_empty());
        // A ceiling under the resolution: one attempt at the ceiling.
        let (s, tried) = sim_bisect(u64::MAX, 100 * MIB, Bound::SafetyCeiling, 256 * MIB);
        assert_eq!(tried, vec![100 * MIB]);
        assert_eq!(
            (s.stop, s.max_bytes),
            (StopReason::SafetyCeiling, 100 * MIB)
        );
    }

    #[test]
    fn bisection_follows_a_falling_ceiling() {
        // The ceiling falls by 10 GiB after the first attempts (another process took memory):
        // nothing above the ceiling of the moment is ever tried.
        let mut calls = 0;
        let mut ceilings = Vec::new();
        let mut tried = Vec::new();
        let s = bisect(
            256 * MIB,
            || {
                calls += 1;
                let c = if calls <= 2 { 60 * GIB } else { 50 * GIB };
                ceilings.push(c);
                Ok(lim(c, Bound::SafetyCeiling))
            },
            |b| {
                tried.push(b);
                Ok(if b <= 55 * GIB {
                    Attempt::Fit
                } else {
                    Attempt::OutOfMemory("oom".into())
                })
            },
        )
        .unwrap();
        assert!(tried.iter().skip(2).all(|b| *b <= 50 * GIB), "{tried:?}");
        assert_eq!(s.stop, StopReason::SafetyCeiling);
        assert!(s.max_bytes <= 50 * GIB && 50 * GIB - s.max_bytes <= 256 * MIB);
        assert_eq!(s.limit.bytes, 50 * GIB);
    }

    #[test]
    fn accumulation_stops_at_failure_or_limit() {
        // A card with 10.5 GiB that fails the 11th 1 GiB chunk.
        let mut held = 0u64;
        let s = accumulate(
            GIB,
            |h| {
                Ok(chunk_limit(
                    lim(80 * GIB, Bound::SafetyCeiling),
                    lim(80 * GIB, Bound::SafetyCeiling),
                    None,
                    h,
                ))
            },
            |b| {
                Ok(if held + b <= 10 * GIB + GIB / 2 {
                    held += b;
                    Attempt::Fit
                } else {
                    Attempt::OutOfMemory("oom".into())
                })
            },
        )
        .unwrap();
        assert_eq!((s.stop, s.max_bytes), (StopReason::Failure, 10 * GIB));
        // The limit is a total: what was held plus what the next chunk could take.
        assert_eq!(s.limit.bytes, 80 * GIB);
        assert_eq!(s.first_failure_bytes, Some(11 * GIB));
        assert_eq!((s.attempts, s.failures), (11, 1));
        // A unified host whose ceiling falls as memory is taken (MemAvailable drops by what is
        // held): stops at the ceiling with what fits.
        let start = lim(20 * GIB + 512 * MIB, Bound::SafetyCeiling);
        let s = accumulate(
            GIB,
            |h| {
                let now = lim(20 * GIB + 512 * MIB - h, Bound::SafetyCeiling);
                Ok(chunk_limit(now, start, None, h))
            },
            |_| Ok(Attempt::Fit),
        )
        .unwrap();
        assert_eq!((s.stop, s.max_bytes), (StopReason::SafetyCeiling, 20 * GIB));
        assert_eq!(s.limit.bytes, 20 * GIB + 512 * MIB);
        // A cap.
        let s = accumulate(
            GIB,
            |h| {
                Ok(chunk_limit(
                    lim(100 * GIB, Bound::SafetyCeiling),
                    lim(100 * GIB, Bound::SafetyCeiling),
                    Some(32 * GIB),
                    h,
                ))
            },
            |_| Ok(Attempt::Fit),
        )
        .unwrap();
        assert_eq!(
            (s.stop, s.max_bytes, s.attempts),
            (StopReason::MaxCap, 32 * GIB, 32)
        );
        assert_eq!(s.limit, lim(32 * GIB, Bound::MaxCap));
    }

    #[test]
    fn untouched_managed_chunks_are_bounded_by_the_start() {
        // Device free does not fall for untouched managed memory: the start ceiling less what is
        // held still bounds the total.
        let free = lim(10 * GIB, Bound::SafetyCeiling);
        let l = chunk_limit(free, free, None, 9 * GIB);
        assert_eq!(l.bytes, GIB);
        let l = chunk_limit(free, free, None, 10 * GIB);
        assert_eq!(l.bytes, 0);
        // Whichever is smaller binds, with its reason.
        let l = chunk_limit(free, free, Some(9 * GIB + GIB / 2), 9 * GIB);
        assert_eq!((l.bytes, l.bound), (GIB / 2, Bound::MaxCap));
    }
}
