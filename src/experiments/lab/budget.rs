//! The lab's budget: how large and how often each experiment measures so that the whole lab
//! takes about `--budget` minutes. The arithmetic (planning figures in [`cost`], the ladder of
//! tiers) is the lab's; which experiments run is asked of the registry by the runner and passed
//! in as their keys.
//!
//! May import: the sweep's and probe's option types and defaults, units. Pure arithmetic.

use serde::{Deserialize, Serialize};

use crate::experiments::probe::{self, ProbeKind};
use crate::experiments::sweep::{self, Caps};
use crate::units::{GIB, MIB, fmt_bytes};

pub use crate::experiments::cost;

/// What one device brings to the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceBudget {
    pub device: i32,
    /// What an allocation can get (`info`'s estimate).
    pub usable_bytes: u64,
    pub unified: bool,
}

/// The sizes, repetitions and resolutions chosen for a budget, and why.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BudgetPlan {
    pub budget_s: f64,
    /// The planned total, seconds (see [`cost`]).
    pub estimated_s: f64,
    /// Per device: the sweep sizes.
    pub sweep_sizes: Vec<(i32, Vec<u64>)>,
    pub sweep_runs: u32,
    /// Fresh allocations per (strategy, size) (absent in older results).
    #[serde(default)]
    pub sweep_repeat: u32,
    /// The sweep's caps on linear costs.
    #[serde(default)]
    pub sweep_caps: Caps,
    /// Threads of the CPU-first touch above `cpu_single_max_bytes`.
    #[serde(default)]
    pub cpu_threads: u32,
    #[serde(default)]
    pub cpu_single_max_bytes: u64,
    pub selftest_runs: u32,
    pub probe_kinds: Vec<ProbeKind>,
    pub probe_resolution_bytes: u64,
    pub probe_chunk_bytes: u64,
    /// The probe's cap on host-backed strategies (discrete GPUs).
    #[serde(default)]
    pub probe_host_cap_bytes: u64,
    /// Whether managed memory gets the cumulative search.
    #[serde(default)]
    pub probe_cumulative_lazy: bool,
    /// What was scaled down from the defaults, and why (one sentence each).
    pub scaled: Vec<String>,
}

/// One rung of the ladder of plans, cheapest first.
#[derive(Debug, Clone, Copy)]
struct Tier {
    caps: Caps,
    repeat: u32,
    runs: u32,
    probe_host_cap: u64,
    probe_cumulative_lazy: bool,
    probe_resolution: u64,
}

const TIERS: [Tier; 5] = [
    Tier {
        caps: Caps {
            host_max: Some(256 * MIB),
            managed_max: Some(GIB),
            cpu_first_max: Some(256 * MIB),
        },
        repeat: 3,
        runs: 3,
        probe_host_cap: GIB,
        probe_cumulative_lazy: false,
        probe_resolution: GIB,
    },
    Tier {
        caps: Caps {
            host_max: Some(GIB),
            managed_max: Some(16 * GIB),
            cpu_first_max: Some(GIB),
        },
        repeat: 3,
        runs: 3,
        probe_host_cap: 4 * GIB,
        probe_cumulative_lazy: false,
        probe_resolution: GIB,
    },
    Tier {
        caps: Caps {
            host_max: Some(4 * GIB),
            managed_max: None,
            cpu_first_max: Some(4 * GIB),
        },
        repeat: 3,
        runs: 5,
        probe_host_cap: 8 * GIB,
        probe_cumulative_lazy: true,
        probe_resolution: 256 * MIB,
    },
    Tier {
        caps: Caps {
            host_max: Some(16 * GIB),
            managed_max: None,
            cpu_first_max: Some(16 * GIB),
        },
        repeat: 5,
        runs: 5,
        probe_host_cap: probe::DEFAULT_HOST_CAP_BYTES,
        probe_cumulative_lazy: true,
        probe_resolution: 256 * MIB,
    },
    Tier {
        caps: Caps {
            host_max: None,
            managed_max: None,
            cpu_first_max: None,
        },
        repeat: 5,
        runs: 5,
        probe_host_cap: probe::DEFAULT_HOST_CAP_BYTES,
        probe_cumulative_lazy: true,
        probe_resolution: 256 * MIB,
    },
];

/// CPU threads the lab uses for large CPU touches.
pub fn lab_cpu_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8) as u32)
}

/// The lab's single-thread CPU touches stop at this size (larger sizes use several threads).
pub const CPU_SINGLE_MAX: u64 = 256 * MIB;

fn probe_cost(d: &DeviceBudget, t: &Tier, kinds: usize) -> f64 {
    let gib = d.usable_bytes as f64 / GIB as f64;
    let host_gib = if d.unified {
        gib
    } else {
        gib.min(t.probe_host_cap as f64 / GIB as f64)
    };
    let pin = kinds as f64 * host_gib * cost::PIN_S_PER_GIB;
    let managed_runs = if kinds > 1 && t.probe_cumulative_lazy {
        2.0
    } else {
        1.0
    };
    let managed =
        managed_runs * gib.min(if d.unified { gib } else { f64::MAX }) / cost::MIGRATE_GIB_PER_S;
    // pinned and registered (and pageable on unified memory, which is touched like managed).
    let host_strategies = if d.unified { 3.0 } else { 2.0 };
    cost::CONTEXT_S + cost::PROBE_FIXED_S + host_strategies * pin + managed
}

/// The planned seconds of one device's sweep.
fn sweep_cost(sizes: &[u64], t: &Tier, unified: bool, threads: u32) -> f64 {
    let within = |cap: Option<u64>, b: u64| cap.is_none_or(|c| b <= c);
    let host_strategies = if unified { 3.0 } else { 2.0 };
    let host_per_gib =
        cost::PIN_S_PER_GIB + (2.0 * f64::from(t.runs + 1) + 1.0) * cost::HOST_PASS_S_PER_GIB;
    let mut per_repeat = 0.0;
    for &b in sizes {
        let g = b as f64 / GIB as f64;
        per_repeat += 3.0 * (cost::PER_ALLOCATION_S + g * cost::DEVICE_S_PER_GIB);
        if within(t.caps.managed_max, b) {
            per_repeat += 3.0 * cost::PER_ALLOCATION_S + g * cost::MANAGED_S_PER_GIB;
        }
        if within(t.caps.host_max, b) {
            per_repeat += host_strategies * (cost::PER_ALLOCATION_S + g * host_per_gib);
        }
        if within(t.caps.cpu_first_max, b) {
            let speedup = if b <= CPU_SINGLE_MAX || threads <= 1 {
                1.0
            } else {
                cost::CPU_THREAD_SPEEDUP
            };
            per_repeat +=
                3.0 * g * (cost::CPU_FAULT_S_PER_GIB / speedup + cost::MIGRATE_BACK_S_PER_GIB)
                    + host_strategies * g * (cost::PIN_S_PER_GIB + cost::HOST_PASS_S_PER_GIB);
        }
    }
    cost::CONTEXT_S + cost::SWEEP_FIXED_S + f64::from(t.repeat) * per_repeat
}

/// The planned seconds of everything but the sweep, for the experiments whose keys are in
/// `runs`.
fn fixed_cost(t: &Tier, devices: &[DeviceBudget], runs: &[&str], probe_kinds: usize) -> f64 {
    let run = |key: &str| runs.contains(&key);
    let mut s = cost::HOST_STEPS_S;
    if run("cache-effect") && !devices.is_empty() {
        s += cost::CACHE_EFFECT_S;
    }
    for d in devices {
        if run("selftest") {
            s += cost::CONTEXT_S + cost::SELFTEST_S;
        }
        if run("probe") {
            s += probe_cost(d, t, probe_kinds);
        }
        if run("layout") {
            s += cost::CONTEXT_S + cost::LAYOUT_S;
        }
    }
    if run("load") && !devices.is_empty() {
        s += cost::CONTEXT_S + cost::LOAD_S;
    }
    s
}

/// Fits the lab into `budget_s`, for the experiments whose `--skip` keys are in `runs` (those
/// that will run): the richest tier of [`TIERS`] whose planned total fits; below
/// the cheapest, the sweep's largest sizes are dropped until it fits. `scaled` says, one
/// sentence each, what was capped against the full protocol and why.
pub fn plan_budget(budget_s: f64, devices: &[DeviceBudget], runs: &[&str]) -> BudgetPlan {
    let run = |key: &str| runs.contains(&key);
    let (run_sweep, run_probe) = (run("sweep"), run("probe"));
    let threads = lab_cpu_threads();
    let kinds_all = vec![ProbeKind::Single, ProbeKind::Cumulative];
    let fixed = |t: &Tier| fixed_cost(t, devices, runs, kinds_all.len());
    let full_sizes: Vec<(i32, Vec<u64>, bool)> = devices
        .iter()
        .map(|d| (d.device, sweep::default_sizes(d.usable_bytes), d.unified))
        .collect();
    let total = |t: &Tier, sizes: &[(i32, Vec<u64>, bool)]| {
        fixed(t)
            + if run_sweep {
                sizes
                    .iter()
                    .map(|(_, s, u)| sweep_cost(s, t, *u, threads))
                    .sum::<f64>()
            } else {
                0.0
            }
    };
    let chosen = TIERS
        .iter()
        .rposition(|t| total(t, &full_sizes) <= budget_s)
        .unwrap_or(0);
    let t = TIERS[chosen];
    let mut scaled = Vec::new();
    let mut sizes = full_sizes.clone();
    if run_sweep {
        // Below the cheapest tier: drop the largest sizes (one device at a time, largest first).
        while total(&t, &sizes) > budget_s {
            let Some(d) = sizes
                .iter_mut()
                .filter(|(_, s, _)| s.len() > 1)
                .max_by_key(|(_, s, _)| s.iter().sum::<u64>())
            else {
                break;
            };
            d.1.pop();
        }
        for ((dev, all, _), (_, kept, _)) in full_sizes.iter().zip(&sizes) {
            if kept.len() < all.len() {
                let dropped: Vec<String> =
                    all[kept.len()..].iter().map(|b| fmt_bytes(*b)).collect();
                scaled.push(format!(
                    "sweep on device {dev}: sizes {} left out to fit the {:.1}-minute budget",
                    dropped.join(", "),
                    budget_s / 60.0
                ));
            }
        }
        scaled.extend(sweep_caps_note(&t, threads, budget_s));
    }
    if run_probe && !devices.is_empty() {
        scaled.extend(probe_note(&t, budget_s));
    }
    let estimated_s = total(&t, &sizes);
    if estimated_s > budget_s * 1.05 {
        scaled.push(format!(
            "even scaled down, the lab is planned at about {:.1} minutes, over the {:.1}-minute budget",
            estimated_s / 60.0,
            budget_s / 60.0
        ));
    }
    BudgetPlan {
        budget_s,
        estimated_s,
        sweep_sizes: if run_sweep {
            sizes.into_iter().map(|(d, s, _)| (d, s)).collect()
        } else {
            Vec::new()
        },
        sweep_runs: t.runs,
        sweep_repeat: t.repeat,
        sweep_caps: t.caps,
        cpu_threads: threads,
        cpu_single_max_bytes: CPU_SINGLE_MAX,
        selftest_runs: 10,
        probe_kinds: kinds_all,
        probe_resolution_bytes: t.probe_resolution,
        probe_chunk_bytes: GIB,
        probe_host_cap_bytes: t.probe_host_cap,
        probe_cumulative_lazy: t.probe_cumulative_lazy,
        scaled,
    }
}

/// The sentence saying which of the sweep's linear costs tier `t` caps, if any.
fn sweep_caps_note(t: &Tier, threads: u32, budget_s: f64) -> Option<String> {
    let caps = t.caps;
    let cap = |c: Option<u64>| c.map(fmt_bytes);
    let mut parts = Vec::new();
    if let Some(c) = cap(caps.host_max) {
        parts.push(format!(
            "pinned, registered and pageable up to {c} (pinning costs about {:.1} s per GiB)",
            cost::PIN_S_PER_GIB
        ));
    }
    if let Some(c) = cap(caps.managed_max) {
        parts.push(format!(
            "managed strategies up to {c} (first-touch migration costs about {:.2} s per GiB)",
            1.0 / cost::MIGRATE_GIB_PER_S
        ));
    }
    if let Some(c) = cap(caps.cpu_first_max) {
        parts.push(format!(
            "the CPU-first variant up to {c} (one CPU thread faults managed memory at about {:.2} s per GiB; one thread at {} and below, {threads} above)",
            cost::CPU_FAULT_S_PER_GIB,
            fmt_bytes(CPU_SINGLE_MAX)
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "sweep: costs linear in size measured as per-GiB rates at smaller sizes: {}; device, pool and vmm at every size; {} fresh allocations and {} bandwidth runs each, to fit the {:.1}-minute budget",
            parts.join("; "),
            t.repeat,
            t.runs,
            budget_s / 60.0
        )
    })
}

/// The sentence saying how tier `t` coarsens the probe, if it does.
fn probe_note(t: &Tier, budget_s: f64) -> Option<String> {
    let mut parts = Vec::new();
    if t.probe_host_cap < probe::DEFAULT_HOST_CAP_BYTES {
        parts.push(format!(
            "pinned and registered capped at {} on discrete cards (not 32 GiB)",
            fmt_bytes(t.probe_host_cap)
        ));
    }
    if !t.probe_cumulative_lazy {
        parts
            .push("no cumulative search of managed memory (it touches everything it holds)".into());
    }
    if t.probe_resolution > 256 * MIB {
        parts.push(format!(
            "single-allocation resolution {} (not 256 MiB)",
            fmt_bytes(t.probe_resolution)
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "probe: {}, to fit the {:.1}-minute budget",
            parts.join("; "),
            budget_s / 60.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &["selftest", "sweep", "probe", "layout", "cache-effect"];
    const ALL_BUT_EFFECT: &[&str] = &["selftest", "sweep", "probe", "layout"];

    fn dev(device: i32, gib: u64, unified: bool) -> DeviceBudget {
        DeviceBudget {
            device,
            usable_bytes: gib * GIB,
            unified,
        }
    }

    #[test]
    fn default_budget_fits_two_minutes_on_an_h200_and_an_h100() {
        for gib in [139, 79] {
            let p = plan_budget(120.0, &[dev(0, gib, false)], ALL_BUT_EFFECT);
            eprintln!("{gib} GiB: planned {:.1} s: {:#?}", p.estimated_s, p.scaled);
            // Every default size is kept (device, pool and vmm cost milliseconds at any size).
            assert_eq!(p.sweep_sizes[0].1, sweep::default_sizes(gib * GIB));
            // n >= 3 for one-shot phases; linear costs capped and said so.
            assert!(p.sweep_repeat >= 3);
            assert_eq!(p.sweep_caps.host_max, Some(GIB));
            assert_eq!(p.sweep_caps.cpu_first_max, Some(GIB));
            assert_eq!(p.sweep_caps.managed_max, Some(16 * GIB));
            assert!(p.estimated_s <= 120.0, "{}", p.estimated_s);
            let said = p.scaled.join("\n");
            assert!(
                said.contains("per-GiB rates")
                    && said.contains("pinned, registered and pageable up to 1 GiB"),
                "{said}"
            );
            assert!(
                said.contains("probe: pinned and registered capped at 4 GiB"),
                "{said}"
            );
            assert!(!p.probe_cumulative_lazy);
        }
    }

    #[test]
    fn a_larger_budget_buys_larger_caps_and_more_allocations() {
        let small = plan_budget(120.0, &[dev(0, 139, false)], ALL_BUT_EFFECT);
        let big = plan_budget(60.0 * 60.0, &[dev(0, 139, false)], ALL_BUT_EFFECT);
        assert!(big.sweep_repeat >= small.sweep_repeat && big.sweep_repeat >= 5);
        assert_eq!(big.sweep_caps, Caps::default(), "an hour lifts every cap");
        assert!(big.probe_cumulative_lazy);
        assert_eq!(big.probe_host_cap_bytes, probe::DEFAULT_HOST_CAP_BYTES);
        assert!(big.estimated_s > small.estimated_s && big.estimated_s <= 3600.0);
        let mid = plan_budget(600.0, &[dev(0, 139, false)], ALL_BUT_EFFECT);
        assert!(mid.sweep_caps.host_max.unwrap_or(u64::MAX) > GIB, "{mid:?}");
    }

    #[test]
    fn small_budgets_drop_the_largest_sizes_and_say_so() {
        let p = plan_budget(
            30.0,
            &[dev(0, 79, false), dev(1, 79, false)],
            ALL_BUT_EFFECT,
        );
        for (_, s) in &p.sweep_sizes {
            assert!(s.len() < sweep::default_sizes(79 * GIB).len(), "{s:?}");
            assert_eq!(s[0], 256 * MIB, "the smallest size always stays");
        }
        assert!(
            p.scaled.iter().any(|s| s.contains("left out")),
            "{:?}",
            p.scaled
        );
        assert_eq!(p.sweep_repeat, 3, "never below 3 fresh allocations");
        // A tiny budget coarsens the probe too, and says it is still over.
        let p = plan_budget(30.0, &[dev(0, 110, true)], ALL);
        assert_eq!(p.probe_resolution_bytes, GIB);
        assert!(!p.probe_cumulative_lazy);
        assert!(
            p.scaled.iter().any(|s| s.contains("over the")),
            "{:?}",
            p.scaled
        );
    }

    #[test]
    fn no_device_no_sweep() {
        let p = plan_budget(600.0, &[], ALL);
        assert!(p.sweep_sizes.is_empty());
        assert!(p.estimated_s <= cost::HOST_STEPS_S + 1e-9);
    }
}
