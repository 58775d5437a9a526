//! `/proc/meminfo`, parsed into bytes. The fields the tool reasons with (MemAvailable, Cached,
//! SwapFree...) are named; the rest are kept by name for reports. On GB10 these numbers are also
//! the GPU's memory: `cuMemGetInfo`'s free equals MemFree there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A snapshot of `/proc/meminfo` in bytes (the file says kB and means KiB).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemInfo {
    pub mem_total: u64,
    pub mem_free: u64,
    pub mem_available: u64,
    pub buffers: u64,
    pub cached: u64,
    pub s_reclaimable: u64,
    pub shmem: u64,
    pub dirty: u64,
    pub swap_total: u64,
    pub swap_free: u64,
    pub hugepages_total: u64,
    pub hugepages_free: u64,
    pub hugepage_size: u64,
    /// `Hugetlb`: all memory taken by HugeTLB pools of every size, bytes (kernel 4.16+).
    #[serde(default)]
    pub hugetlb: u64,
    /// Contiguous memory allocator reserve: CmaTotal / CmaFree, bytes (0 when absent).
    #[serde(default)]
    pub cma_total: u64,
    #[serde(default)]
    pub cma_free: u64,
}

impl MemInfo {
    /// Parses the text of `/proc/meminfo`. MemTotal, MemFree and MemAvailable are required;
    /// other fields default to zero when absent (older kernels, containers).
    pub fn parse(text: &str) -> Result<MemInfo, String> {
        let mut map: BTreeMap<&str, u64> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, rest)) = line.split_once(':') else {
                return Err(format!("line {}: `{line}` is not `Key: value`", n + 1));
            };
            let mut parts = rest.split_whitespace();
            let value: u64 = parts
                .next()
                .ok_or_else(|| format!("line {}: `{key}` has no value", n + 1))?
                .parse()
                .map_err(|_| format!("line {}: `{key}` value is not a number", n + 1))?;
            let bytes = match parts.next() {
                Some("kB") => value
                    .checked_mul(1024)
                    .ok_or_else(|| format!("line {}: `{key}` overflows", n + 1))?,
                None => value,
                Some(u) => return Err(format!("line {}: `{key}` has unknown unit `{u}`", n + 1)),
            };
            map.insert(key, bytes);
        }
        let need = |k: &str| {
            map.get(k)
                .copied()
                .ok_or_else(|| format!("meminfo lacks {k}"))
        };
        let opt = |k: &str| map.get(k).copied().unwrap_or(0);
        Ok(MemInfo {
            mem_total: need("MemTotal")?,
            mem_free: need("MemFree")?,
            mem_available: need("MemAvailable")?,
            buffers: opt("Buffers"),
            cached: opt("Cached"),
            s_reclaimable: opt("SReclaimable"),
            shmem: opt("Shmem"),
            dirty: opt("Dirty"),
            swap_total: opt("SwapTotal"),
            swap_free: opt("SwapFree"),
            hugepages_total: opt("HugePages_Total"),
            hugepages_free: opt("HugePages_Free"),
            hugepage_size: opt("Hugepagesize"),
            hugetlb: opt("Hugetlb"),
            cma_total: opt("CmaTotal"),
            cma_free: opt("CmaFree"),
        })
    }

    /// The file read: `/proc/meminfo`, or `$CUMEMLAB_MEMINFO` (for tests that simulate a host).
    pub fn path() -> String {
        std::env::var("CUMEMLAB_MEMINFO").unwrap_or_else(|_| "/proc/meminfo".into())
    }

    /// Reads and parses [`MemInfo::path`].
    pub fn read() -> Result<MemInfo, String> {
        let path = MemInfo::path();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        MemInfo::parse(&text).map_err(|e| format!("{path}: {e}"))
    }

    /// Page cache the kernel can drop: Cached (less Shmem, which only swapping frees) + Buffers.
    pub fn reclaimable_cache(&self) -> u64 {
        self.cached.saturating_sub(self.shmem) + self.buffers
    }

    /// Memory a new allocation can count on once the cache is reclaimed: MemAvailable + SwapFree
    /// (the GB10 guidance).
    pub fn available_with_swap(&self) -> u64 {
        self.mem_available.saturating_add(self.swap_free)
    }

    /// Bytes of the default-size HugeTLB pool: HugePages_Total x Hugepagesize.
    pub fn hugetlb_pool_bytes(&self) -> u64 {
        self.hugepages_total.saturating_mul(self.hugepage_size)
    }

    /// Free bytes of that pool: HugePages_Free x Hugepagesize.
    pub fn hugetlb_free_bytes(&self) -> u64 {
        self.hugepages_free.saturating_mul(self.hugepage_size)
    }

    /// What a GPU allocation on unified memory can count on, by NVIDIA's integrated-GPU rule as
    /// NVIDIA's engineers wrote it into llama.cpp (ggml-org/llama.cpp PR #17368, "DGX Spark: UMA
    /// support", Nov 2025): MemAvailable + SwapFree, except that when a HugeTLB pool is configured
    /// (HugePages_Total > 0) it is the pool's free pages, HugePages_Free x Hugepagesize, and swap
    /// does not count (HugeTLB pages are not swappable). The pool is taken out of MemAvailable by
    /// the kernel, which is why ignoring it overstates what is left on a host that has one.
    pub fn unified_usable(&self) -> (u64, &'static str) {
        if self.hugepages_total > 0 {
            (
                self.hugetlb_free_bytes(),
                "HugePages_Free x Hugepagesize (a HugeTLB pool is configured: NVIDIA's UMA rule, llama.cpp PR #17368)",
            )
        } else {
            (
                self.available_with_swap(),
                "MemAvailable + SwapFree (unified memory: the kernel reclaims the page cache for GPU allocations)",
            )
        }
    }

    /// True when the page cache is large enough to matter: over 10% of MemTotal and over 4 GiB.
    pub fn cache_is_large(&self) -> bool {
        let c = self.reclaimable_cache();
        c > self.mem_total / 10 && c > 4 * crate::units::GIB
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

    fn fixture(name: &str) -> MemInfo {
        crate::test_support::meminfo(name)
    }

    #[test]
    fn gb10_like_host() {
        let m = fixture("gb10-cache-heavy.txt");
        assert_eq!(m.mem_total, 125_520_512 * 1024);
        assert_eq!(m.mem_free, 24_117_248 * 1024);
        assert_eq!(m.mem_available, 98_566_144 * 1024);
        assert_eq!(m.cached, 72_351_744 * 1024);
        assert_eq!(m.swap_free, 16_777_212 * 1024);
        assert!(m.cache_is_large());
        // MemAvailable + SwapFree is what a GPU allocation can count on there.
        assert_eq!(m.available_with_swap(), (98_566_144 + 16_777_212) * 1024);
        assert!(m.available_with_swap() > 100 * GIB);
    }

    #[test]
    fn h100_host() {
        let m = fixture("h100-host.txt");
        assert_eq!(m.mem_total, 131_862_720 * 1024);
        assert_eq!(m.hugepage_size, 2048 * 1024);
        assert_eq!(m.swap_total, 0);
        assert!(!m.cache_is_large());
        assert_eq!(m.reclaimable_cache(), (2_211_512 - 9_332 + 4_180) * 1024);
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(
            MemInfo::parse("MemTotal: 12 kB\n")
                .unwrap_err()
                .contains("MemFree")
        );
        assert!(
            MemInfo::parse("MemTotal 12 kB\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            MemInfo::parse("MemTotal: x kB\n")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            MemInfo::parse("MemTotal: 1 MB\n")
                .unwrap_err()
                .contains("unit")
        );
    }
}
