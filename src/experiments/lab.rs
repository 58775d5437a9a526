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
//!
//! The lab's parts: [`results`] (the results document), [`budget`] (sizes and repetitions scaled
//! to the budget), [`runner`] (the loop over [`crate::experiments::lab::registry::EXPERIMENTS`]),
//! [`registry`] (the trait and the list of experiments), [`steps`] (one module per experiment:
//! its lab step, CSV, report section and comparable figures), [`comparable`] (what those figures
//! are made of, shared with `compare`), [`report`] (the report page), [`folder`] (the files of a results folder) and
//! [`assemble`] (lab results from separate result files). This module keeps the command line.

pub mod assemble;
pub mod budget;
pub mod comparable;
pub mod folder;
pub mod registry;
pub mod report;
pub mod results;
pub mod runner;
pub mod steps;

use std::path::{Path, PathBuf};

pub use assemble::assemble;
pub use budget::{BudgetPlan, DeviceBudget, cost, plan_budget};
pub use folder::{csv_files, write_report};
pub use results::{
    AccountingSnapshot, DeviceFree, LabResults, LabSettings, Section, StepOutcome, StepStatus,
};
pub use runner::{LabOptions, run, select_devices};
pub use steps::cache_effect::cache_effect_by_default;

use crate::error::{Error, Result};
use crate::plan::Target;
use crate::report::new_table;
use crate::report::sink::{now_rfc3339, to_json};
use crate::units::parse_size;

/// The `experiment` of a lab results file.
pub const EXPERIMENT: &str = "lab";
/// The results file in a results folder.
pub const RESULTS_FILE: &str = "results.json";
/// The layout preset the lab allocates.
pub const LAYOUT_PRESET: &str = "13b-sim";
/// The default budget, minutes.
pub const DEFAULT_BUDGET_MINUTES: f64 = 2.0;

// ---------------------------------------------------------------- command line

/// `--skip`'s help: the registry's names.
fn skip_help() -> String {
    format!(
        "Steps to leave out, comma-separated: {}.",
        registry::keys().join(", ")
    )
}

fn parse_skip(s: &str) -> std::result::Result<crate::cli::List<String>, String> {
    let mut v = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let k = p.to_ascii_lowercase().replace(['_', ' '], "-");
        if registry::find(&k).is_none() {
            return Err(format!(
                "unknown step `{p}`: --skip takes {}",
                registry::keys().join(", ")
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
    mut_arg("device", |a| a.help("Device ordinal, or `all` (each device in turn, one context each)")),
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
    // The shared `--device N|all`, its help saying how the lab runs `all` (`mut_arg` above).
    #[command(flatten)]
    pub device: crate::cli::DeviceArgs,
    /// Also plan for this target (gb10, h100-80gb, h200, rtx4090, rtx5090, or a size); without a GPU the default is gb10.
    #[arg(long, value_parser = parse_target)]
    pub target: Option<Target>,
    /// Also run `cache effect` on a discrete card (writes and removes a temporary file of up to 4 GiB); integrated or pageable-memory devices (GB10) run it by default (`--skip cache-effect` leaves it out).
    #[arg(long)]
    pub with_cache_effect: bool,
    #[arg(long, value_parser = parse_skip, help = skip_help())]
    pub skip: Option<crate::cli::List<String>>,
    /// Memory that must stay available to the host (MemAvailable minus this is the ceiling).
    // Not the shared `SafetyArgs`: the lab has no `--force` (it scales every experiment to fit
    // under the ceiling and never crosses it).
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
    let heads = r.headlines();
    if !heads.is_empty() {
        out.push_str(&crate::experiments::sweep::headline::render_all(&heads));
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
        device: args.device.device,
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
