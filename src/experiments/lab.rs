//! `cumemlab lab`: the whole lab in one command, for the new owner of a GPU host. It runs `info`,
//! `selftest`, `sweep`, `probe`, `cache` status, `cache effect` (by default on integrated or
//! pageable-memory devices, where the page cache competes with GPU allocations; with
//! `--with-cache-effect` on discrete cards),
//! `layout --preset 13b-sim` and the `plan` capacity matrix, each in turn on each selected device,
//! with sizes and repetitions scaled to a time budget (two minutes by default: the arithmetic is in
//! [`cost`]); then it writes a results folder:
//! `results.json` (everything, with the environment), one CSV per experiment, `report.md` with its
//! figures under `plots/`, and a self-contained `report.html`.
//!
//! A step that fails is recorded with its reason and the lab goes on; Ctrl-C stops after the
//! current step's cleanup, writes what exists (marked interrupted) and exits 130. On a machine
//! without a GPU the host-side steps run (host memory, page cache, `plan` for `--target`), the
//! others are recorded as needing a GPU, and the lab exits 0.
//!
//! The results type ([`LabResults`]) holds each experiment's own result type, so a results file
//! is read back by the same code that wrote it; [`report`] builds the report from it alone
//! (every number in the report comes from `results.json`), and `--from DIR` re-renders a folder.

pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::cache::{self, CacheAction, CacheRow, EffectOptions, EffectRow};
use super::env::Environment;
use super::info::{self, InfoReport};
use super::layout::{self, LayoutOptions, LayoutReport};
use super::probe::{self, MaxSel, ProbeKind, ProbeOptions, ProbeRow};
use super::selftest::{self, SelftestOptions, SelftestReport};
use super::sweep::{self, Caps, SweepOptions, SweepRow};
use super::watch::DeviceView;
use super::{DeviceSel, Gpu, interrupted, require_driver};
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::memory::AllocOptions;
use crate::plan::{CapacityMatrix, Target, capacity_matrix};
use crate::report::sink::{now_rfc3339, read_checked_json, to_csv, to_json};
use crate::report::{ResultSink, SCHEMA, SCHEMA_VERSION, new_table, write_atomic};
use crate::units::{GIB, MIB, fmt_bytes, parse_size};

/// The `experiment` of a lab results file.
pub const EXPERIMENT: &str = "lab";
/// The results file in a results folder.
pub const RESULTS_FILE: &str = "results.json";
/// The layout preset the lab allocates.
pub const LAYOUT_PRESET: &str = "13b-sim";
/// The default budget, minutes.
pub const DEFAULT_BUDGET_MINUTES: f64 = 2.0;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    /// It ran and failed (an error, or results that did not verify); the reason says which.
    Failed,
    /// Not run: left out with `--skip`, not available in this build, does not fit, or the lab
    /// was interrupted before it.
    Skipped,
    /// Not run: there is no GPU here.
    NeedsGpu,
    /// Ctrl-C or SIGTERM arrived during it: what it measured so far is kept.
    Interrupted,
}

impl StepStatus {
    pub fn label(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
            StepStatus::NeedsGpu => "needs a GPU",
            StepStatus::Interrupted => "interrupted",
        }
    }
}

/// One step of the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// `info`, `selftest`, `sweep`, `probe`, `cache`, `cache effect`, `layout`, `plan`.
    pub name: String,
    /// The device it ran on (per-device steps).
    pub device: Option<i32>,
    pub status: StepStatus,
    pub reason: Option<String>,
    pub seconds: f64,
}

/// The rows, skipped combinations and notes of one experiment's result document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section<R> {
    pub rows: Vec<R>,
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
}

impl<R> Default for Section<R> {
    fn default() -> Self {
        Section {
            rows: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
        }
    }
}

impl<R: Clone> Section<R> {
    fn absorb<E>(&mut self, doc: &crate::report::Document<R, E>) {
        self.rows.extend(doc.rows.iter().cloned());
        self.skipped.extend(doc.skipped.iter().cloned());
        self.notes.extend(doc.notes.iter().cloned());
    }
}

/// `cuMemGetInfo` of one device at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceFree {
    pub device: i32,
    pub name: String,
    pub cumemgetinfo_free_bytes: u64,
    pub cumemgetinfo_total_bytes: u64,
}

/// Memory accounting at one moment of the lab (its start and its end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountingSnapshot {
    /// `start` or `end`.
    pub when: String,
    pub mem_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub cached_bytes: u64,
    pub swap_free_bytes: u64,
    pub devices: Vec<DeviceFree>,
}

impl AccountingSnapshot {
    /// From an environment (its meminfo and its devices' `cuMemGetInfo`).
    pub fn from_env(when: &str, env: &Environment) -> AccountingSnapshot {
        let m = env.meminfo.clone().unwrap_or_default();
        AccountingSnapshot {
            when: when.into(),
            mem_total_bytes: m.mem_total,
            mem_free_bytes: m.mem_free,
            mem_available_bytes: m.mem_available,
            cached_bytes: m.cached,
            swap_free_bytes: m.swap_free,
            devices: env
                .devices
                .iter()
                .map(|d| DeviceFree {
                    device: d.ordinal,
                    name: d.name.clone(),
                    cumemgetinfo_free_bytes: d.cumemgetinfo_free_bytes,
                    cumemgetinfo_total_bytes: d.cumemgetinfo_total_bytes,
                })
                .collect(),
        }
    }
}

/// What the lab was asked to do, and what the budget scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabSettings {
    pub budget_minutes: f64,
    /// The devices run (empty without a GPU).
    pub devices: Vec<i32>,
    /// `--target`, when given.
    pub target: Option<String>,
    pub with_cache_effect: bool,
    /// Steps left out with `--skip`.
    pub skip: Vec<String>,
    pub headroom_bytes: u64,
    pub plan: BudgetPlan,
    /// Why the lab has no GPU part, when it has none.
    pub no_gpu_reason: Option<String>,
}

/// The whole lab: `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabResults {
    pub schema: String,
    pub schema_version: u32,
    pub tool_version: String,
    /// Always `lab`.
    pub experiment: String,
    pub command_line: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// False while running and when interrupted.
    pub complete: bool,
    pub interrupted: bool,
    pub environment: Environment,
    pub settings: LabSettings,
    pub steps: Vec<StepOutcome>,
    /// Accounting at the start and at the end.
    #[serde(default)]
    pub accounting: Vec<AccountingSnapshot>,
    #[serde(default)]
    pub info: Option<InfoReport>,
    #[serde(default)]
    pub selftest: Option<Vec<SelftestReport>>,
    #[serde(default)]
    pub sweep: Option<Section<SweepRow>>,
    #[serde(default)]
    pub probe: Option<Section<ProbeRow>>,
    /// `cache` status rows; the notes are its explanation.
    #[serde(default)]
    pub cache: Option<Section<CacheRow>>,
    #[serde(default)]
    pub cache_effect: Option<Section<EffectRow>>,
    /// One report per device.
    #[serde(default)]
    pub layout: Option<Vec<LayoutReport>>,
    /// One capacity matrix per device (its usable memory as the target), then `--target`.
    #[serde(default)]
    pub plan: Option<Vec<CapacityMatrix>>,
}

impl LabResults {
    /// An empty results document for `environment`.
    pub fn new(environment: Environment, settings: LabSettings) -> LabResults {
        let accounting = vec![AccountingSnapshot::from_env("start", &environment)];
        LabResults {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            experiment: EXPERIMENT.into(),
            command_line: crate::report::sink::command_line(),
            started_at: now_rfc3339(),
            finished_at: None,
            complete: false,
            interrupted: false,
            environment,
            settings,
            steps: Vec::new(),
            accounting,
            info: None,
            selftest: None,
            sweep: None,
            probe: None,
            cache: None,
            cache_effect: None,
            layout: None,
            plan: None,
        }
    }

    /// Reads `results.json` (or a folder holding one): a newer schema, a corrupt file, or a result
    /// file of another experiment each get one sentence (exit 2).
    pub fn read(path: &Path) -> Result<LabResults> {
        let file = if path.is_dir() {
            path.join(RESULTS_FILE)
        } else {
            path.to_path_buf()
        };
        if path.is_dir() && !file.is_file() {
            return Err(Error::usage(format!(
                "{} holds no {RESULTS_FILE}: give a folder written by `cumemlab lab`",
                path.display()
            )));
        }
        let v = read_checked_json(&file)?;
        Self::from_checked(&file, v)
    }

    /// From JSON that passed [`read_checked_json`].
    pub fn from_checked(file: &Path, v: serde_json::Value) -> Result<LabResults> {
        let exp = v.get("experiment").and_then(|e| e.as_str()).unwrap_or("?");
        if exp != EXPERIMENT {
            return Err(Error::usage(format!(
                "{} is a `{exp}` result file, not lab results: give the results.json of a `cumemlab lab` folder",
                file.display()
            )));
        }
        serde_json::from_value(v)
            .map_err(|e| Error::usage(format!("{} is a damaged result file: {e}", file.display())))
    }

    /// The devices with results, in order (from the environment and every row).
    pub fn devices(&self) -> Vec<i32> {
        let mut d: Vec<i32> = self.environment.devices.iter().map(|d| d.ordinal).collect();
        d.extend(self.settings.devices.iter().copied());
        if let Some(s) = &self.sweep {
            d.extend(s.rows.iter().map(|r| r.device));
        }
        d.sort_unstable();
        d.dedup();
        d
    }

    /// The name of device `dev` ("?" when unknown).
    pub fn device_name(&self, dev: i32) -> String {
        self.environment
            .devices
            .iter()
            .find(|d| d.ordinal == dev)
            .map(|d| d.name.clone())
            .or_else(|| {
                self.selftest.as_ref().and_then(|v| {
                    v.iter()
                        .find(|s| s.device == dev)
                        .map(|s| s.device_name.clone())
                })
            })
            .unwrap_or_else(|| "?".into())
    }

    /// The steps that failed.
    pub fn failed_steps(&self) -> Vec<&StepOutcome> {
        self.steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .collect()
    }
}

// ---------------------------------------------------------------- the budget

/// Planning figures, seconds, from the default lab on the H200 of tests/fixtures/results/h200-2026-11-26-lab-old-build
/// (`steps.csv`: sweep 234 s, probe 71 s, everything else 1.2 s; the sweep's rows and its
/// "wall time by phase" note). Where the 234 s of sweep went (five sizes summing to 56 GiB, one
/// allocation each, 5 bandwidth runs): the CPU-first variant 127 s (managed CPU first touch with
/// one thread 0.30 s per GiB for each of three managed strategies, the GPU touch after it 0.15 s
/// per GiB, pinned and registered allocated a second time), allocation 38 s (cuMemHostAlloc 0.36
/// s per GiB, cuMemHostRegister 0.30 s per GiB; device memory about 1 ms at any size), fill and
/// read 30 s (pinned and registered over PCIe, 0.022 s per GiB per pass), verify 23 s, free 11 s.
/// The probe's 71 s: pinned and registered pinned 32 GiB twice each (single and cumulative, 50
/// s), managed touched 117 GiB twice (18 s); device, pool and vmm 2 s together.
///
/// So the default (2-minute) plan measures the linear costs at sizes that show their rate and no
/// larger: host-backed strategies up to 1 GiB, the CPU-first variant up to 1 GiB (one thread at
/// 256 MiB for the single-thread rate, several at 1 GiB), managed migration up to 16 GiB; device,
/// pool and vmm at every size (they cost milliseconds); three fresh allocations each; the probe
/// with host strategies capped at 4 GiB and no cumulative search of managed memory. The model
/// gives about 75 s for this on the H200 (139 GiB usable; sizes 0.25, 1, 4, 16 and 34.8 GiB):
/// sweep 3 allocations x 11.5 s + 4 s (per allocation round: device, pool and vmm 2.4 s; managed
/// up to 16 GiB 0.6 + 21.25 GiB x 0.2 = 4.9 s; pinned and registered up to 1 GiB 1.9 s; the
/// CPU-first variant up to 1 GiB 2.5 s), probe 26 s (pinned and registered 2 x 8.25 GiB x 0.5 s,
/// managed single 139 GiB / 10 GiB/s, 6 s fixed), the other steps 9 s. `--budget 5` buys the
/// next tier (4 GiB caps, managed at every size, the whole probe: about 160 s), `--budget 10`
/// 5 fresh allocations and 16 GiB caps (about 560 s), `--budget 20` no caps (about 1170 s).
pub mod cost {
    /// `info`, `cache` status and `plan` together (0.4 s measured).
    pub const HOST_STEPS_S: f64 = 2.0;
    /// Opening a device for a step (context, module load).
    pub const CONTEXT_S: f64 = 1.0;
    /// `selftest` on one device with 10 bandwidth runs (0.4 s measured).
    pub const SELFTEST_S: f64 = 2.0;
    /// `sweep`: per device, whatever the sizes.
    pub const SWEEP_FIXED_S: f64 = 3.0;
    /// `sweep`: per fresh allocation (accounting snapshots, synchronisations, launches).
    pub const PER_ALLOCATION_S: f64 = 0.05;
    /// `sweep`: device, pool or vmm memory, per GiB per allocation (touches, fill, read, check).
    pub const DEVICE_S_PER_GIB: f64 = 0.01;
    /// Pinning or registering host memory and freeing it, per GiB (0.36 + 0.09 s measured on
    /// the H200 host; DESIGN.md: about 0.3 s per GB on H100).
    pub const PIN_S_PER_GIB: f64 = 0.5;
    /// One pass of a kernel over host memory through PCIe, per GiB.
    pub const HOST_PASS_S_PER_GIB: f64 = 0.022;
    /// Migrating managed memory on first GPU touch, GiB per second (13.9 GB/s measured).
    pub const MIGRATE_GIB_PER_S: f64 = 10.0;
    /// The three managed strategies together, per GiB per allocation: first touches (0.093 +
    /// 0.023 + 0.005 s measured at 16 GiB), frees (3 x 0.015 s) and the CPU sample check.
    pub const MANAGED_S_PER_GIB: f64 = 0.2;
    /// One CPU thread faulting in managed memory, per GiB (0.30 s measured).
    pub const CPU_FAULT_S_PER_GIB: f64 = 0.30;
    /// Planned speed-up of the CPU touch with several threads (faulting does not scale far).
    pub const CPU_THREAD_SPEEDUP: f64 = 2.0;
    /// Managed memory migrating back to the GPU after the CPU touched it, per GiB (0.15 s).
    pub const MIGRATE_BACK_S_PER_GIB: f64 = 0.15;
    /// `probe`: per device, besides pinning and migration.
    pub const PROBE_FIXED_S: f64 = 5.0;
    /// `layout --preset 13b-sim` on one device (0.4 s measured).
    pub const LAYOUT_S: f64 = 2.0;
    /// `cache effect` (a 4 GiB file written, read, evicted; three probes of `device`).
    pub const CACHE_EFFECT_S: f64 = 30.0;
}

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

/// Fits the lab into `budget_s`: the richest tier of [`TIERS`] whose planned total fits; below
/// the cheapest, the sweep's largest sizes are dropped until it fits. `scaled` says, one
/// sentence each, what was capped against the full protocol and why.
pub fn plan_budget(
    budget_s: f64,
    devices: &[DeviceBudget],
    run_selftest: bool,
    run_sweep: bool,
    run_probe: bool,
    run_layout: bool,
    run_cache_effect: bool,
) -> BudgetPlan {
    let threads = lab_cpu_threads();
    let kinds_all = vec![ProbeKind::Single, ProbeKind::Cumulative];
    let fixed = |t: &Tier| {
        let mut s = cost::HOST_STEPS_S;
        if run_cache_effect && !devices.is_empty() {
            s += cost::CACHE_EFFECT_S;
        }
        for d in devices {
            if run_selftest {
                s += cost::CONTEXT_S + cost::SELFTEST_S;
            }
            if run_probe {
                s += probe_cost(d, t, kinds_all.len());
            }
            if run_layout {
                s += cost::CONTEXT_S + cost::LAYOUT_S;
            }
        }
        s
    };
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
        if !parts.is_empty() {
            scaled.push(format!(
                "sweep: costs linear in size measured as per-GiB rates at smaller sizes: {}; device, pool and vmm at every size; {} fresh allocations and {} bandwidth runs each, to fit the {:.1}-minute budget",
                parts.join("; "),
                t.repeat,
                t.runs,
                budget_s / 60.0
            ));
        }
    }
    if run_probe && !devices.is_empty() {
        let mut parts = Vec::new();
        if t.probe_host_cap < probe::DEFAULT_HOST_CAP_BYTES {
            parts.push(format!(
                "pinned and registered capped at {} on discrete cards (not 32 GiB)",
                fmt_bytes(t.probe_host_cap)
            ));
        }
        if !t.probe_cumulative_lazy {
            parts.push(
                "no cumulative search of managed memory (it touches everything it holds)".into(),
            );
        }
        if t.probe_resolution > 256 * MIB {
            parts.push(format!(
                "single-allocation resolution {} (not 256 MiB)",
                fmt_bytes(t.probe_resolution)
            ));
        }
        if !parts.is_empty() {
            scaled.push(format!(
                "probe: {}, to fit the {:.1}-minute budget",
                parts.join("; "),
                budget_s / 60.0
            ));
        }
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

// ---------------------------------------------------------------- command line

/// The steps `--skip` can name.
pub const STEP_NAMES: &[&str] = &[
    "info",
    "selftest",
    "sweep",
    "probe",
    "cache",
    "cache-effect",
    "layout",
    "plan",
];

fn parse_skip(s: &str) -> std::result::Result<crate::cli::List<String>, String> {
    let mut v = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let k = p.to_ascii_lowercase().replace(['_', ' '], "-");
        if !STEP_NAMES.contains(&k.as_str()) {
            return Err(format!(
                "unknown step `{p}`: --skip takes {}",
                STEP_NAMES.join(", ")
            ));
        }
        v.push(k);
    }
    Ok(crate::cli::List(v))
}

fn parse_minutes(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches("min")
        .trim()
        .parse()
        .map_err(|_| format!("--budget `{s}` is not a number of minutes: give for example 10"))?;
    if !(0.5..=1440.0).contains(&v) {
        return Err(format!(
            "--budget {v} is outside 0.5 to 1440 minutes: give for example 10"
        ));
    }
    Ok(v)
}

fn parse_target(s: &str) -> std::result::Result<Target, String> {
    Target::parse(s).map_err(|e| e.to_string())
}

/// `cumemlab lab` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab lab\n  cumemlab lab --budget 5 --out /shared/cumemlab\n  cumemlab lab --device all --with-cache-effect\n  cumemlab lab --skip probe,layout --target h100-80gb\n  cumemlab lab --from cumemlab-results/spark-2025-06-01   (re-render the report of a folder)\n\n\
Writes DIR/<host>-<date>/ (DIR from --out, default cumemlab-results): results.json, one CSV per\n\
experiment, report.md with plots/*.svg, and report.html (self-contained). Without a GPU it runs\n\
the host-side parts and says which parts need one. Compare folders with `cumemlab compare`."
)]
pub struct LabArgs {
    /// Folder to write the results folder into (it is created); each run writes DIR/<host>-<date>/, so many machines can share one DIR.
    #[arg(long, default_value = "cumemlab-results")]
    pub out: PathBuf,
    /// The results folder's name inside --out (default: <host>-<date>, with -2, -3... when taken).
    #[arg(long)]
    pub name: Option<String>,
    /// Minutes the whole lab should take, roughly: sweep sizes, repetitions and probe resolution are scaled to fit.
    #[arg(long, default_value_t = DEFAULT_BUDGET_MINUTES, value_parser = parse_minutes)]
    pub budget: f64,
    /// Device ordinal, or `all` (each device in turn, one context each).
    #[arg(long, default_value = "0", value_parser = DeviceSel::parse)]
    pub device: DeviceSel,
    /// Also plan for this target (gb10, h100-80gb, h200, rtx4090, rtx5090, or a size); without a GPU the default is gb10.
    #[arg(long, value_parser = parse_target)]
    pub target: Option<Target>,
    /// Also run `cache effect` on a discrete card (writes and removes a temporary file of up to 4 GiB); integrated or pageable-memory devices (GB10) run it by default (`--skip cache-effect` leaves it out).
    #[arg(long)]
    pub with_cache_effect: bool,
    /// Steps to leave out, comma-separated: info, selftest, sweep, probe, cache, cache-effect, layout, plan.
    #[arg(long, value_parser = parse_skip)]
    pub skip: Option<crate::cli::List<String>>,
    /// Memory that must stay available to the host (MemAvailable minus this is the ceiling).
    #[arg(long, default_value = "8GiB", value_parser = parse_size)]
    pub headroom: u64,
    /// Re-render report.md, report.html, plots and CSVs of an existing results folder; measures nothing.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["name", "skip", "with_cache_effect", "target"])]
    pub from: Option<PathBuf>,
    /// Print results.json on stdout at the end instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bars (the one line per step on stderr stays).
    #[arg(long, short)]
    pub quiet: bool,
}

/// The host name as a folder name: letters, digits, `.`, `_`, `-`.
pub fn folder_host(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "host".into() } else { s }
}

/// Creates the results folder: `out/name` (refused when it already holds results), or
/// `out/<host>-<date>` with `-2`, `-3`... appended when that is taken.
pub fn create_results_dir(
    out: &Path,
    name: Option<&str>,
    host: &str,
    date: &str,
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| {
        Error::usage(format!(
            "--out {}: cannot create the folder ({e}); give a writable folder",
            out.display()
        ))
    })?;
    // Each folder is made with one create_dir, which fails when the name exists: two labs started
    // together never share a folder (the loser takes the next suffix, or is refused with --name).
    let make = |d: &Path| -> Result<bool> {
        match std::fs::create_dir(d) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::usage(format!(
                "cannot create {} ({e}); give a writable --out",
                d.display()
            ))),
        }
    };
    let dir = match name {
        Some(n) => {
            if n.is_empty() || n.contains('/') || n == "." || n == ".." {
                return Err(Error::usage(format!(
                    "--name `{n}` is not a folder name: give a plain name such as spark-1"
                )));
            }
            let d = out.join(n);
            if !make(&d)? {
                return Err(Error::usage(if d.join(RESULTS_FILE).exists() {
                    format!(
                        "{} already holds lab results: choose another --name or remove it",
                        d.display()
                    )
                } else {
                    format!(
                        "{} already exists: choose another --name (lab writes only into a folder it creates)",
                        d.display()
                    )
                }));
            }
            d
        }
        None => {
            let base = format!("{}-{date}", folder_host(host));
            let mut found = None;
            for i in 1..=10_000u32 {
                let d = if i == 1 {
                    out.join(&base)
                } else {
                    out.join(format!("{base}-{i}"))
                };
                if make(&d)? {
                    found = Some(d);
                    break;
                }
            }
            found.ok_or_else(|| {
                Error::usage(format!(
                    "{} holds 10000 results folders named {base}-N: give --name",
                    out.display()
                ))
            })?
        }
    };
    crate::report::sink::check_writable(&dir.join(RESULTS_FILE))?;
    Ok(dir)
}

// ---------------------------------------------------------------- running

/// Runs the lab and keeps `results.json` current.
struct Lab {
    res: LabResults,
    dir: PathBuf,
    total: usize,
    done: usize,
    stopped: bool,
}

/// What a step's body says about itself when it returns normally.
enum Ran {
    Ok,
    /// Ran, and its results say it failed (kept), with the reason.
    Failed(String),
}

impl Lab {
    fn save(&self) -> Result<()> {
        write_atomic(&self.dir.join(RESULTS_FILE), &to_json(&self.res)?)
    }

    fn log(&self, line: &str) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "cumemlab lab: {line}");
    }

    fn record(
        &mut self,
        name: &str,
        device: Option<i32>,
        status: StepStatus,
        reason: Option<String>,
        seconds: f64,
    ) {
        self.res.steps.push(StepOutcome {
            name: name.into(),
            device,
            status,
            reason,
            seconds,
        });
    }

    /// Runs one step: a skip or missing GPU is recorded without running it; an error is recorded
    /// and the lab goes on; Ctrl-C stops the lab after this step.
    fn step(
        &mut self,
        name: &str,
        device: Option<i32>,
        not_run: Option<(StepStatus, String)>,
        body: impl FnOnce(&mut LabResults) -> Result<Ran>,
    ) -> Result<()> {
        self.done += 1;
        let what = match device {
            Some(d) => format!("{name} on device {d}"),
            None => name.to_string(),
        };
        let head = format!("[{}/{}] {what}", self.done, self.total);
        if self.stopped || interrupted() {
            self.stopped = true;
            self.record(
                name,
                device,
                StepStatus::Skipped,
                Some("not run: the lab was interrupted before it".into()),
                0.0,
            );
            return self.save();
        }
        if let Some((status, reason)) = not_run {
            self.log(&format!("{head}: {} ({reason})", status.label()));
            self.record(name, device, status, Some(reason), 0.0);
            return self.save();
        }
        self.log(&format!("{head} ..."));
        let t = Instant::now();
        let r = body(&mut self.res);
        let secs = t.elapsed().as_secs_f64();
        let (status, reason) = match r {
            Ok(Ran::Ok) if interrupted() => {
                (StepStatus::Interrupted, Some("Ctrl-C or SIGTERM".into()))
            }
            Ok(Ran::Ok) => (StepStatus::Ok, None),
            Ok(Ran::Failed(why)) => (StepStatus::Failed, Some(why)),
            Err(Error::Interrupted) => (
                StepStatus::Interrupted,
                Some("Ctrl-C or SIGTERM: the measurements so far are kept".into()),
            ),
            // Bad input for this machine (a layout that does not fit, say): not run.
            Err(Error::Usage(why)) => (StepStatus::Skipped, Some(why)),
            Err(e) => (StepStatus::Failed, Some(e.to_string())),
        };
        self.log(&format!(
            "{head}: {} after {secs:.1} s{}",
            status.label(),
            reason.as_ref().map_or(String::new(), |r| format!(": {r}"))
        ));
        // A signal stops the lab even when the step it interrupted then failed or was refused.
        if status == StepStatus::Interrupted || interrupted() {
            self.stopped = true;
        }
        self.record(name, device, status, reason, secs);
        self.save()
    }
}

/// Everything `run` needs, typed.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub budget_minutes: f64,
    pub device: DeviceSel,
    pub target: Option<Target>,
    pub with_cache_effect: bool,
    pub skip: Vec<String>,
    pub headroom: u64,
    pub quiet: bool,
}

/// Which devices the lab runs: (ordinals, why there is no GPU part). A device number that does
/// not exist on a host with GPUs is bad input; no GPU at all is not.
pub fn select_devices(sel: DeviceSel) -> Result<(Vec<i32>, Option<String>)> {
    let drv = match Driver::load() {
        Ok(d) => d,
        Err(e) => return Ok((Vec::new(), Some(e.to_string()))),
    };
    match drv.device_count() {
        Ok(0) => Ok((
            Vec::new(),
            Some("the CUDA driver loaded but reports no device".into()),
        )),
        Ok(n) => Ok((sel.resolve(n)?, None)),
        Err(e) => Ok((Vec::new(), Some(format!("cuDeviceGetCount failed: {e}")))),
    }
}

/// Runs every step into the folder `dir`; returns the results (also written there).
pub fn run(opts: &LabOptions, dir: &Path) -> Result<LabResults> {
    let (ordinals, no_gpu) = select_devices(opts.device)?;
    let env = if no_gpu.is_some() {
        Environment::host_only(no_gpu.clone().unwrap_or_default())
    } else {
        Environment::collect(Some(&ordinals))
    };
    let skip = |s: &str| opts.skip.iter().any(|k| k == s);
    let with_cache_effect = opts.with_cache_effect || cache_effect_by_default(&env.devices);
    let budgets: Vec<DeviceBudget> = env
        .devices
        .iter()
        .map(|d| DeviceBudget {
            device: d.ordinal,
            usable_bytes: d.usable.estimate_bytes,
            unified: d.architecture.is_unified(),
        })
        .collect();
    let plan = plan_budget(
        opts.budget_minutes * 60.0,
        &budgets,
        !skip("selftest"),
        !skip("sweep"),
        !skip("probe"),
        !skip("layout"),
        with_cache_effect && !skip("cache-effect"),
    );
    let settings = LabSettings {
        budget_minutes: opts.budget_minutes,
        devices: ordinals.clone(),
        target: opts.target.as_ref().map(|t| t.name.clone()),
        with_cache_effect,
        skip: opts.skip.clone(),
        headroom_bytes: opts.headroom,
        plan: plan.clone(),
        no_gpu_reason: no_gpu.clone(),
    };
    let per_device = ordinals.len().max(1);
    let mut lab = Lab {
        res: LabResults::new(env.clone(), settings),
        dir: dir.to_path_buf(),
        total: 4 + 4 * per_device,
        done: 0,
        stopped: false,
    };
    lab.save()?;
    lab.log(&format!(
        "writing {} ({} step(s); budget {:.0} min, planned about {:.1} min)",
        dir.display(),
        lab.total,
        opts.budget_minutes,
        plan.estimated_s / 60.0
    ));
    for s in &plan.scaled {
        lab.log(&format!("budget: {s}"));
    }
    if let Some(why) = &no_gpu {
        lab.log(&format!(
            "no GPU here ({why}): running the host-side steps (info, cache, plan); selftest, sweep, probe and layout need a GPU"
        ));
    }
    let gpu_reason = |what: &str| {
        no_gpu.as_ref().map(|_| {
            (
                StepStatus::NeedsGpu,
                format!("{what} needs a GPU and this host has none (see the note at the top)"),
            )
        })
    };
    let skipped =
        |name: &str| skip(name).then(|| (StepStatus::Skipped, "left out with --skip".to_string()));
    // One entry per device, or one "no device" entry without a GPU.
    let devs: Vec<Option<i32>> = if ordinals.is_empty() {
        vec![None]
    } else {
        ordinals.iter().map(|o| Some(*o)).collect()
    };
    let quiet = opts.quiet;
    let headroom = opts.headroom;

    // 1. info
    lab.step("info", None, skipped("info"), |res| {
        res.info = Some(info::collect());
        Ok(Ran::Ok)
    })?;

    // 2. selftest, per device
    for d in &devs {
        let not_run = skipped("selftest").or_else(|| gpu_reason("selftest"));
        let runs = plan.selftest_runs;
        lab.step("selftest", *d, not_run, |res| {
            let drv = require_driver()?;
            let gpu = Gpu::open(&drv, d.unwrap_or(0))?;
            let r = selftest::run(
                &gpu,
                &SelftestOptions {
                    bytes: None,
                    runs,
                    quiet,
                    fill_sizes: None,
                },
            )?;
            let failed: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{} at {}", c.kernel, fmt_bytes(c.bytes)))
                .collect();
            res.selftest.get_or_insert_with(Vec::new).push(r);
            Ok(if failed.is_empty() {
                Ran::Ok
            } else {
                Ran::Failed(format!("kernel checks failed: {}", failed.join(", ")))
            })
        })?;
    }

    // 3. sweep, per device
    for d in &devs {
        let not_run = skipped("sweep").or_else(|| gpu_reason("sweep"));
        let sizes = plan
            .sweep_sizes
            .iter()
            .find(|(o, _)| Some(*o) == *d)
            .map(|(_, s)| s.clone());
        let env = env.clone();
        let runs = plan.sweep_runs;
        lab.step("sweep", *d, not_run, |res| {
            let o = d.unwrap_or(0);
            let sopts = SweepOptions {
                strategies: None,
                sizes,
                runs,
                page_stride: crate::host::facts::page_size(),
                cpu_threads: plan.cpu_threads.max(1) as usize,
                headroom,
                force: false,
                alloc: AllocOptions::default(),
                quiet,
                repeat: plan.sweep_repeat.max(3),
                cpu_single_max: plan.cpu_single_max_bytes,
                caps: plan.sweep_caps,
            };
            let mut sink = ResultSink::new("sweep", env, None)?;
            let r = sweep::run(&[o], &sopts, &mut sink);
            let section = res.sweep.get_or_insert_with(Section::default);
            section.absorb(&sink.doc);
            section.notes.extend(sweep::findings(&sink.doc.rows, o));
            r.map(|()| Ran::Ok)
        })?;
    }

    // 4. probe, per device
    for d in &devs {
        let not_run = skipped("probe").or_else(|| gpu_reason("probe"));
        let env = env.clone();
        let popts = ProbeOptions {
            kinds: plan.probe_kinds.clone(),
            resolution_bytes: plan.probe_resolution_bytes,
            chunk_bytes: plan.probe_chunk_bytes,
            max: MaxSel::Auto,
            headroom,
            quiet,
            host_cap_bytes: plan.probe_host_cap_bytes,
            cumulative_lazy: plan.probe_cumulative_lazy,
            ..ProbeOptions::default()
        };
        lab.step("probe", *d, not_run, |res| {
            let drv = require_driver()?;
            let gpu = Gpu::open(&drv, d.unwrap_or(0))?;
            let mut sink = ResultSink::new("probe", env, None)?;
            let r = probe::run_gpu(&gpu, &popts, &mut sink);
            res.probe
                .get_or_insert_with(Section::default)
                .absorb(&sink.doc);
            r.map(|()| Ran::Ok)
        })?;
    }

    // 5. cache status (host side always; cuMemGetInfo of the first device when there is one)
    {
        let env = env.clone();
        let first = ordinals.first().copied();
        lab.step("cache", None, skipped("cache"), |res| {
            let view = match first {
                Some(o) => DeviceView::open(o)?.ok(),
                None => None,
            };
            let mut sink = ResultSink::new("cache", env.clone(), None)?;
            let said = cache::run_action(&CacheAction::Status, view.as_ref(), &mut sink, true)?;
            let mut section = Section::default();
            section.absorb(&sink.doc);
            section.notes.extend(said);
            if let Some(row) = sink.doc.rows.first() {
                let arch = env.devices.first().map(|d| d.architecture);
                section
                    .notes
                    .extend(cache::explain(row, arch, env.no_device_reason.as_deref()));
            }
            res.cache = Some(section);
            Ok(Ran::Ok)
        })?;
    }

    // 6. cache effect (first device): by default on integrated or pageable-memory devices, else
    // when asked for
    {
        let not_run = if !with_cache_effect {
            Some((
                StepStatus::Skipped,
                "not asked for on a discrete card: add --with-cache-effect (writes and removes a temporary file of up to 4 GiB)".to_string(),
            ))
        } else {
            skipped("cache-effect").or_else(|| gpu_reason("cache effect"))
        };
        let env = env.clone();
        let first = ordinals.first().copied();
        lab.step("cache effect", first, not_run, |res| {
            let drv = require_driver()?;
            let o = first.unwrap_or(0);
            let gpu = Gpu::open(&drv, o)?;
            let eopts = EffectOptions {
                headroom,
                quiet,
                ..EffectOptions::default()
            };
            let mut sink = ResultSink::new("cache effect", env, None)?;
            let r = cache::run_effect(&gpu, &eopts, &mut sink);
            let mut section = Section::default();
            section.absorb(&sink.doc);
            section.notes.extend(cache::effect_findings(
                &sink.doc.rows,
                o,
                gpu.arch.is_unified(),
            ));
            res.cache_effect = Some(section);
            r.map(|()| Ran::Ok)
        })?;
    }

    // 7. layout, per device
    for d in &devs {
        let not_run = skipped("layout").or_else(|| gpu_reason("layout"));
        lab.step("layout", *d, not_run, |res| {
            let layout = layout::preset(LAYOUT_PRESET).map_err(Error::Failed)?;
            let drv = require_driver()?;
            let gpu = Gpu::open(&drv, d.unwrap_or(0))?;
            let mut lopts = LayoutOptions::new(layout);
            lopts.headroom = headroom;
            lopts.quiet = quiet;
            let r = layout::measure(&gpu, &lopts)?;
            let stopped = r.interrupted;
            res.layout.get_or_insert_with(Vec::new).push(r);
            if stopped {
                return Err(Error::Interrupted);
            }
            Ok(Ran::Ok)
        })?;
    }

    // 8. plan: each device's usable memory, then --target (gb10 without a GPU)
    {
        let mut targets: Vec<Target> = env
            .devices
            .iter()
            .map(|d| Target {
                name: format!("device {} ({})", d.ordinal, d.name),
                bytes: d.usable.estimate_bytes,
                unified: d.architecture.is_unified(),
            })
            .collect();
        match &opts.target {
            Some(t) => targets.push(t.clone()),
            None if targets.is_empty() => {
                targets.extend(Target::named(crate::plan::DEFAULT_TARGET));
            }
            None => {}
        }
        lab.step("plan", None, skipped("plan"), |res| {
            res.plan = Some(targets.iter().map(capacity_matrix).collect());
            Ok(Ran::Ok)
        })?;
    }

    // The end: accounting again, and the document marked finished.
    let end_env = if no_gpu.is_some() {
        Environment::host_only(no_gpu.unwrap_or_default())
    } else {
        Environment::collect(Some(&ordinals))
    };
    lab.res
        .accounting
        .push(AccountingSnapshot::from_env("end", &end_env));
    lab.res.finished_at = Some(now_rfc3339());
    lab.res.interrupted = lab.stopped || interrupted();
    lab.res.complete = !lab.res.interrupted;
    lab.save()?;
    Ok(lab.res)
}

// ---------------------------------------------------------------- from separate files

/// Lab results assembled from the documents of separate commands run earlier (`info --json`,
/// `selftest --json`, a `sweep` and a `probe` result document), so that their report and
/// `compare` work the same way. The plan capacity matrix is computed for each device found; the
/// steps no file covers are recorded as skipped, and `settings.plan.scaled` says where the
/// results came from.
pub fn assemble(
    info: Option<InfoReport>,
    selftest: Option<Vec<SelftestReport>>,
    sweep: Option<sweep::SweepDoc>,
    probe: Option<probe::ProbeDoc>,
) -> Result<LabResults> {
    let environment = sweep
        .as_ref()
        .map(|d| d.environment.clone())
        .or_else(|| probe.as_ref().map(|d| d.environment.clone()))
        .or_else(|| info.as_ref().map(|i| i.environment.clone()))
        .ok_or_else(|| {
            Error::usage("nothing to assemble: give at least an info, sweep or probe result")
        })?;
    let devices: Vec<i32> = environment.devices.iter().map(|d| d.ordinal).collect();
    let mut sweep_sizes = Vec::new();
    if let Some(d) = &sweep {
        for &o in &devices {
            sweep_sizes.push((o, report::sweep_sizes(&d.rows, o)));
        }
    }
    let runs = sweep
        .as_ref()
        .and_then(|d| d.rows.iter().find(|r| r.phase == sweep::phase::FILL))
        .map_or(0, |r| r.runs);
    let elapsed = |start: &str, end: Option<&String>| -> f64 {
        match (
            humantime::parse_rfc3339(start),
            end.map(|e| humantime::parse_rfc3339(e)),
        ) {
            (Ok(s), Some(Ok(e))) => e.duration_since(s).map_or(0.0, |d| d.as_secs_f64()),
            _ => 0.0,
        }
    };
    let mut scaled = vec![format!(
        "assembled from separate result files ({}), not run by `cumemlab lab`",
        [
            info.as_ref().map(|_| "info"),
            selftest.as_ref().map(|_| "selftest"),
            sweep.as_ref().map(|_| "sweep"),
            probe.as_ref().map(|_| "probe"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    )];
    if let Some(d) = &sweep {
        scaled.push(format!(
            "the sweep's command line: `{}`",
            d.envelope.command_line.join(" ")
        ));
    }
    let settings = LabSettings {
        budget_minutes: 0.0,
        devices: devices.clone(),
        target: None,
        with_cache_effect: false,
        skip: Vec::new(),
        headroom_bytes: crate::memory::safety::DEFAULT_HEADROOM,
        plan: BudgetPlan {
            budget_s: 0.0,
            estimated_s: 0.0,
            sweep_sizes,
            sweep_runs: runs,
            selftest_runs: selftest
                .as_ref()
                .and_then(|v| v.first())
                .and_then(|s| s.bandwidth.first())
                .map_or(0, |b| b.gbps.runs),
            probe_kinds: Vec::new(),
            probe_resolution_bytes: 0,
            probe_chunk_bytes: 0,
            scaled,
            ..BudgetPlan::default()
        },
        no_gpu_reason: environment.no_device_reason.clone(),
    };
    let mut r = LabResults::new(environment, settings);
    let step = |name: &str,
                device: Option<i32>,
                status: StepStatus,
                reason: Option<String>,
                seconds: f64| StepOutcome {
        name: name.into(),
        device,
        status,
        reason,
        seconds,
    };
    let absent = || Some("not among the assembled files".to_string());
    r.steps.push(match &info {
        Some(_) => step("info", None, StepStatus::Ok, None, 0.0),
        None => step("info", None, StepStatus::Skipped, absent(), 0.0),
    });
    match &selftest {
        Some(v) => {
            for s in v {
                let failed = s.checks.iter().filter(|c| !c.passed).count();
                r.steps.push(if failed == 0 {
                    step("selftest", Some(s.device), StepStatus::Ok, None, 0.0)
                } else {
                    step(
                        "selftest",
                        Some(s.device),
                        StepStatus::Failed,
                        Some(format!("{failed} kernel check(s) failed")),
                        0.0,
                    )
                });
            }
        }
        None => r
            .steps
            .push(step("selftest", None, StepStatus::Skipped, absent(), 0.0)),
    }
    match &sweep {
        Some(d) => r.steps.push(step(
            "sweep",
            devices.first().copied(),
            if d.envelope.complete {
                StepStatus::Ok
            } else {
                StepStatus::Interrupted
            },
            None,
            elapsed(&d.envelope.started_at, d.envelope.finished_at.as_ref()),
        )),
        None => r
            .steps
            .push(step("sweep", None, StepStatus::Skipped, absent(), 0.0)),
    }
    match &probe {
        Some(d) => r.steps.push(step(
            "probe",
            devices.first().copied(),
            if d.envelope.complete {
                StepStatus::Ok
            } else {
                StepStatus::Interrupted
            },
            None,
            elapsed(&d.envelope.started_at, d.envelope.finished_at.as_ref()),
        )),
        None => r
            .steps
            .push(step("probe", None, StepStatus::Skipped, absent(), 0.0)),
    }
    for name in ["cache", "cache effect", "layout"] {
        r.steps
            .push(step(name, None, StepStatus::Skipped, absent(), 0.0));
    }
    r.steps.push(step("plan", None, StepStatus::Ok, None, 0.0));
    if let Some(d) = &sweep {
        r.started_at = d.envelope.started_at.clone();
        r.finished_at = d.envelope.finished_at.clone();
        r.command_line = d.envelope.command_line.clone();
        let mut section = Section::default();
        section.absorb(d);
        r.sweep = Some(section);
    }
    if let Some(d) = &probe {
        let mut section = Section::default();
        section.absorb(d);
        r.probe = Some(section);
    }
    r.plan = Some(
        r.environment
            .devices
            .iter()
            .map(|d| {
                capacity_matrix(&Target {
                    name: format!("device {} ({})", d.ordinal, d.name),
                    bytes: d.usable.estimate_bytes,
                    unified: d.architecture.is_unified(),
                })
            })
            .collect(),
    );
    r.info = info;
    r.selftest = selftest;
    r.complete = true;
    Ok(r)
}

// ---------------------------------------------------------------- the folder

/// A flat CSV row of the plan capacity matrices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanCsvRow {
    pub target: String,
    pub target_bytes: u64,
    pub unified: bool,
    pub budget_bytes: u64,
    pub workload: String,
    pub precision: String,
    pub label: String,
    pub max_params_billions: f64,
    pub total_bytes: u64,
    pub layers: u64,
}

/// A flat CSV row of the accounting snapshots (one per device, or one without a device).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccountingCsvRow {
    pub when: String,
    pub device: Option<i32>,
    pub cumemgetinfo_free_bytes: Option<u64>,
    pub cumemgetinfo_total_bytes: Option<u64>,
    pub mem_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub cached_bytes: u64,
    pub swap_free_bytes: u64,
}

/// The CSV files of a results folder: (file name, contents).
pub fn csv_files(r: &LabResults) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![("steps.csv".to_string(), to_csv(&r.steps)?)];
    let mut acc = Vec::new();
    for a in &r.accounting {
        let base = AccountingCsvRow {
            when: a.when.clone(),
            device: None,
            cumemgetinfo_free_bytes: None,
            cumemgetinfo_total_bytes: None,
            mem_total_bytes: a.mem_total_bytes,
            mem_free_bytes: a.mem_free_bytes,
            mem_available_bytes: a.mem_available_bytes,
            cached_bytes: a.cached_bytes,
            swap_free_bytes: a.swap_free_bytes,
        };
        if a.devices.is_empty() {
            acc.push(base.clone());
        }
        for d in &a.devices {
            acc.push(AccountingCsvRow {
                device: Some(d.device),
                cumemgetinfo_free_bytes: Some(d.cumemgetinfo_free_bytes),
                cumemgetinfo_total_bytes: Some(d.cumemgetinfo_total_bytes),
                ..base.clone()
            });
        }
    }
    out.push(("accounting.csv".into(), to_csv(&acc)?));
    if let Some(i) = &r.info {
        out.push(("info.csv".into(), to_csv(&super::info::csv_rows(i))?));
    }
    if let Some(v) = &r.selftest {
        out.push((
            "selftest.csv".into(),
            to_csv(&super::selftest::csv_rows(v))?,
        ));
    }
    if let Some(s) = &r.sweep {
        out.push(("sweep.csv".into(), to_csv(&s.rows)?));
    }
    if let Some(s) = &r.probe {
        out.push(("probe.csv".into(), to_csv(&s.rows)?));
    }
    if let Some(s) = &r.cache {
        out.push(("cache.csv".into(), to_csv(&s.rows)?));
    }
    if let Some(s) = &r.cache_effect {
        out.push(("cache-effect.csv".into(), to_csv(&s.rows)?));
    }
    if let Some(v) = &r.layout {
        let rows: Vec<_> = v.iter().flat_map(|l| l.rows.iter().cloned()).collect();
        out.push(("layout.csv".into(), to_csv(&rows)?));
    }
    if let Some(v) = &r.plan {
        let mut rows = Vec::new();
        for m in v {
            for c in &m.rows {
                rows.push(PlanCsvRow {
                    target: m.target.name.clone(),
                    target_bytes: m.target.bytes,
                    unified: m.target.unified,
                    budget_bytes: m.budget_bytes,
                    workload: c.workload.name().into(),
                    precision: c.precision.to_string(),
                    label: c.label.clone(),
                    max_params_billions: c.max_params_billions,
                    total_bytes: c.total_bytes,
                    layers: c.layers,
                });
            }
        }
        out.push(("plan.csv".into(), to_csv(&rows)?));
    }
    Ok(out)
}

/// Writes the CSVs, `plots/*.svg`, `report.md` and `report.html` of `r` into `dir` (each file
/// atomically); returns the report's findings.
pub fn write_report(r: &LabResults, dir: &Path) -> Result<Vec<String>> {
    for (name, bytes) in csv_files(r)? {
        write_atomic(&dir.join(name), &bytes)?;
    }
    let page = report::build(r)?;
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    for f in page.page.figures() {
        write_atomic(&plots.join(&f.file), f.svg.as_bytes())?;
    }
    write_atomic(
        &dir.join("report.md"),
        crate::report::markdown::to_markdown(&page.page, "plots").as_bytes(),
    )?;
    write_atomic(
        &dir.join("report.html"),
        crate::report::html::to_html(&page.page).as_bytes(),
    )?;
    Ok(page.findings)
}

/// Whether `cache effect` runs without being asked: the first device is integrated or reaches
/// pageable memory, so the page cache competes with its allocations (the GB10 headline).
pub fn cache_effect_by_default(devices: &[crate::experiments::env::DeviceInfo]) -> bool {
    devices
        .first()
        .is_some_and(|d| d.architecture.is_unified() || d.attributes.flag("pageable_memory_access"))
}

/// The one command that packs a results folder for sending: `tar -czf NAME.tar.gz -C PARENT NAME`.
pub fn pack_command(dir: &Path) -> String {
    let q = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/+:@".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let name = dir
        .file_name()
        .map_or_else(|| "results".into(), |n| n.to_string_lossy().into_owned());
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| ".".into(), |p| p.to_string_lossy().into_owned());
    format!(
        "tar -czf {} -C {} {}",
        q(&format!("{name}.tar.gz")),
        q(&parent),
        q(&name)
    )
}

/// The summary printed at the end.
fn summary(r: &LabResults, dir: &Path, findings: &[String]) -> String {
    let mut out = format!("cumemlab lab: results in {}\n\n", dir.display());
    let mut t = new_table(&["step", "device", "status", "seconds", "reason"]);
    for s in &r.steps {
        t.add_row(vec![
            s.name.clone(),
            s.device.map_or("-".into(), |d| d.to_string()),
            s.status.label().to_string(),
            format!("{:.1}", s.seconds),
            s.reason.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&format!("{t}\n\n"));
    if !findings.is_empty() {
        out.push_str("Findings:\n");
        for f in findings {
            out.push_str(&format!("- {f}\n"));
        }
        out.push('\n');
    }
    let heads = crate::experiments::headline::from_lab(r);
    if !heads.is_empty() {
        out.push_str(&crate::experiments::headline::render_all(&heads));
        out.push('\n');
    }
    out.push_str(&format!(
        "Open {} in a browser, or read {}.\n",
        dir.join("report.html").display(),
        dir.join("report.md").display()
    ));
    out
}

/// Runs `lab` from the command line.
pub fn main(args: LabArgs) -> Result<()> {
    if let Some(from) = &args.from {
        let r = LabResults::read(from)?;
        let dir = if from.is_dir() {
            from.clone()
        } else {
            from.parent().map_or(PathBuf::from("."), Path::to_path_buf)
        };
        super::exit_on_first_signal();
        super::check_interrupt()?;
        let findings = write_report(&r, &dir)?;
        if args.json {
            crate::report::sink::print_stdout(to_json(&r)?)?;
        } else {
            crate::report::sink::print_stdout(summary(&r, &dir, &findings))?;
        }
        return Ok(());
    }
    let opts = LabOptions {
        budget_minutes: args.budget,
        device: args.device,
        target: args.target,
        with_cache_effect: args.with_cache_effect,
        skip: args.skip.map(|l| l.0).unwrap_or_default(),
        headroom: args.headroom,
        quiet: args.quiet,
    };
    // Bad device numbers fail here, before the folder is made.
    select_devices(opts.device)?;
    let host = crate::host::HostFacts::read().hostname;
    let date: String = now_rfc3339().chars().take(10).collect();
    let dir = create_results_dir(&args.out, args.name.as_deref(), &host, &date)?;
    let r = run(&opts, &dir)?;
    super::exit_on_first_signal();
    let findings = write_report(&r, &dir)?;
    if args.json {
        crate::report::sink::print_stdout(to_json(&r)?)?;
    } else {
        let mut text = summary(&r, &dir, &findings);
        text.push_str(&format!(
            "\nTo send these results (see the README's \"Results wanted\"), pack the folder with:\n  {}\n",
            pack_command(&dir)
        ));
        crate::report::sink::print_stdout(text)?;
    }
    if r.interrupted {
        return Err(Error::Interrupted);
    }
    let failed = r.failed_steps();
    if !failed.is_empty() {
        let names: Vec<String> = failed
            .iter()
            .map(|s| match s.device {
                Some(d) => format!("{} (device {d})", s.name),
                None => s.name.clone(),
            })
            .collect();
        return Err(Error::Failed(format!(
            "{} step(s) failed: {}; the report says why, and everything else was written to {}",
            failed.len(),
            names.join(", "),
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let p = plan_budget(120.0, &[dev(0, gib, false)], true, true, true, true, false);
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
        let small = plan_budget(120.0, &[dev(0, 139, false)], true, true, true, true, false);
        let big = plan_budget(
            60.0 * 60.0,
            &[dev(0, 139, false)],
            true,
            true,
            true,
            true,
            false,
        );
        assert!(big.sweep_repeat >= small.sweep_repeat && big.sweep_repeat >= 5);
        assert_eq!(big.sweep_caps, Caps::default(), "an hour lifts every cap");
        assert!(big.probe_cumulative_lazy);
        assert_eq!(big.probe_host_cap_bytes, probe::DEFAULT_HOST_CAP_BYTES);
        assert!(big.estimated_s > small.estimated_s && big.estimated_s <= 3600.0);
        let mid = plan_budget(600.0, &[dev(0, 139, false)], true, true, true, true, false);
        assert!(mid.sweep_caps.host_max.unwrap_or(u64::MAX) > GIB, "{mid:?}");
    }

    #[test]
    fn small_budgets_drop_the_largest_sizes_and_say_so() {
        let p = plan_budget(
            30.0,
            &[dev(0, 79, false), dev(1, 79, false)],
            true,
            true,
            true,
            true,
            false,
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
        let p = plan_budget(30.0, &[dev(0, 110, true)], true, true, true, true, true);
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
        let p = plan_budget(600.0, &[], true, true, true, true, true);
        assert!(p.sweep_sizes.is_empty());
        assert!(p.estimated_s <= cost::HOST_STEPS_S + 1e-9);
    }

    #[test]
    fn cache_effect_runs_by_default_on_unified_or_pageable_devices() {
        use crate::driver::DeviceAttributes;
        use crate::memory::arch::UsableEstimate;
        let m = crate::test_support::meminfo("gb10-cache-heavy.txt");
        let dev = |pairs: &[(&str, i64)]| {
            let attributes = DeviceAttributes::from_pairs(pairs);
            let architecture = crate::memory::arch::MemoryArchitecture::classify(&attributes);
            crate::experiments::env::DeviceInfo {
                ordinal: 0,
                name: "x".into(),
                uuid: String::new(),
                pci_bus_id: String::new(),
                compute_capability: String::new(),
                multiprocessors: 1,
                total_bytes: 0,
                cumemgetinfo_free_bytes: 0,
                cumemgetinfo_total_bytes: 0,
                architecture,
                usable: UsableEstimate::new(architecture, 0, &m),
                attributes,
            }
        };
        let gb10 = dev(&[
            ("integrated", 1),
            ("pageable_memory_access", 1),
            ("pageable_memory_access_uses_host_page_tables", 1),
        ]);
        let hmm = dev(&[("pageable_memory_access", 1)]);
        let h200 = dev(&[]);
        assert!(cache_effect_by_default(std::slice::from_ref(&gb10)));
        assert!(cache_effect_by_default(std::slice::from_ref(&hmm)));
        assert!(!cache_effect_by_default(std::slice::from_ref(&h200)));
        assert!(!cache_effect_by_default(&[]));
    }

    #[test]
    fn the_pack_command_quotes_what_needs_it() {
        assert_eq!(
            pack_command(Path::new("cumemlab-results/spark-1-2026-11-30")),
            "tar -czf spark-1-2026-11-30.tar.gz -C cumemlab-results spark-1-2026-11-30"
        );
        assert_eq!(
            pack_command(Path::new("/tmp/my results/it's")),
            "tar -czf 'it'\\''s.tar.gz' -C '/tmp/my results' 'it'\\''s'"
        );
        assert_eq!(pack_command(Path::new("x")), "tar -czf x.tar.gz -C . x");
    }

    #[test]
    fn folder_names() {
        assert_eq!(folder_host("spark-1.lab"), "spark-1.lab");
        assert_eq!(folder_host("we ird/host"), "we_ird_host");
        let d = tempfile::tempdir().unwrap();
        let a = create_results_dir(d.path(), None, "h", "2025-01-02").unwrap();
        assert!(a.ends_with("h-2025-01-02"));
        let b = create_results_dir(d.path(), None, "h", "2025-01-02").unwrap();
        assert!(b.ends_with("h-2025-01-02-2"));
        std::fs::write(a.join(RESULTS_FILE), "{}").unwrap();
        let e = create_results_dir(d.path(), Some("h-2025-01-02"), "h", "x").unwrap_err();
        assert!(matches!(e, Error::Usage(_)) && e.to_string().contains("already holds"));
        assert!(create_results_dir(d.path(), Some("../x"), "h", "x").is_err());
        // Any existing folder is refused by --name, so a user's own files are never mixed in.
        std::fs::create_dir(d.path().join("mine")).unwrap();
        let e = create_results_dir(d.path(), Some("mine"), "h", "x").unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
    }

    #[test]
    fn skip_and_budget_parse() {
        assert_eq!(
            parse_skip("probe, Cache_Effect").unwrap().0,
            vec!["probe", "cache-effect"]
        );
        assert!(parse_skip("sweeep").unwrap_err().contains("--skip takes"));
        assert_eq!(parse_minutes("7.5").unwrap(), 7.5);
        assert!(parse_minutes("0").is_err() && parse_minutes("ten").is_err());
    }
}
