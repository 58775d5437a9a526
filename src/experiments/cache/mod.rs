//! `cumemlab cache`: the Linux page cache, seen from the GPU's side. On GB10 `cuMemGetInfo`
//! reports the kernel's MemFree, so a large page cache looks like memory in use although the
//! kernel gives it back on demand; on discrete cards the cache does not touch the card's memory
//! but competes with pinned, registered and managed host memory.
//!
//! - `cache`: Buffers, Cached, SReclaimable, Shmem, Dirty, MemFree, MemAvailable and
//!   `cuMemGetInfo` free side by side, with the difference explained.
//! - `cache --drop` (root): `sync`, then `drop_caches=3`; reports what it freed.
//! - `cache --fill SIZE`: real page-cache pressure (a temporary file written and read back), held
//!   until Ctrl-C (`--hold` for a set time) and then removed; `--keep` leaves the file instead.
//! - `cache --evict PATH`: one file's pages dropped with `posix_fadvise(DONTNEED)`, no root.
//! - `cache effect`: the experiment: with the cache filled and after eviction, `cuMemGetInfo`
//!   free, MemAvailable, the largest `device` allocation, the time of one `device` allocation, and
//!   a file mapping read by the GPU cold and warm (`registered`; `pageable` where supported).
//!
//! Every fill file is owned by a guard that removes it on every path (success, error, Ctrl-C).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::watch::DeviceView;
use crate::error::{Error, Result};
use crate::host::MemInfo;
use crate::memory::arch::MemoryArchitecture;
use crate::memory::filemap::resident_bytes;
use crate::report::new_table;
use crate::units::{GIB, MIB, fmt_bytes};

/// The moment a status row describes; serialised as the `label` the rows have always carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheState {
    #[serde(rename = "now")]
    Now,
    #[serde(rename = "before fill")]
    BeforeFill,
    #[serde(rename = "after fill")]
    AfterFill,
    #[serde(rename = "after removal")]
    AfterRemoval,
    #[serde(rename = "before evict")]
    BeforeEvict,
    #[serde(rename = "after evict")]
    AfterEvict,
    #[serde(rename = "before drop")]
    BeforeDrop,
    #[serde(rename = "after drop")]
    AfterDrop,
}

impl CacheState {
    /// The label in rows and table headers.
    pub fn label(self) -> &'static str {
        match self {
            CacheState::Now => "now",
            CacheState::BeforeFill => "before fill",
            CacheState::AfterFill => "after fill",
            CacheState::AfterRemoval => "after removal",
            CacheState::BeforeEvict => "before evict",
            CacheState::AfterEvict => "after evict",
            CacheState::BeforeDrop => "before drop",
            CacheState::AfterDrop => "after drop",
        }
    }
}

/// The memory state at one moment of a `cache` command, with the file it acted on. The same
/// struct is the JSON row and the source of the tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheRow {
    /// Which moment ([`CacheState`]).
    pub label: CacheState,
    pub mem_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub buffers_bytes: u64,
    pub cached_bytes: u64,
    pub s_reclaimable_bytes: u64,
    pub shmem_bytes: u64,
    pub dirty_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    /// Page cache the kernel can drop: Cached - Shmem + Buffers.
    pub reclaimable_cache_bytes: u64,
    pub device: Option<i32>,
    pub device_free_bytes: Option<u64>,
    pub device_total_bytes: Option<u64>,
    /// The device shares the host's memory (GB10): there `cuMemGetInfo` free is MemFree.
    pub unified_memory: Option<bool>,
    /// The file acted on (fill, evict), its size and how much of it is in the page cache.
    pub file: Option<String>,
    pub file_bytes: Option<u64>,
    pub file_resident_bytes: Option<u64>,
    /// Host clock of the action that led to this state (fill, evict, drop), ms.
    pub action_ms: Option<f64>,
}

impl CacheRow {
    /// A row from meminfo and, when given, `cuMemGetInfo` (free, total) of `device`.
    pub fn new(label: CacheState, m: &MemInfo, device: Option<(i32, u64, u64, bool)>) -> CacheRow {
        CacheRow {
            label,
            mem_total_bytes: m.mem_total,
            mem_free_bytes: m.mem_free,
            mem_available_bytes: m.mem_available,
            buffers_bytes: m.buffers,
            cached_bytes: m.cached,
            s_reclaimable_bytes: m.s_reclaimable,
            shmem_bytes: m.shmem,
            dirty_bytes: m.dirty,
            swap_total_bytes: m.swap_total,
            swap_free_bytes: m.swap_free,
            reclaimable_cache_bytes: m.reclaimable_cache(),
            device: device.map(|d| d.0),
            device_free_bytes: device.map(|d| d.1),
            device_total_bytes: device.map(|d| d.2),
            unified_memory: device.map(|d| d.3),
            file: None,
            file_bytes: None,
            file_resident_bytes: None,
            action_ms: None,
        }
    }

    /// Reads the host and, when there is one, the device.
    pub fn take(label: CacheState, dev: Option<&DeviceView>) -> Result<CacheRow> {
        let m = MemInfo::read().map_err(Error::Failed)?;
        let d = match dev {
            Some(v) => {
                let (free, total) = v.mem_info()?;
                Some((v.ordinal, free, total, v.arch.is_unified()))
            }
            None => None,
        };
        Ok(CacheRow::new(label, &m, d))
    }

    /// Adds the file and its residency now.
    pub fn with_file(mut self, path: &Path) -> CacheRow {
        self.file = Some(path.display().to_string());
        if let Ok((resident, len)) = resident_bytes(path) {
            self.file_bytes = Some(len);
            self.file_resident_bytes = Some(resident);
        }
        self
    }
}

/// Sentences explaining one state: what each figure counts, and how `cuMemGetInfo` free relates
/// to MemAvailable on this device (`arch` `None`: no GPU).
pub fn explain(
    r: &CacheRow,
    arch: Option<MemoryArchitecture>,
    no_gpu_reason: Option<&str>,
) -> Vec<String> {
    let g = |b: u64| fmt_bytes(b);
    let mut out = vec![format!(
        "MemFree ({}) is memory nobody uses; MemAvailable ({}) adds what the kernel can reclaim on demand, mostly the page cache: {} of Cached + Buffers - Shmem is droppable, plus reclaimable slab (SReclaimable {}).",
        g(r.mem_free_bytes),
        g(r.mem_available_bytes),
        g(r.reclaimable_cache_bytes),
        g(r.s_reclaimable_bytes)
    )];
    if r.shmem_bytes > GIB {
        out.push(format!(
            "Shmem ({}) is counted in Cached but is tmpfs or shared memory: dropping the cache does not free it.",
            g(r.shmem_bytes)
        ));
    }
    if r.dirty_bytes > 256 * MIB {
        out.push(format!(
            "Dirty ({}) must be written back before it can be dropped (`sync`).",
            g(r.dirty_bytes)
        ));
    }
    match (arch, r.device_free_bytes, r.device_total_bytes) {
        (Some(a), Some(free), Some(_)) if a.is_unified() => {
            let hidden = r.mem_available_bytes as i64 - free as i64;
            out.push(format!(
                "On this unified-memory device cuMemGetInfo free ({}) is the kernel's MemFree ({}): it counts the page cache as used, so it understates what can be allocated by MemAvailable - cuMemGetInfo free = {}{}; allocations make the kernel reclaim the cache, and dropping it (`sudo cumemlab cache --drop`) or evicting files (`cumemlab cache --evict PATH`) makes cuMemGetInfo agree.",
                g(free),
                g(r.mem_free_bytes),
                signed(hidden),
                if r.swap_free_bytes > 0 {
                    format!(" (and SwapFree {} adds to what can be held)", g(r.swap_free_bytes))
                } else {
                    String::new()
                }
            ));
        }
        (Some(_), Some(free), Some(total)) => out.push(format!(
            "On this discrete card cuMemGetInfo free ({} of {}) is the card's own memory: the page cache does not change it, but pinned, registered and managed host memory come out of MemAvailable ({}), which the cache shrinks only until the kernel reclaims it.",
            g(free),
            g(total),
            g(r.mem_available_bytes)
        )),
        _ => out.push(format!(
            "No GPU part ({}): cuMemGetInfo is absent (on GB10 it would equal MemFree).",
            no_gpu_reason.unwrap_or("no device opened")
        )),
    }
    out
}

pub(super) fn signed(v: i64) -> String {
    if v < 0 {
        format!("-{}", fmt_bytes(v.unsigned_abs()))
    } else {
        format!("+{}", fmt_bytes(v as u64))
    }
}

pub(super) fn signed_gib(v: i64) -> String {
    format!("{:+.2}", v as f64 / GIB as f64)
}

/// The states of a `cache` command side by side (fields down, states across), with the change
/// from the first to the last when there are several.
pub fn render_states(rows: &[CacheRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let last = rows.last().unwrap_or(first);
    let several = rows.len() > 1;
    let mut header = vec!["GiB (2^30 bytes)".to_string()];
    header.extend(rows.iter().map(|r| r.label.label().to_string()));
    if several {
        header.push("change".into());
    }
    header.push("what it is".into());
    let mut t = new_table(&header);
    type Field = (&'static str, fn(&CacheRow) -> Option<i64>, &'static str);
    let fields: [Field; 12] = [
        (
            "MemFree",
            |r| Some(r.mem_free_bytes as i64),
            "unused memory",
        ),
        (
            "MemAvailable",
            |r| Some(r.mem_available_bytes as i64),
            "what new allocations can count on (free + reclaimable)",
        ),
        (
            "Buffers",
            |r| Some(r.buffers_bytes as i64),
            "block-device cache",
        ),
        (
            "Cached",
            |r| Some(r.cached_bytes as i64),
            "page cache (file pages, incl. Shmem)",
        ),
        (
            "SReclaimable",
            |r| Some(r.s_reclaimable_bytes as i64),
            "reclaimable kernel slab (dentries, inodes)",
        ),
        (
            "Shmem",
            |r| Some(r.shmem_bytes as i64),
            "tmpfs / shared memory: in Cached, not droppable",
        ),
        (
            "Dirty",
            |r| Some(r.dirty_bytes as i64),
            "written, not yet on disk: `sync` first",
        ),
        (
            "reclaimable cache",
            |r| Some(r.reclaimable_cache_bytes as i64),
            "Cached - Shmem + Buffers",
        ),
        ("SwapFree", |r| Some(r.swap_free_bytes as i64), "free swap"),
        (
            "cuMemGetInfo free",
            |r| r.device_free_bytes.map(|v| v as i64),
            "the driver's free figure (GB10: = MemFree)",
        ),
        (
            "MemAvailable - cuMemGetInfo free",
            |r| {
                r.device_free_bytes
                    .map(|f| r.mem_available_bytes as i64 - f as i64)
            },
            "what the page cache hides from cuMemGetInfo",
        ),
        (
            "file in page cache",
            |r| r.file_resident_bytes.map(|v| v as i64),
            "resident pages of the file acted on (mincore)",
        ),
    ];
    for (name, get, what) in fields {
        if rows.iter().all(|r| get(r).is_none()) {
            continue;
        }
        // The difference means something only where cuMemGetInfo free is MemFree.
        if name.starts_with("MemAvailable -")
            && !rows.iter().any(|r| r.unified_memory == Some(true))
        {
            continue;
        }
        let mut line = vec![name.to_string()];
        line.extend(
            rows.iter()
                .map(|r| get(r).map_or("-".into(), |v| format!("{:.2}", v as f64 / GIB as f64))),
        );
        if several {
            line.push(match (get(first), get(last)) {
                (Some(a), Some(b)) => signed_gib(b - a),
                _ => "-".into(),
            });
        }
        line.push(what.to_string());
        t.add_row(line);
    }
    format!("{t}\n")
}

mod action;
mod cli;
mod effect;
mod effect_render;

pub use action::{CacheAction, CacheDoc, FillEnd, run_action, validate};
pub use cli::{CacheArgs, CacheCommand, EffectArgs, main};
pub use effect::{
    EffectDoc, EffectOptions, EffectRow, EffectState, default_effect_fill, run_effect,
};
pub use effect_render::{effect_findings, render_effect};

#[cfg(test)]
mod tests;
