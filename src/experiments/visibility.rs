//! "Who sees my allocation" (`cumemlab info --who-sees SIZE`): for each strategy, how much each
//! accounting source moved after the allocation and after the GPU's first touch: `cuMemGetInfo`
//! free, MemFree, MemAvailable, Cached, Shmem, the process's RSS and its cgroup's
//! `memory.current`. On GB10 this answers why container limits and monitors disagree: public
//! reports show cgroups not seeing CUDA allocations (vllm-project/vllm issue #54200: 76.96 GiB of
//! model while `memory.current` peaked at 16.7 GiB and RSS was 1.8 GiB) and NVML's memory query
//! "Not Supported" (kubernetes-sigs/dra-driver-nvidia-gpu issue #1073).
//!
//! Each request passes the same safety rules as `sweep` (the ceiling and, on unified memory, the
//! pressure guard); an unsupported or refused strategy is listed as skipped with the reason.

use serde::{Deserialize, Serialize};

use super::{Gpu, check_interrupt};
use crate::error::{Error, Result};
use crate::host::{Accounting, MemInfo};
use crate::memory::safety::{Budget, Forced};
use crate::memory::{AllocOptions, REGISTRY, Strategy, allocate};
use crate::report::new_table;
use crate::units::{GIB, fmt_bytes};

/// One strategy at one stage: each source's change since before the allocation, bytes (negative:
/// the source has less free / available; positive: it counts more in use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoSeesRow {
    pub device: i32,
    pub strategy: String,
    pub bytes: u64,
    /// `alloc` (after the allocation) or `first_touch` (after the GPU wrote every page).
    pub stage: String,
    pub delta_cumemgetinfo_free_bytes: i64,
    pub delta_mem_free_bytes: i64,
    pub delta_mem_available_bytes: i64,
    pub delta_cached_bytes: i64,
    pub delta_shmem_bytes: i64,
    pub delta_rss_bytes: i64,
    pub delta_cgroup_current_bytes: Option<i64>,
}

impl WhoSeesRow {
    pub fn between(
        device: i32,
        st: Strategy,
        bytes: u64,
        stage: &str,
        before: &Accounting,
        after: &Accounting,
    ) -> WhoSeesRow {
        let d = |a: u64, b: u64| a as i64 - b as i64;
        WhoSeesRow {
            device,
            strategy: st.key().into(),
            bytes,
            stage: stage.into(),
            delta_cumemgetinfo_free_bytes: d(
                after.device_free_or_zero(),
                before.device_free_or_zero(),
            ),
            delta_mem_free_bytes: d(after.mem_free, before.mem_free),
            delta_mem_available_bytes: d(after.mem_available, before.mem_available),
            delta_cached_bytes: d(after.cached, before.cached),
            delta_shmem_bytes: d(after.shmem, before.shmem),
            delta_rss_bytes: d(after.rss, before.rss),
            delta_cgroup_current_bytes: after
                .cgroup_current
                .zip(before.cgroup_current)
                .map(|(a, b)| d(a, b)),
        }
    }
}

/// What `--who-sees` produces: rows, and the strategies skipped with why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WhoSees {
    pub rows: Vec<WhoSeesRow>,
    pub skipped: Vec<String>,
}

/// Runs every strategy at `bytes` on `gpu`, one at a time, each freed before the next.
pub fn run(gpu: &Gpu, bytes: u64, headroom: u64) -> Result<WhoSees> {
    let dev = gpu.device.ordinal();
    let mut out = WhoSees::default();
    for info in REGISTRY {
        check_interrupt()?;
        let st = info.strategy;
        if let Err(why) = st.supported(&gpu.attrs) {
            out.skipped.push(format!("{st}: not supported: {why}"));
            continue;
        }
        let m = MemInfo::read().map_err(Error::Failed)?;
        let budget = Budget {
            unified: gpu.arch.is_unified(),
            device_free: gpu.free_bytes()?,
            mem_available: m.mem_available,
            headroom,
        };
        match budget.check_forced(st, bytes, false) {
            Ok(Forced::Allowed) => {}
            Ok(Forced::Warn(why)) | Err(why) => {
                out.skipped.push(format!("{st}: refused: {why}"));
                continue;
            }
        }
        let before = gpu.accounting()?;
        let a = match allocate(&gpu.ctx, &gpu.stream, st, bytes, &AllocOptions::default()) {
            Ok(a) => a,
            Err(e) if e.driver_error().is_some() || e.is_out_of_memory() => {
                out.skipped.push(format!("{st}: {e}"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let row = |stage: &str, after: &Accounting| {
            WhoSeesRow::between(dev, st, bytes, stage, &before, after)
        };
        out.rows.push(row("alloc", &gpu.accounting()?));
        let page = crate::host::facts::page_size();
        if a.writable() {
            gpu.kernels
                .touch(&gpu.stream, a.span(), page, 0x5eed_5eed)?;
        } else {
            gpu.kernels.touch_read(&gpu.stream, a.span(), page)?;
        }
        out.rows.push(row("first_touch", &gpu.accounting()?));
        a.free()?;
    }
    Ok(out)
}

fn gib(v: i64) -> String {
    format!("{:+.2}", v as f64 / GIB as f64)
}

/// The table: one line per strategy and stage, each source's change in GiB (2^30 bytes).
pub fn render(w: &WhoSees) -> String {
    let mut out = String::new();
    if let Some(r) = w.rows.first() {
        out.push_str(&format!(
            "Who sees an allocation of {} on device {}: each source's change since before it, GiB (2^30 bytes; - = less free or available, + = more counted)\n",
            fmt_bytes(r.bytes),
            r.device
        ));
    }
    let mut t = new_table(&[
        "strategy",
        "after",
        "cuMemGetInfo free",
        "MemFree",
        "MemAvailable",
        "Cached",
        "Shmem",
        "RSS",
        "cgroup memory.current",
    ]);
    for r in &w.rows {
        t.add_row(vec![
            r.strategy.clone(),
            if r.stage == "alloc" {
                "allocation".into()
            } else {
                "first GPU touch".into()
            },
            gib(r.delta_cumemgetinfo_free_bytes),
            gib(r.delta_mem_free_bytes),
            gib(r.delta_mem_available_bytes),
            gib(r.delta_cached_bytes),
            gib(r.delta_shmem_bytes),
            gib(r.delta_rss_bytes),
            r.delta_cgroup_current_bytes.map_or("n/a".into(), gib),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    for s in &w.skipped {
        out.push_str(&format!("skipped: {s}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostPressure;

    #[test]
    fn rows_are_changes_since_before_and_render_signed() {
        let m = crate::test_support::meminfo("gb10-cache-heavy.txt");
        let before = Accounting::from_parts(&m, 100 << 20, &HostPressure::default())
            .with_device(m.mem_free, None);
        let after = Accounting {
            device_free: Some(m.mem_free - GIB),
            mem_free: before.mem_free - GIB,
            mem_available: before.mem_available - GIB,
            rss: before.rss + GIB / 2,
            ..before
        };
        let r = WhoSeesRow::between(0, Strategy::Pinned, GIB, "alloc", &before, &after);
        assert_eq!(r.delta_cumemgetinfo_free_bytes, -(GIB as i64));
        assert_eq!(r.delta_rss_bytes, (GIB / 2) as i64);
        assert_eq!(r.delta_cached_bytes, 0);
        // No cgroup reading: n/a, not zero.
        assert_eq!(r.delta_cgroup_current_bytes, None);
        let t = render(&WhoSees {
            rows: vec![r],
            skipped: vec!["pageable: not supported: x".into()],
        });
        assert!(t.contains("| pinned   | allocation | -1.00"), "{t}");
        assert!(t.contains("+0.50") && t.contains("n/a"), "{t}");
        assert!(t.contains("skipped: pageable: not supported"), "{t}");
    }
}
