//! One memory-accounting snapshot, the type every experiment records its accounting in: what the
//! kernel (`/proc/meminfo`), this process (RSS), the pressure sources (PSI, buddyinfo, cgroup)
//! and, when the caller read one, the driver (`cuMemGetInfo` free and total) say at one moment.
//! It replaces the per-experiment copies (sweep's `Snapshot`, visibility's `Seen`, the fields
//! that layout, probe, cache, watch and lab each declared), so a figure has one name and one
//! source everywhere.
//!
//! Serialised, its fields carry their units (`mem_available_bytes`, `psi_full_avg10` in
//! percent), so a JSON-only type can `#[serde(flatten)]` it and keep today's field names. Rows
//! that are also written as CSV copy the fields they carry out of it instead: the `csv` crate
//! writes flat structs only (a flattened field is a map to it, which it refuses).
//! Host-side only: the device figures are passed in, this layer never touches the GPU. Imports
//! `meminfo`, `pressure` and `facts` of this module.

use serde::{Deserialize, Serialize};

use super::{HostPressure, MemInfo, rss_bytes};

/// Memory accounting at one moment, bytes unless named otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    /// `cuMemGetInfo` free and total of the device read with it (`None`: no device read).
    #[serde(rename = "device_free_bytes")]
    pub device_free: Option<u64>,
    #[serde(rename = "device_total_bytes")]
    pub device_total: Option<u64>,
    #[serde(rename = "mem_total_bytes")]
    pub mem_total: u64,
    #[serde(rename = "mem_free_bytes")]
    pub mem_free: u64,
    #[serde(rename = "mem_available_bytes")]
    pub mem_available: u64,
    #[serde(rename = "buffers_bytes")]
    pub buffers: u64,
    #[serde(rename = "cached_bytes")]
    pub cached: u64,
    #[serde(rename = "s_reclaimable_bytes")]
    pub s_reclaimable: u64,
    #[serde(rename = "shmem_bytes")]
    pub shmem: u64,
    #[serde(rename = "dirty_bytes")]
    pub dirty: u64,
    #[serde(rename = "swap_total_bytes")]
    pub swap_total: u64,
    #[serde(rename = "swap_free_bytes")]
    pub swap_free: u64,
    #[serde(rename = "cma_free_bytes")]
    pub cma_free: u64,
    /// This process's resident set.
    #[serde(rename = "rss_bytes")]
    pub rss: u64,
    /// PSI memory some/full avg10, percent (`None` where the kernel has no PSI).
    pub psi_some_avg10: Option<f64>,
    pub psi_full_avg10: Option<f64>,
    /// Bytes in free blocks of 2 MiB and larger (buddyinfo), all zones.
    #[serde(rename = "free_2m_bytes")]
    pub free_2m: Option<u64>,
    /// The cgroup's `memory.current`.
    #[serde(rename = "cgroup_current_bytes")]
    pub cgroup_current: Option<u64>,
}

impl Accounting {
    /// From readings already taken (pure: for fixtures and for callers that read meminfo once).
    pub fn from_parts(m: &MemInfo, rss: u64, p: &HostPressure) -> Accounting {
        Accounting {
            device_free: None,
            device_total: None,
            mem_total: m.mem_total,
            mem_free: m.mem_free,
            mem_available: m.mem_available,
            buffers: m.buffers,
            cached: m.cached,
            s_reclaimable: m.s_reclaimable,
            shmem: m.shmem,
            dirty: m.dirty,
            swap_total: m.swap_total,
            swap_free: m.swap_free,
            cma_free: m.cma_free,
            rss,
            psi_some_avg10: p.psi.map(|v| v.some_avg10),
            psi_full_avg10: p.psi_full_avg10(),
            free_2m: p.free_2m_bytes(),
            cgroup_current: p.cgroup_current(),
        }
    }

    /// Reads the host now: `/proc/meminfo` (an error names what could not be read), RSS, and the
    /// pressure sources (those missing stay `None`).
    pub fn host() -> Result<Accounting, String> {
        let m = MemInfo::read()?;
        Ok(Accounting::from_parts(
            &m,
            rss_bytes(),
            &HostPressure::read(),
        ))
    }

    /// With the device's `cuMemGetInfo` free (and total, when read).
    pub fn with_device(self, free: u64, total: Option<u64>) -> Accounting {
        Accounting {
            device_free: Some(free),
            device_total: total,
            ..self
        }
    }

    /// `cuMemGetInfo` free, 0 when no device was read (for differences on a GPU path).
    pub fn device_free_or_zero(&self) -> u64 {
        self.device_free.unwrap_or(0)
    }

    /// Page cache the kernel can drop: Cached - Shmem + Buffers.
    pub fn reclaimable_cache(&self) -> u64 {
        self.cached.saturating_sub(self.shmem) + self.buffers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_a_gb10_meminfo_with_and_without_a_device() {
        let m = crate::test_support::meminfo("gb10-cache-heavy.txt");
        let a = Accounting::from_parts(&m, 7, &HostPressure::default());
        assert_eq!(
            (a.mem_free, a.mem_available, a.cached, a.shmem, a.rss),
            (m.mem_free, m.mem_available, m.cached, m.shmem, 7)
        );
        assert_eq!(a.reclaimable_cache(), m.reclaimable_cache());
        assert_eq!(
            (a.device_free, a.psi_full_avg10, a.cgroup_current),
            (None, None, None)
        );
        let d = a.with_device(m.mem_free, Some(m.mem_total));
        assert_eq!(d.device_free_or_zero(), m.mem_free);
        assert_eq!(d.device_total, Some(m.mem_total));
        // Serialised names carry units, as the rows that flatten it need.
        let v = serde_json::to_value(d).unwrap();
        assert_eq!(v["mem_available_bytes"], m.mem_available);
        assert_eq!(v["device_free_bytes"], m.mem_free);
        assert!(v.get("mem_available").is_none());
        assert_eq!(serde_json::from_value::<Accounting>(v).unwrap(), d);
    }
}
