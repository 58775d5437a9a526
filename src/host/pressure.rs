//! Memory pressure and physical fragmentation, the two signs that a unified-memory host (GB10) is
//! near a wedge before MemAvailable says so:
//!
//! - PSI (`/proc/pressure/memory`): the share of time tasks stalled on memory, `some` and `full`,
//!   averaged over 10 and 60 s.
//! - `/proc/buddyinfo`: free blocks per zone and order. The supply that matters is free blocks of
//!   2 MiB and larger (order 9 at 4 KiB pages; the order is computed from the page size): owners
//!   saw `NV_ERR_NO_MEMORY` and whole-host wedges with GiBs nominally free but no such blocks
//!   (MiaAI-Lab/DeepSeek-v4.1-Flash-DGX-Sparks issue #23, FujitsuPolycom/sparkring issue #173).
//! - cgroup memory: v2 `memory.current` / `memory.max` (v1 `memory.usage_in_bytes` /
//!   `memory.limit_in_bytes` as a fallback) of this process's cgroup.
//!
//! Each file can be replaced for tests that simulate a host: `CUMEMLAB_PSI_MEMORY`,
//! `CUMEMLAB_BUDDYINFO`, `CUMEMLAB_CGROUP_DIR` (a folder holding `memory.current` and
//! `memory.max`) and `CUMEMLAB_PAGE_SIZE` (the page size buddyinfo's orders count in), like
//! `CUMEMLAB_MEMINFO`. The parsers are small and written here: no maintained crate reads
//! buddyinfo, and `procfs` would add a large dependency for three short formats.

use serde::{Deserialize, Serialize};

use crate::units::MIB;

/// PSI memory averages, percent of wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    pub some_avg10: f64,
    pub some_avg60: f64,
    pub full_avg10: f64,
    pub full_avg60: f64,
}

impl Psi {
    /// Parses `/proc/pressure/memory` (`some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and a
    /// `full` line; kernels before 5.x lack `full` for some resources: it reads as 0 then).
    pub fn parse(text: &str) -> Result<Psi, String> {
        let mut psi = Psi::default();
        let mut seen_some = false;
        for (n, line) in text.lines().enumerate() {
            let mut parts = line.split_whitespace();
            let kind = match parts.next() {
                Some(k @ ("some" | "full")) => k,
                Some(k) => return Err(format!("line {}: unknown PSI line `{k}`", n + 1)),
                None => continue,
            };
            let avg = |key: &str| -> Result<f64, String> {
                let v = line
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix(key))
                    .ok_or_else(|| format!("line {}: `{kind}` lacks {key}", n + 1))?;
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("line {}: {key}{v} is not a percentage", n + 1))
            };
            let (a10, a60) = (avg("avg10=")?, avg("avg60=")?);
            if kind == "some" {
                seen_some = true;
                psi.some_avg10 = a10;
                psi.some_avg60 = a60;
            } else {
                psi.full_avg10 = a10;
                psi.full_avg60 = a60;
            }
        }
        if !seen_some {
            return Err("no `some` line".into());
        }
        Ok(psi)
    }
}

/// The free blocks of one zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneFree {
    pub node: u32,
    pub zone: String,
    /// Free blocks per order (order 0 first).
    pub free_blocks: Vec<u64>,
    /// All free memory of the zone, bytes.
    pub free_bytes: u64,
    /// Free 2 MiB blocks the zone can hand out without compaction: every free block of 2 MiB
    /// or more counted as the 2 MiB blocks it holds.
    pub blocks_2m: u64,
}

impl ZoneFree {
    /// Bytes in free blocks of 2 MiB and larger.
    pub fn free_2m_bytes(&self) -> u64 {
        self.blocks_2m.saturating_mul(2 * MIB)
    }
}

/// `/proc/buddyinfo`, read at one page size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuddyInfo {
    pub page_size: u64,
    /// The order of a 2 MiB block at this page size (9 at 4 KiB, 5 at 64 KiB).
    pub order_2m: u32,
    pub zones: Vec<ZoneFree>,
}

/// The order of a 2 MiB block at `page_size` (0 when a page is already 2 MiB or more).
pub fn order_2m(page_size: u64) -> u32 {
    let mut order = 0;
    while page_size.saturating_mul(1 << order) < 2 * MIB && order < 63 {
        order += 1;
    }
    order
}

impl BuddyInfo {
    /// Parses `Node 0, zone   Normal   3012   1612 ...` lines.
    pub fn parse(text: &str, page_size: u64) -> Result<BuddyInfo, String> {
        if page_size == 0 || !page_size.is_power_of_two() {
            return Err(format!("page size {page_size} is not a power of two"));
        }
        let k = order_2m(page_size);
        let mut zones = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = || {
                format!(
                    "line {}: `{}` is not `Node N, zone NAME counts...`",
                    n + 1,
                    line.trim()
                )
            };
            let rest = line.trim().strip_prefix("Node").ok_or_else(bad)?;
            let (node, rest) = rest.split_once(',').ok_or_else(bad)?;
            let node: u32 = node.trim().parse().map_err(|_| bad())?;
            let mut parts = rest.split_whitespace();
            if parts.next() != Some("zone") {
                return Err(bad());
            }
            let zone = parts.next().ok_or_else(bad)?.to_string();
            let free_blocks = parts
                .map(|p| p.parse::<u64>().map_err(|_| bad()))
                .collect::<Result<Vec<u64>, String>>()?;
            if free_blocks.is_empty() {
                return Err(bad());
            }
            let mut free_bytes = 0u64;
            let mut blocks_2m = 0u64;
            for (order, count) in free_blocks.iter().enumerate() {
                let order = order as u32;
                let block = page_size.checked_shl(order).ok_or_else(bad)?;
                free_bytes = free_bytes.saturating_add(count.saturating_mul(block));
                if order >= k {
                    blocks_2m = blocks_2m.saturating_add(count.saturating_mul(1u64 << (order - k)));
                }
            }
            zones.push(ZoneFree {
                node,
                zone,
                free_blocks,
                free_bytes,
                blocks_2m,
            });
        }
        if zones.is_empty() {
            return Err("no zone lines".into());
        }
        Ok(BuddyInfo {
            page_size,
            order_2m: k,
            zones,
        })
    }

    /// Free 2 MiB blocks over all zones.
    pub fn blocks_2m(&self) -> u64 {
        self.zones.iter().map(|z| z.blocks_2m).sum()
    }

    /// Bytes in free blocks of 2 MiB and larger over all zones.
    pub fn free_2m_bytes(&self) -> u64 {
        self.blocks_2m().saturating_mul(2 * MIB)
    }

    /// All free memory the buddy allocator holds, bytes (MemFree, seen page by page).
    pub fn free_bytes(&self) -> u64 {
        self.zones.iter().map(|z| z.free_bytes).sum()
    }

    /// One line per zone: `Normal 12.3 GiB free, 6001 x 2 MiB`.
    pub fn summary(&self) -> String {
        self.zones
            .iter()
            .map(|z| {
                format!(
                    "node {} {}: {} free, {} in {} blocks of 2 MiB+",
                    z.node,
                    z.zone,
                    crate::units::fmt_bytes(z.free_bytes),
                    crate::units::fmt_bytes(z.free_2m_bytes()),
                    z.blocks_2m
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// This process's cgroup memory accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupMemory {
    /// 2 for cgroup v2, 1 for v1.
    pub version: u8,
    /// The folder read.
    pub dir: String,
    /// `memory.current` (v1: `memory.usage_in_bytes`), bytes.
    pub current_bytes: Option<u64>,
    /// `memory.max` (v1: `memory.limit_in_bytes`), bytes; `None` when unlimited.
    pub max_bytes: Option<u64>,
}

impl CgroupMemory {
    /// Reads `dir` as a cgroup folder of `version`; `None` when it has no usage file.
    pub fn read_dir(dir: &std::path::Path, version: u8) -> Option<CgroupMemory> {
        let (cur, max) = if version == 2 {
            ("memory.current", "memory.max")
        } else {
            ("memory.usage_in_bytes", "memory.limit_in_bytes")
        };
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let current_bytes = read(cur).and_then(|t| t.trim().parse::<u64>().ok())?;
        Some(CgroupMemory {
            version,
            dir: dir.display().to_string(),
            current_bytes: Some(current_bytes),
            max_bytes: read(max).and_then(|t| super::facts::parse_cgroup_limit(&t)),
        })
    }

    /// The cgroup of this process (`$CUMEMLAB_CGROUP_DIR` first, read as v2).
    pub fn read() -> Option<CgroupMemory> {
        if let Some(d) = std::env::var_os("CUMEMLAB_CGROUP_DIR") {
            return CgroupMemory::read_dir(std::path::Path::new(&d), 2);
        }
        let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mut candidates: Vec<(String, u8)> = Vec::new();
        for line in cg.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && ctrl.is_empty() {
                candidates.push((format!("/sys/fs/cgroup{path}"), 2));
            } else if ctrl.split(',').any(|c| c == "memory") {
                candidates.push((format!("/sys/fs/cgroup/memory{path}"), 1));
                candidates.push(("/sys/fs/cgroup/memory".into(), 1));
            }
        }
        candidates
            .into_iter()
            .find_map(|(d, v)| CgroupMemory::read_dir(std::path::Path::new(&d), v))
    }
}

/// Pressure and fragmentation at one moment, with what could not be read and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostPressure {
    pub psi: Option<Psi>,
    pub buddyinfo: Option<BuddyInfo>,
    pub cgroup: Option<CgroupMemory>,
    /// Sources that could not be read, each with the reason.
    pub unavailable: Vec<String>,
}

fn read_source(var: &str, default: &str) -> (String, std::io::Result<String>) {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let text = std::fs::read_to_string(&path);
    (path, text)
}

/// The page size buddyinfo counts in: `$CUMEMLAB_PAGE_SIZE` (for fixtures of other hosts), else
/// this kernel's.
pub fn buddy_page_size() -> u64 {
    std::env::var("CUMEMLAB_PAGE_SIZE")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|v| v.is_power_of_two())
        .unwrap_or_else(super::facts::page_size)
}

impl HostPressure {
    /// Reads PSI, buddyinfo and the cgroup; never fails (what is missing is listed).
    pub fn read() -> HostPressure {
        let mut p = HostPressure::default();
        match read_source("CUMEMLAB_PSI_MEMORY", "/proc/pressure/memory") {
            (path, Ok(t)) => match Psi::parse(&t) {
                Ok(v) => p.psi = Some(v),
                Err(e) => p.unavailable.push(format!("PSI: {path}: {e}")),
            },
            (path, Err(e)) => p.unavailable.push(format!("PSI: cannot read {path}: {e}")),
        }
        match read_source("CUMEMLAB_BUDDYINFO", "/proc/buddyinfo") {
            (path, Ok(t)) => match BuddyInfo::parse(&t, buddy_page_size()) {
                Ok(v) => p.buddyinfo = Some(v),
                Err(e) => p.unavailable.push(format!("buddyinfo: {path}: {e}")),
            },
            (path, Err(e)) => p
                .unavailable
                .push(format!("buddyinfo: cannot read {path}: {e}")),
        }
        p.cgroup = CgroupMemory::read();
        if p.cgroup.is_none() {
            p.unavailable
                .push("cgroup: no memory.current (or v1 memory.usage_in_bytes) found".into());
        }
        p
    }

    /// PSI full avg10, percent (`None` when PSI is unavailable).
    pub fn psi_full_avg10(&self) -> Option<f64> {
        self.psi.map(|p| p.full_avg10)
    }

    /// Bytes in free blocks of 2 MiB and larger (`None` when buddyinfo is unavailable).
    pub fn free_2m_bytes(&self) -> Option<u64> {
        self.buddyinfo.as_ref().map(BuddyInfo::free_2m_bytes)
    }

    /// `cgroup memory.current`, bytes.
    pub fn cgroup_current(&self) -> Option<u64> {
        self.cgroup.as_ref().and_then(|c| c.current_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_parses_and_refuses_garbage() {
        let p = Psi::parse(
            "some avg10=1.50 avg60=0.25 avg300=0.00 total=123\nfull avg10=0.75 avg60=0.10 avg300=0.00 total=45\n",
        )
        .unwrap();
        assert_eq!(p.some_avg10, 1.5);
        assert_eq!(p.full_avg10, 0.75);
        assert_eq!(p.full_avg60, 0.10);
        assert!(Psi::parse("").unwrap_err().contains("some"));
        assert!(
            Psi::parse("some avg10=x avg60=0")
                .unwrap_err()
                .contains("avg10")
        );
        assert!(Psi::parse("cpu avg10=1").unwrap_err().contains("unknown"));
        assert!(Psi::parse("some avg10=-1 avg60=0").is_err());
    }

    #[test]
    fn order_of_2mib_follows_the_page_size() {
        assert_eq!(order_2m(4096), 9);
        assert_eq!(order_2m(16384), 7);
        assert_eq!(order_2m(65536), 5);
        assert_eq!(order_2m(2 * MIB), 0);
    }

    #[test]
    fn buddyinfo_counts_blocks_of_2mib_and_larger() {
        // This container's shape: order 9 = 2 MiB, order 10 = 4 MiB = two 2 MiB blocks.
        let text = "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 \n\
                    Node 0, zone   Normal   3012   1612   1035    865    682    489    365    243    164     79    196 \n";
        let b = BuddyInfo::parse(text, 4096).unwrap();
        assert_eq!(b.order_2m, 9);
        assert_eq!(b.zones.len(), 2);
        assert_eq!(b.zones[0].blocks_2m, 1 + 3 * 2);
        assert_eq!(b.zones[1].blocks_2m, 79 + 196 * 2);
        assert_eq!(b.blocks_2m(), 7 + 471);
        assert_eq!(b.free_2m_bytes(), 478 * 2 * MIB);
        // DMA: 1 x 1 MiB + 1 x 2 MiB + 3 x 4 MiB.
        assert_eq!(b.zones[0].free_bytes, (1 + 2 + 12) * MIB);
        // The same counts at 64 KiB pages: 2 MiB is order 5.
        let b64 = BuddyInfo::parse(text, 65536).unwrap();
        assert_eq!(b64.order_2m, 5);
        assert!(b64.blocks_2m() > b.blocks_2m());
        assert!(BuddyInfo::parse("Node x, zone Normal 1", 4096).is_err());
        assert!(BuddyInfo::parse("Node 0, zone Normal", 4096).is_err());
        assert!(BuddyInfo::parse("", 4096).is_err());
        assert!(BuddyInfo::parse("Node 0, zone Normal 1", 3000).is_err());
    }

    #[test]
    fn cgroup_folder_reads_v2_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("memory.current"), "1048576\n").unwrap();
        std::fs::write(d.path().join("memory.max"), "max\n").unwrap();
        let c = CgroupMemory::read_dir(d.path(), 2).unwrap();
        assert_eq!(c.current_bytes, Some(MIB));
        assert_eq!(c.max_bytes, None);
        std::fs::write(d.path().join("memory.max"), "8589934592\n").unwrap();
        assert_eq!(
            CgroupMemory::read_dir(d.path(), 2).unwrap().max_bytes,
            Some(8 << 30)
        );
        assert!(CgroupMemory::read_dir(&d.path().join("none"), 2).is_none());
    }

    #[test]
    fn live_host_reads_what_it_has() {
        let p = HostPressure::read();
        // Every source is either read or listed as unavailable with a reason.
        assert_eq!(
            p.psi.is_some() as usize
                + p.buddyinfo.is_some() as usize
                + p.cgroup.is_some() as usize
                + p.unavailable.len(),
            3,
            "{p:?}"
        );
    }
}
