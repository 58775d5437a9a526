//! Which memory architecture a device has, from its attributes, and what that means for
//! allocations. Pure logic (tested on DESIGN.md's attribute table without a GPU).

use serde::{Deserialize, Serialize};

use crate::driver::DeviceAttributes;
use crate::host::MemInfo;
use crate::units::fmt_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryArchitecture {
    /// Own memory, host memory reached only when pinned/registered/managed (H100 on most hosts).
    Discrete,
    /// Own memory, and plain pageable host memory reachable through HMM.
    DiscreteWithHmm,
    /// Own memory plus hardware-coherent access to host memory through ATS (Grace Hopper).
    CoherentAts,
    /// No memory of its own: the GPU shares the host's memory (GB10, Jetson).
    IntegratedUnified,
}

impl MemoryArchitecture {
    /// Classifies from INTEGRATED, PAGEABLE_MEMORY_ACCESS and ..._USES_HOST_PAGE_TABLES.
    pub fn classify(a: &DeviceAttributes) -> MemoryArchitecture {
        if a.flag("integrated") {
            MemoryArchitecture::IntegratedUnified
        } else if a.flag("pageable_memory_access_uses_host_page_tables") {
            MemoryArchitecture::CoherentAts
        } else if a.flag("pageable_memory_access") {
            MemoryArchitecture::DiscreteWithHmm
        } else {
            MemoryArchitecture::Discrete
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            MemoryArchitecture::Discrete => "discrete",
            MemoryArchitecture::DiscreteWithHmm => "discrete with HMM",
            MemoryArchitecture::CoherentAts => "coherent with ATS",
            MemoryArchitecture::IntegratedUnified => "integrated unified memory",
        }
    }

    /// One sentence on what the architecture means for allocations.
    pub fn meaning(self) -> &'static str {
        match self {
            MemoryArchitecture::Discrete => {
                "The GPU has its own memory: cuMemAlloc takes card memory, managed memory migrates over PCIe on first touch, pinned and registered host memory is read over PCIe, and plain malloc/mmap memory is not GPU-accessible."
            }
            MemoryArchitecture::DiscreteWithHmm => {
                "The GPU has its own memory and can also fault in plain malloc/mmap pages through HMM (slowly, page by page over PCIe); managed memory migrates on first touch."
            }
            MemoryArchitecture::CoherentAts => {
                "The GPU has its own memory and reads host memory coherently through the host's page tables (ATS over NVLink-C2C): malloc'd memory is GPU-accessible without copies."
            }
            MemoryArchitecture::IntegratedUnified => {
                "CPU and GPU share one pool of system memory: every GPU allocation takes host RAM, the page cache competes with it, and cuMemGetInfo's free figure is the kernel's MemFree, not what can be allocated."
            }
        }
    }

    pub fn is_unified(self) -> bool {
        self == MemoryArchitecture::IntegratedUnified
    }
}

/// What a GPU allocation can really get, beside what `cuMemGetInfo` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsableEstimate {
    pub cumemgetinfo_free_bytes: u64,
    pub estimate_bytes: u64,
    /// How the estimate was made.
    pub basis: String,
    /// Set when the page cache hides memory from `cuMemGetInfo`, with the fix.
    pub warning: Option<String>,
}

impl UsableEstimate {
    pub fn new(arch: MemoryArchitecture, device_free: u64, m: &MemInfo) -> UsableEstimate {
        if arch.is_unified() {
            let warning = m.cache_is_large().then(|| {
                format!(
                    "the page cache holds {} that cuMemGetInfo counts as used (it reports {} free, MemAvailable is {}): \
                     drop it with `sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'` (or `cumemlab cache --drop`), \
                     or evict one file without root with `cumemlab cache --evict PATH`",
                    fmt_bytes(m.reclaimable_cache()),
                    fmt_bytes(device_free),
                    fmt_bytes(m.mem_available)
                )
            });
            let (estimate_bytes, basis) = m.unified_usable();
            UsableEstimate {
                cumemgetinfo_free_bytes: device_free,
                estimate_bytes,
                basis: basis.into(),
                warning,
            }
        } else {
            UsableEstimate {
                cumemgetinfo_free_bytes: device_free,
                estimate_bytes: device_free,
                basis: "cuMemGetInfo free (the card's own memory)".into(),
                warning: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(pairs: &[(&str, i64)]) -> DeviceAttributes {
        DeviceAttributes::from_pairs(pairs)
    }

    #[test]
    fn classifies_design_table() {
        // GB10: INTEGRATED 1, PAGEABLE 1, ATS 1.
        let gb10 = a(&[
            ("integrated", 1),
            ("pageable_memory_access", 1),
            ("pageable_memory_access_uses_host_page_tables", 1),
        ]);
        assert_eq!(
            MemoryArchitecture::classify(&gb10),
            MemoryArchitecture::IntegratedUnified
        );
        // H100 on our hosts: all 0.
        let h100 = a(&[
            ("integrated", 0),
            ("pageable_memory_access", 0),
            ("pageable_memory_access_uses_host_page_tables", 0),
        ]);
        assert_eq!(
            MemoryArchitecture::classify(&h100),
            MemoryArchitecture::Discrete
        );
        // H100 with HMM.
        let hmm = a(&[
            ("integrated", 0),
            ("pageable_memory_access", 1),
            ("pageable_memory_access_uses_host_page_tables", 0),
        ]);
        assert_eq!(
            MemoryArchitecture::classify(&hmm),
            MemoryArchitecture::DiscreteWithHmm
        );
        // Grace Hopper: ATS without being integrated.
        let gh = a(&[
            ("integrated", 0),
            ("pageable_memory_access", 1),
            ("pageable_memory_access_uses_host_page_tables", 1),
        ]);
        assert_eq!(
            MemoryArchitecture::classify(&gh),
            MemoryArchitecture::CoherentAts
        );
        assert_eq!(
            MemoryArchitecture::classify(&a(&[])),
            MemoryArchitecture::Discrete
        );
    }

    #[test]
    fn usable_estimate_on_unified_counts_reclaimable_cache() {
        let m = crate::test_support::meminfo("gb10-cache-heavy.txt");
        let u = UsableEstimate::new(MemoryArchitecture::IntegratedUnified, m.mem_free, &m);
        assert_eq!(u.estimate_bytes, m.mem_available + m.swap_free);
        assert_eq!(u.cumemgetinfo_free_bytes, m.mem_free);
        let w = u.warning.unwrap();
        assert!(w.contains("drop_caches") && w.contains("--evict"), "{w}");
        // A HugeTLB pool: its free pages are what is left, and swap does not count.
        let h = MemInfo {
            hugepages_total: 40,
            hugepages_free: 30,
            hugepage_size: 1 << 30,
            ..m.clone()
        };
        let uh = UsableEstimate::new(MemoryArchitecture::IntegratedUnified, h.mem_free, &h);
        assert_eq!(uh.estimate_bytes, 30 << 30);
        assert!(uh.basis.contains("HugePages_Free"), "{}", uh.basis);
        let d = UsableEstimate::new(MemoryArchitecture::Discrete, 80 << 30, &m);
        assert_eq!(d.estimate_bytes, 80 << 30);
        assert!(d.warning.is_none());
    }
}
