//! The experiment registry: one trait ([`Experiment`]) and one list ([`EXPERIMENTS`]) that `lab`
//! loops over (its steps, `--skip` names, step count and budget questions), that the lab report
//! and its CSVs ask for their sections, and that `compare` asks for its comparable figures.
//! Adding an experiment to the lab is one module (its `impl Experiment`, under
//! `lab/steps/`) and one line in [`EXPERIMENTS`].
//!
//! It lives in the lab's module (as do the steps, the report sections and the comparable-figure
//! types in [`super::comparable`]) so that the lab and `compare` import it without a cycle:
//! `compare` imports the lab, the lab never imports `compare`.
//!
//! Written by hand (no crate offers a registry of this shape; a `static` slice of trait objects
//! is all it takes). May import: the lab's results, budget, report sections and comparable
//! types, the report page, and the step modules it lists; imported by the lab runner, the lab
//! report, the lab folder writer and `compare`.

use super::LabOptions;
use super::budget::BudgetPlan;
use super::report::findings::Findings;
use super::results::LabResults;
use super::steps;
use crate::error::Result;
use crate::experiments::env::Environment;
use crate::experiments::lab::comparable::{CompareCtx, CompareOut, PageCtx};
use crate::report::markdown::Page;

/// Where an experiment runs: once for the lab, once on the first selected device, or on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Once, on no particular device (host facts, arithmetic).
    Once,
    /// Once, on the first selected device (none without a GPU).
    FirstDevice,
    /// On each selected device in turn (one "no device" step without a GPU).
    PerDevice,
}

/// What a step's body says about itself when it returns normally.
pub enum Ran {
    Ok,
    /// Ran, and its results say it failed (kept), with the reason.
    Failed(String),
}

/// What every step of one lab run may read.
pub struct StepContext<'a> {
    pub opts: &'a LabOptions,
    /// The environment recorded at the start.
    pub env: &'a Environment,
    pub plan: &'a BudgetPlan,
    /// The devices run (empty without a GPU).
    pub ordinals: &'a [i32],
    /// Why there is no GPU part, when there is none.
    pub no_gpu: Option<&'a str>,
    /// Whether `cache effect` was asked for or runs by default here.
    pub with_cache_effect: bool,
}

/// Who an experiment is and what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct About {
    /// The step's name in `steps.csv` and in the progress lines (`cache effect`).
    pub name: &'static str,
    /// The name `--skip` takes (`cache-effect`).
    pub key: &'static str,
    /// Whether it needs a GPU (without one it is recorded as `needs_gpu`).
    pub needs_gpu: bool,
    /// Once, on the first device, or per device.
    pub scope: Scope,
}

/// One experiment of the lab: its identity and needs, its step, its results section, its part
/// of the report and its comparable figures. Every hook but `about` and `run` has a default
/// that does nothing, so an experiment implements only what it has.
pub trait Experiment: Sync {
    /// Its name, `--skip` key, needs and scope.
    fn about(&self) -> About;
    /// Runs the step on `device` (`None`: once, or no GPU) and writes its section into `res`.
    fn run(&self, ctx: &StepContext, device: Option<i32>, res: &mut LabResults) -> Result<Ran>;

    /// Why it is not run although not left out with `--skip` (an opt-in experiment not asked
    /// for); `None`: it runs.
    fn not_wanted(&self, _ctx: &StepContext) -> Option<String> {
        None
    }
    /// [`About::name`].
    fn name(&self) -> &'static str {
        self.about().name
    }
    /// [`About::key`].
    fn key(&self) -> &'static str {
        self.about().key
    }
    /// [`About::needs_gpu`].
    fn needs_gpu(&self) -> bool {
        self.about().needs_gpu
    }
    /// [`About::scope`].
    fn scope(&self) -> Scope {
        self.about().scope
    }
    /// Its CSV file in a results folder, when its section is there: (file name, contents).
    fn csv(&self, _r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        Ok(None)
    }
    /// Every CSV file it writes (by default its one [`Experiment::csv`]).
    fn csv_files(&self, r: &LabResults) -> Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(self.csv(r)?.into_iter().collect())
    }
    /// Its section of the lab report (headings, figures, tables, findings).
    fn report(&self, _r: &LabResults, _p: &mut Page, _findings: &mut Findings) -> Result<()> {
        Ok(())
    }
    /// Its tables (and machine facts, notes) for `compare`.
    fn compare(&self, _ctx: &CompareCtx, _out: &mut CompareOut) {}
    /// Its part of `compare.md`/`compare.html`, from the tables it gave.
    fn compare_page(
        &self,
        _ctx: &PageCtx,
        _body: &mut Page,
        _findings: &mut Vec<String>,
    ) -> Result<()> {
        Ok(())
    }
}

/// Every experiment of the lab, in the order the lab runs them (and the report and `compare`
/// show them).
pub static EXPERIMENTS: &[&dyn Experiment] = &[
    &steps::info::Info,
    &steps::selftest::Selftest,
    &steps::sweep::Sweep,
    &steps::probe::Probe,
    &steps::cache::Cache,
    &steps::cache_effect::CacheEffect,
    &steps::layout::Layout,
    &steps::plan::Plan,
    &steps::load::Load,
];

/// The names `--skip` takes, in registry order.
pub fn keys() -> Vec<&'static str> {
    EXPERIMENTS.iter().map(|e| e.key()).collect()
}

/// The experiment `--skip` calls `key`.
pub fn find(key: &str) -> Option<&'static dyn Experiment> {
    EXPERIMENTS.iter().copied().find(|e| e.key() == key)
}

/// How many steps a lab with `devices` selected devices records (at least one per experiment).
pub fn step_count(devices: usize) -> usize {
    EXPERIMENTS
        .iter()
        .map(|e| match e.scope() {
            Scope::Once | Scope::FirstDevice => 1,
            Scope::PerDevice => devices.max(1),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_the_step_count_follows_the_scopes() {
        let k = keys();
        let mut d = k.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), k.len(), "{k:?}");
        assert_eq!(
            k,
            [
                "info",
                "selftest",
                "sweep",
                "probe",
                "cache",
                "cache-effect",
                "layout",
                "plan",
                "load"
            ]
        );
        // Five steps once (or on the first device) and four per device.
        assert_eq!(step_count(0), 9);
        assert_eq!(step_count(1), 9);
        assert_eq!(step_count(2), 13);
        assert!(find("cache-effect").is_some_and(|e| e.name() == "cache effect"));
        assert!(find("nope").is_none());
    }
}
