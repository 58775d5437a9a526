//! The lab runner: selects the devices, plans the budget, then runs every experiment of
//! [`registry::EXPERIMENTS`] in turn (once, on the first device, or per device, as each says),
//! recording each step's outcome in `results.json` as it ends. A step left out with `--skip`,
//! not wanted (opt-in), or needing a GPU that is not there is recorded without running; a step
//! that fails is recorded with its reason and the lab goes on; Ctrl-C stops the lab after the
//! current step.
//!
//! May import: the registry, the lab's results and budget, the environment, the driver (to
//! count devices), the result sink's writers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::RESULTS_FILE;
use super::budget::{DeviceBudget, plan_budget};
use super::results::{AccountingSnapshot, LabResults, LabSettings, StepOutcome, StepStatus};
use super::steps::cache_effect::cache_effect_by_default;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::lab::registry::{self, Experiment, Ran, Scope, StepContext};
use crate::experiments::{DeviceSel, interrupted};
use crate::plan::Target;
use crate::report::sink::{now_rfc3339, to_json};
use crate::report::write_atomic;

/// Runs the lab and keeps `results.json` current.
struct Lab {
    res: LabResults,
    dir: PathBuf,
    total: usize,
    done: usize,
    stopped: bool,
}

impl Lab {
    fn save(&self) -> Result<()> {
        write_atomic(&self.dir.join(RESULTS_FILE), &to_json(&self.res)?)
    }

    /// A step's start and end, the budget: notes on the one diagnostics channel (above a bar
    /// when one is drawn).
    fn log(&self, line: &str) {
        crate::report::diag::note(&format!("cumemlab lab: {line}"));
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

/// The environment now: the selected devices', or the host's alone without a GPU.
fn environment(ordinals: &[i32], no_gpu: Option<&String>) -> Environment {
    match no_gpu {
        Some(why) => Environment::host_only(why.clone()),
        None => Environment::collect(Some(ordinals)),
    }
}

/// "a, b and c".
fn and_list(v: &[&str]) -> String {
    match v {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Why `exp` is not run on this lab (not wanted, left out, or no GPU), or `None`: it runs.
fn not_run(exp: &dyn Experiment, ctx: &StepContext) -> Option<(StepStatus, String)> {
    if let Some(why) = exp.not_wanted(ctx) {
        return Some((StepStatus::Skipped, why));
    }
    if ctx.opts.skip.iter().any(|k| k == exp.key()) {
        return Some((StepStatus::Skipped, "left out with --skip".to_string()));
    }
    (exp.needs_gpu() && ctx.no_gpu.is_some()).then(|| {
        (
            StepStatus::NeedsGpu,
            format!(
                "{} needs a GPU and this host has none (see the note at the top)",
                exp.name()
            ),
        )
    })
}

/// The devices `exp` runs on: `None` once, or per device (one `None` without a GPU).
fn step_devices(exp: &dyn Experiment, ordinals: &[i32]) -> Vec<Option<i32>> {
    match exp.scope() {
        Scope::Once => vec![None],
        Scope::FirstDevice => vec![ordinals.first().copied()],
        Scope::PerDevice if ordinals.is_empty() => vec![None],
        Scope::PerDevice => ordinals.iter().map(|o| Some(*o)).collect(),
    }
}

/// Runs every step into the folder `dir`; returns the results (also written there).
pub fn run(opts: &LabOptions, dir: &Path) -> Result<LabResults> {
    let (ordinals, no_gpu) = select_devices(opts.device)?;
    let env = environment(&ordinals, no_gpu.as_ref());
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
    // The budget plans for the experiments that will run; until it exists, their context has
    // an empty plan (no experiment's `not_wanted` or `--skip` answer depends on it).
    let empty = super::budget::BudgetPlan::default();
    let mut ctx = StepContext {
        opts,
        env: &env,
        plan: &empty,
        ordinals: &ordinals,
        no_gpu: no_gpu.as_deref(),
        with_cache_effect,
    };
    let runs: Vec<&str> = registry::EXPERIMENTS
        .iter()
        .filter(|e| e.not_wanted(&ctx).is_none() && !opts.skip.iter().any(|k| k == e.key()))
        .map(|e| e.key())
        .collect();
    let plan = plan_budget(opts.budget_minutes * 60.0, &budgets, &runs);
    ctx.plan = &plan;
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
    let mut lab = Lab {
        res: LabResults::new(env.clone(), settings),
        dir: dir.to_path_buf(),
        total: registry::step_count(ordinals.len()),
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
        let (gpu, host): (Vec<&dyn Experiment>, Vec<&dyn Experiment>) = registry::EXPERIMENTS
            .iter()
            .copied()
            .filter(|e| e.not_wanted(&ctx).is_none())
            .partition(|e| e.needs_gpu());
        let names = |v: &[&dyn Experiment]| v.iter().map(|e| e.name()).collect::<Vec<_>>();
        lab.log(&format!(
            "no GPU here ({why}): running the host-side steps ({}); {} need a GPU",
            names(&host).join(", "),
            and_list(&names(&gpu))
        ));
    }
    for exp in registry::EXPERIMENTS {
        for d in step_devices(*exp, &ordinals) {
            let skip = not_run(*exp, &ctx);
            lab.step(exp.name(), d, skip, |res| exp.run(&ctx, d, res))?;
        }
    }

    // The end: accounting again, and the document marked finished.
    let end_env = environment(&ordinals, no_gpu.as_ref());
    lab.res
        .accounting
        .push(AccountingSnapshot::from_env("end", &end_env));
    lab.res.finished_at = Some(now_rfc3339());
    lab.res.interrupted = lab.stopped || interrupted();
    lab.res.complete = !lab.res.interrupted;
    lab.save()?;
    Ok(lab.res)
}

/// The capacity targets of `plan` in a lab: each device's usable memory, then `--target`
/// (gb10 without a GPU and without `--target`).
pub fn plan_targets(env: &Environment, target: Option<&Target>) -> Vec<Target> {
    let mut targets: Vec<Target> = env
        .devices
        .iter()
        .map(|d| Target {
            name: format!("device {} ({})", d.ordinal, d.name),
            bytes: d.usable.estimate_bytes,
            unified: d.architecture.is_unified(),
        })
        .collect();
    match target {
        Some(t) => targets.push(t.clone()),
        None if targets.is_empty() => {
            targets.extend(Target::named(crate::plan::DEFAULT_TARGET));
        }
        None => {}
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_experiment_is_run_skipped_or_needs_a_gpu_as_it_declares() {
        let opts = LabOptions {
            budget_minutes: 2.0,
            device: DeviceSel::All,
            target: None,
            with_cache_effect: false,
            skip: vec!["probe".into()],
            headroom: 0,
            quiet: true,
        };
        let env = Environment::host_only("no driver".into());
        let plan = super::super::budget::BudgetPlan::default();
        let no_gpu = StepContext {
            opts: &opts,
            env: &env,
            plan: &plan,
            ordinals: &[],
            no_gpu: Some("no driver"),
            with_cache_effect: false,
        };
        let find = |k: &str| registry::find(k).unwrap();
        assert_eq!(not_run(find("info"), &no_gpu), None);
        assert_eq!(not_run(find("plan"), &no_gpu), None);
        assert_eq!(
            not_run(find("sweep"), &no_gpu),
            Some((
                StepStatus::NeedsGpu,
                "sweep needs a GPU and this host has none (see the note at the top)".into()
            ))
        );
        assert_eq!(
            not_run(find("probe"), &no_gpu),
            Some((StepStatus::Skipped, "left out with --skip".into()))
        );
        let effect = not_run(find("cache-effect"), &no_gpu).unwrap();
        assert!(effect.0 == StepStatus::Skipped && effect.1.contains("--with-cache-effect"));
        // With two GPUs and cache effect asked for: per-device steps on each, cache effect on the
        // first, the others once.
        let two = StepContext {
            ordinals: &[0, 1],
            no_gpu: None,
            with_cache_effect: true,
            ..no_gpu
        };
        assert_eq!(not_run(find("sweep"), &two), None);
        assert_eq!(not_run(find("cache-effect"), &two), None);
        assert_eq!(step_devices(find("sweep"), &[0, 1]), [Some(0), Some(1)]);
        assert_eq!(step_devices(find("cache-effect"), &[0, 1]), [Some(0)]);
        assert_eq!(step_devices(find("cache"), &[0, 1]), [None]);
        assert_eq!(step_devices(find("layout"), &[]), [None]);
        assert_eq!(registry::step_count(2), 13);
        // load runs in the default budget (2 minutes) and above, not below.
        assert_eq!(not_run(find("load"), &two), None);
        let short = LabOptions {
            budget_minutes: 1.0,
            ..two.opts.clone()
        };
        let short = StepContext {
            opts: &short,
            ..two
        };
        let load = not_run(find("load"), &short).unwrap();
        assert!(load.0 == StepStatus::Skipped && load.1.contains("--budget 2"));
    }

    #[test]
    fn lists_read_as_sentences() {
        assert_eq!(and_list(&[]), "");
        assert_eq!(and_list(&["a"]), "a");
        assert_eq!(and_list(&["a", "b", "c"]), "a, b and c");
    }
}
