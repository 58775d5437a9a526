//! Host facts that shape every measurement: kernel release, CPU architecture, page size,
//! transparent huge pages mode, the cgroup memory limit (which does not see CUDA allocations on
//! GB10), and the process's resident set size.

use serde::{Deserialize, Serialize};

/// What `info` and every result file record about the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: String,
    pub kernel_release: String,
    pub arch: String,
    pub cpus: usize,
    pub page_size: u64,
    /// The selected mode of `/sys/kernel/mm/transparent_hugepage/enabled` (`always`, `madvise`,
    /// `never`), or `unknown`.
    pub thp_enabled: String,
    /// The memory limit of this process's cgroup in bytes; `None` when unlimited or unknown.
    pub cgroup_memory_limit: Option<u64>,
    pub is_root: bool,
}

impl HostFacts {
    /// Reads the facts; a fact that cannot be read is left at a neutral value, never an error.
    pub fn read() -> HostFacts {
        let uts = nix::sys::utsname::uname().ok();
        let s = |o: Option<&std::ffi::OsStr>| {
            o.map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        HostFacts {
            hostname: s(uts.as_ref().map(|u| u.nodename())),
            kernel_release: s(uts.as_ref().map(|u| u.release())),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            page_size: page_size(),
            thp_enabled: thp_mode(),
            cgroup_memory_limit: cgroup_memory_limit(),
            is_root: nix::unistd::geteuid().is_root(),
        }
    }
}

/// The kernel's base page size in bytes (4096 when it cannot be read).
pub fn page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => 4096,
    }
}

fn thp_mode() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|t| parse_bracketed(&t))
        .unwrap_or_else(|| "unknown".into())
}

/// `always [madvise] never` -> `madvise`.
pub fn parse_bracketed(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    Some(text[start + 1..end].to_string())
}

/// The cgroup (v2, then v1) memory limit of this process.
fn cgroup_memory_limit() -> Option<u64> {
    super::pressure::CgroupMemory::read().and_then(|c| c.max_bytes)
}

/// `max` or a value of 2^60 or more (v1's "unlimited") is no limit.
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|v| *v < (1u64 << 60))
}

/// The resident set size of this process in bytes (`VmRSS` of `/proc/self/status`), 0 if unknown.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
        })
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thp_and_cgroup_parsing() {
        assert_eq!(
            parse_bracketed("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(parse_bracketed("always madvise never"), None);
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_limit("8589934592\n"), Some(8 << 30));
    }

    #[test]
    fn live_host_reads() {
        let f = HostFacts::read();
        assert!(f.page_size >= 4096 && f.page_size.is_power_of_two());
        assert!(f.cpus >= 1);
        assert!(!f.kernel_release.is_empty());
        assert!(rss_bytes() > 0);
    }
}
