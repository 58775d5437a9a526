//! The lab's results document (`results.json`): the steps and how they ended, the accounting
//! snapshots, the settings and budget plan, and one section per experiment. The eight
//! experiments of the first lab keep their typed fields (their keys and shapes in results.json
//! are unchanged, so every older results file still reads); an experiment added later keeps its
//! section in [`LabResults::sections`] under its own key, through [`LabResults::section`] and
//! [`LabResults::put_section`], and needs no edit here.
//!
//! May import: the experiments' row and report types, the environment, the budget plan.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::budget::BudgetPlan;
use super::{EXPERIMENT, RESULTS_FILE};
use crate::error::{Error, Result};
use crate::experiments::cache::{CacheRow, EffectRow};
use crate::experiments::env::Environment;
use crate::experiments::info::InfoReport;
use crate::experiments::layout::LayoutReport;
use crate::experiments::probe::ProbeRow;
use crate::experiments::selftest::SelftestReport;
use crate::experiments::sweep::SweepRow;
use crate::plan::CapacityMatrix;
use crate::report::sink::{now_rfc3339, read_checked_json};
use crate::report::{SCHEMA, SCHEMA_VERSION};

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
    pub fn absorb<E>(&mut self, doc: &crate::report::Document<R, E>) {
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
    /// The sections of experiments added after these, each under its registry key (in
    /// results.json beside the keys above).
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
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
            sections: BTreeMap::new(),
        }
    }

    /// The section `key` of an experiment kept in [`LabResults::sections`]: `Ok(None)` when
    /// absent, one sentence when it does not have the experiment's shape.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.sections
            .get(key)
            .map(|v| {
                T::deserialize(v).map_err(|e| {
                    Error::usage(format!(
                        "the `{key}` section of these lab results is damaged: {e}"
                    ))
                })
            })
            .transpose()
    }

    /// Writes (replaces) the section `key`.
    pub fn put_section<T: Serialize>(&mut self, key: &str, value: &T) -> Result<()> {
        let v = serde_json::to_value(value)
            .map_err(|e| Error::Failed(format!("cannot serialise the `{key}` section: {e}")))?;
        self.sections.insert(key.to_string(), v);
        Ok(())
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

impl LabResults {
    /// The headline of every device with sweep rows (the lab owns this, so the headline module
    /// reads rows and never the lab's document).
    pub fn headlines(&self) -> Vec<crate::experiments::sweep::headline::Headline> {
        use crate::experiments::sweep::headline::{Inputs, build};
        let Some(s) = &self.sweep else {
            return Vec::new();
        };
        let inp = Inputs {
            rows: &s.rows,
            probe: self.probe.as_ref().map(|p| p.rows.as_slice()),
            selftest: self.selftest.as_deref().unwrap_or(&[]),
            support: self.info.as_ref().map_or(&[], |i| i.strategies.as_slice()),
            skipped: &s.skipped,
        };
        self.devices()
            .into_iter()
            .filter(|d| s.rows.iter().any(|x| x.device == *d))
            .map(|d| build(&inp, d, &self.device_name(d)))
            .collect()
    }
}
