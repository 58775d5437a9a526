//! CPU-side access to host-accessible allocations: the CPU first touch (one write per page, split
//! over threads, each timed) and a sampled CPU check of the data pattern. Volatile accesses (the
//! driver layer's `write_volatile`/`read_volatile`), so the compiler can neither drop nor merge the
//! touches being measured.
//!
//! Imports: the driver's pattern mirror and volatile accesses.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::driver::{host_pattern_byte, host_pattern_word, read_volatile, write_volatile};

/// What a CPU touch took.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CpuTouch {
    /// Wall time of the whole touch, ms.
    pub ms: f64,
    pub pages: u64,
    pub threads: usize,
    /// Each thread's own time, ms.
    pub thread_ms: Vec<f64>,
}

impl CpuTouch {
    /// Pages per second over all threads.
    pub fn pages_per_s(&self) -> f64 {
        if self.ms > 0.0 {
            self.pages as f64 / (self.ms / 1e3)
        } else {
            0.0
        }
    }

    /// Mean pages per second of one thread.
    pub fn pages_per_s_per_thread(&self) -> f64 {
        let per: Vec<f64> = self
            .thread_ms
            .iter()
            .map(|ms| {
                if *ms > 0.0 {
                    (self.pages as f64 / self.threads as f64) / (ms / 1e3)
                } else {
                    0.0
                }
            })
            .collect();
        if per.is_empty() {
            0.0
        } else {
            per.iter().sum::<f64>() / per.len() as f64
        }
    }
}

/// Writes `value` into the first word of every `stride`-byte page of `mem` (one byte where fewer
/// than 4 remain), with `threads` threads over contiguous page ranges.
pub fn cpu_touch(mem: &mut [u8], stride: u64, value: u32, threads: usize) -> CpuTouch {
    let stride = stride.max(4) as usize;
    let pages = mem.len().div_ceil(stride);
    let threads = threads.clamp(1, pages.max(1));
    let per = pages.div_ceil(threads);
    let t0 = Instant::now();
    let thread_ms = std::thread::scope(|s| {
        let handles: Vec<_> = mem
            .chunks_mut(per * stride)
            .map(|chunk| {
                s.spawn(move || {
                    let t = Instant::now();
                    let mut off = 0;
                    while off < chunk.len() {
                        if off + 4 <= chunk.len() {
                            write_volatile(chunk, off, &value.to_le_bytes());
                        } else {
                            write_volatile(chunk, off, &[value as u8]);
                        }
                        off += stride;
                    }
                    t.elapsed().as_secs_f64() * 1e3
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(f64::NAN))
            .collect::<Vec<f64>>()
    });
    CpuTouch {
        ms: t0.elapsed().as_secs_f64() * 1e3,
        pages: pages as u64,
        threads: thread_ms.len(),
        thread_ms,
    }
}

/// Reads up to `samples` words spread evenly over `mem` (plus the last byte) and counts those
/// that differ from the pattern of `seed`. Returns (checked, mismatches).
pub fn cpu_sample_check(mem: &[u8], seed: u32, samples: u64) -> (u64, u64) {
    let words = (mem.len() / 16 * 4) as u64; // the 16-byte part, as the kernels see it
    let mut checked = 0;
    let mut bad = 0;
    if words > 0 {
        let step = (words / samples.max(1)).max(1);
        let mut w = 0;
        while w < words {
            let off = (w * 4) as usize;
            let mut b = [0u8; 4];
            for (i, x) in b.iter_mut().enumerate() {
                // off + i < 16 * (len / 16) <= len: always inside.
                *x = read_volatile(mem, off + i).unwrap_or(0);
            }
            checked += 1;
            bad += u64::from(u32::from_le_bytes(b) != host_pattern_word(w, seed));
            w += step;
        }
    }
    if let Some(last) = mem.len().checked_sub(1)
        && last >= mem.len() / 16 * 16
    {
        checked += 1;
        bad += u64::from(mem[last] != host_pattern_byte(last as u64, seed));
    }
    (checked, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_writes_one_word_per_page_over_threads() {
        let mut buf = vec![0u8; 4096 * 10 + 2];
        let t = cpu_touch(&mut buf, 4096, 0xAABBCCDD, 3);
        assert_eq!(t.pages, 11);
        assert_eq!(t.threads, 3);
        for p in 0..10 {
            assert_eq!(&buf[p * 4096..p * 4096 + 4], &0xAABBCCDDu32.to_le_bytes());
            assert!(buf[p * 4096 + 4..(p + 1) * 4096].iter().all(|b| *b == 0));
        }
        assert_eq!(buf[40960], 0xDD);
        assert_eq!(buf[40961], 0);
        assert!(t.pages_per_s() > 0.0);
    }

    #[test]
    fn sample_check_sees_a_wrong_word() {
        let seed = 99;
        let mut buf: Vec<u8> = (0..1000u64).map(|k| host_pattern_byte(k, seed)).collect();
        assert_eq!(cpu_sample_check(&buf, seed, 1000), (249, 0)); // 62 vectors x 4 words + last byte
        buf[400] ^= 1;
        assert_eq!(cpu_sample_check(&buf, seed, 1000).1, 1);
        assert!(cpu_sample_check(&buf, seed ^ 5, 10).1 > 0);
    }
}
