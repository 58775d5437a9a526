//! The lab's results folder and report, without a GPU: built from committed real results (the
//! H200 run's `info --json`, `selftest --json` and `sweep` document under
//! `tests/fixtures/results/h200-raw/`, assembled into lab results), from the real two-device lab
//! under `tests/fixtures/results/h200x2-lab/`, and from every lab folder committed under
//! `docs/results/` when there are any. Every section is present, every plot is an
//! SVG that parses, and the numbers in report.md equal those in results.json. Also: the lab on
//! this machine (host-side parts without a GPU, exit 0), and one clear error for a newer schema
//! and for a corrupt file.

mod common;

use std::path::{Path, PathBuf};

use cumemlab::experiments::info::InfoReport;
use cumemlab::experiments::lab::{self, LabResults, StepStatus};
use cumemlab::experiments::selftest::SelftestReport;
use cumemlab::experiments::sweep::SweepDoc;
use cumemlab::report::markdown::parse_markdown_tables;
use cumemlab::report::sink::read_document;
use serde_json::Value;

fn raw(name: &str) -> PathBuf {
    common::repo()
        .join("tests/fixtures/results/h200-raw")
        .join(name)
}

/// The H200 run's files assembled into lab results.
fn h200() -> LabResults {
    let info: InfoReport =
        serde_json::from_str(&std::fs::read_to_string(raw("info.json")).unwrap()).unwrap();
    let selftest: Vec<SelftestReport> =
        serde_json::from_str(&std::fs::read_to_string(raw("selftest.json")).unwrap()).unwrap();
    let sweep: SweepDoc = read_document(&raw("sweep.json")).unwrap();
    lab::assemble(Some(info), Some(selftest), Some(sweep), None).unwrap()
}

/// Writes `r` as a results folder (results.json, then the report from it) and returns the folder.
fn folder(r: &LabResults) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join(lab::RESULTS_FILE),
        serde_json::to_vec_pretty(r).unwrap(),
    )
    .unwrap();
    // The report is built from the file, as `lab --from` does.
    let back = LabResults::read(d.path()).unwrap();
    lab::write_report(&back, d.path()).unwrap();
    d
}

/// A small XML well-formedness check: every tag closed in order, attributes quoted, text free
/// of raw `<` and of `&` outside entities. Enough to say "an SVG that parses".
fn check_xml(text: &str) -> Result<String, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut root = None;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' {
            let end = text[i..].find('>').ok_or("unclosed tag")? + i;
            let tag = &text[i + 1..end];
            if tag.starts_with('?') || tag.starts_with('!') {
                i = end + 1;
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("stray </{name}>"))?;
                if open != name.trim() {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
            } else {
                let self_closing = tag.ends_with('/');
                let body = tag.trim_end_matches('/');
                let name: String = body.split_whitespace().next().unwrap_or("").to_string();
                if name.is_empty() {
                    return Err("empty tag".into());
                }
                if !body.matches('"').count().is_multiple_of(2) {
                    return Err(format!("unbalanced quotes in <{name}>"));
                }
                if root.is_none() {
                    root = Some(name.clone());
                }
                if !self_closing {
                    stack.push(name);
                }
            }
            i = end + 1;
        } else {
            if b[i] == b'&' {
                let semi = text[i..].find(';').ok_or("bare &")?;
                let ent = &text[i + 1..i + semi];
                if !(["lt", "gt", "amp", "quot", "apos"].contains(&ent) || ent.starts_with('#')) {
                    return Err(format!("unknown entity &{ent};"));
                }
            }
            i += 1;
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed: {stack:?}"));
    }
    root.ok_or_else(|| "no element".to_string())
}

/// Parses a number as the report prints it.
fn num(s: &str) -> f64 {
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{s}` is not a number"))
}

/// `got` (printed with `decimals`) equals `want` rounded the same way.
fn same(got: &str, want: f64, decimals: i32, what: &str) {
    let tol = 0.5 * 10f64.powi(-decimals) + 1e-9 * want.abs();
    assert!(
        (num(got) - want).abs() <= tol,
        "{what}: the report says {got}, results.json says {want}"
    );
}

fn fmt_size(b: u64) -> String {
    cumemlab::units::fmt_bytes(b)
}

type MdTable = (String, Vec<String>, Vec<Vec<String>>);

/// The tables whose title (after "Table N: ") starts with `prefix`.
fn tables_with<'a>(tables: &'a [MdTable], prefix: &str) -> Vec<&'a MdTable> {
    tables
        .iter()
        .filter(|(t, _, _)| {
            t.split_once(": ")
                .is_some_and(|(_, rest)| rest.starts_with(prefix))
        })
        .collect()
}

/// Everything a report of `dir` must satisfy, checked against the raw JSON of its results.json.
fn check_folder(dir: &Path) {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();

    // Sections.
    let mut sections = vec![
        "## Findings",
        "## Steps",
        "## Machine",
        "## Memory accounting",
        "## Files",
    ];
    let has = |k: &str| json.get(k).is_some_and(|v| !v.is_null());
    if has("selftest") {
        sections.push("## Selftest");
    }
    if json["sweep"]["rows"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
    {
        sections.push("## Sweep");
    }
    if json["probe"]["rows"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
    {
        sections.push("## Probe");
    }
    if has("plan") {
        sections.push("## Plan");
    }
    for s in &sections {
        assert!(md.contains(s), "report.md lacks {s}");
        let h = s.trim_start_matches("## ");
        assert!(html.contains(&format!(">{h}")), "report.html lacks {h}");
    }

    // Figures: every one an SVG file that parses, linked from report.md, inline in report.html,
    // with units on its axes; findings cite figures that exist.
    let plots: Vec<PathBuf> = std::fs::read_dir(dir.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!plots.is_empty(), "no figures");
    for p in &plots {
        let svg = std::fs::read_to_string(p).unwrap();
        assert_eq!(
            check_xml(&svg).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            "svg"
        );
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            md.contains(&format!("(plots/{name})")),
            "report.md does not link {name}"
        );
        assert!(
            ["(ms", "(GiB", "(GB/s"].iter().any(|u| svg.contains(u)),
            "{name}: no unit on its axes"
        );
    }
    assert_eq!(
        html.matches("<svg").count(),
        plots.len(),
        "every figure inline in the HTML"
    );
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"));
    let n_fig = plots.len();
    let findings: Vec<&str> = md
        .split("## Findings")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("- "))
        .collect();
    assert!(!findings.is_empty());
    for f in &findings {
        let cited = f
            .trim_start_matches("- ")
            .split(':')
            .next()
            .unwrap()
            .to_string();
        assert!(
            cited.starts_with("Figure ") || cited.starts_with("Table "),
            "finding names no figure: {f}"
        );
        if let Some(n) = cited.strip_prefix("Figure ") {
            assert!(num(n) as usize <= n_fig, "{f} cites a missing figure");
        }
    }

    // Numbers: the tables of report.md against results.json.
    let tables = parse_markdown_tables(&md);
    let find_table = |prefix: &str| tables_with(&tables, prefix);
    let mut checked = 0;
    let rows = json["sweep"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let specs = [
        ("Allocation time (ms), device ", "alloc", "ms_median", 3),
        (
            "GPU first touch (ms), device ",
            "gpu_first_touch",
            "ms_median",
            2,
        ),
        ("Fill bandwidth (GB/s), device ", "fill", "gbps", 1),
        ("Read bandwidth (GB/s), device ", "read", "gbps", 1),
    ];
    for (prefix, ph, field, dec) in specs {
        for (title, header, body) in find_table(prefix) {
            let dev: i64 = num(title
                .split("device ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()) as i64;
            for line in body {
                for (col, cell) in header.iter().zip(line).skip(1) {
                    if cell == "-" {
                        continue;
                    }
                    let row = rows
                        .iter()
                        .find(|r| {
                            r["device"] == dev
                                && r["strategy"] == line[0].as_str()
                                && r["phase"] == ph
                                && fmt_size(r["bytes"].as_u64().unwrap()) == *col
                        })
                        .unwrap_or_else(|| panic!("{title}: no row for {} at {col}", line[0]));
                    same(
                        cell,
                        row[field].as_f64().unwrap(),
                        dec,
                        &format!("{title} {} {col}", line[0]),
                    );
                    checked += 1;
                }
            }
        }
    }
    if let Some(st) = json["selftest"].as_array() {
        for (_, header, body) in find_table("Bandwidth on device memory") {
            let med = header.iter().position(|h| h == "median (GB/s)").unwrap();
            for line in body {
                let rep = st
                    .iter()
                    .find(|s| s["device"] == num(&line[0]) as i64)
                    .unwrap();
                let b = rep["bandwidth"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["op"] == line[1].as_str())
                    .unwrap();
                same(
                    &line[med],
                    b["gbps"]["median"].as_f64().unwrap(),
                    1,
                    "selftest median",
                );
                checked += 1;
            }
        }
    }
    if let Some(plans) = json["plan"].as_array() {
        for m in plans {
            let name = m["target"]["name"].as_str().unwrap();
            let (_, _, body) = find_table(&format!("Capacity of {name} "))
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("no capacity table for {name}"));
            for (line, row) in body.iter().zip(m["rows"].as_array().unwrap()) {
                assert_eq!(line[0], row["label"].as_str().unwrap());
                same(
                    &line[1],
                    row["max_params_billions"].as_f64().unwrap(),
                    2,
                    "plan",
                );
                checked += 1;
            }
        }
    }
    for (_, header, body) in find_table("Memory accounting (GiB") {
        let acc = json["accounting"].as_array().unwrap();
        for line in body {
            for (i, snap) in acc.iter().enumerate() {
                let cell = &line[i + 1];
                let want = match line[0].as_str() {
                    "MemAvailable" => snap["mem_available_bytes"].as_u64(),
                    "Cached" => snap["cached_bytes"].as_u64(),
                    "MemFree" => snap["mem_free_bytes"].as_u64(),
                    "MemTotal" => snap["mem_total_bytes"].as_u64(),
                    _ => None,
                };
                if let Some(w) = want {
                    same(
                        cell,
                        w as f64 / (1u64 << 30) as f64,
                        2,
                        &format!("{} {}", line[0], header[i + 1]),
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 8, "only {checked} numbers checked");
}

#[test]
fn h200_report_has_every_section_plot_and_number() {
    let r = h200();
    let d = folder(&r);
    check_folder(d.path());
    let md = std::fs::read_to_string(d.path().join("report.md")).unwrap();
    // The sweep's figures, one of each kind, for device 0.
    for f in [
        "alloc-time-dev0",
        "touch-dev0",
        "bandwidth-dev0",
        "accounting",
    ] {
        assert!(md.contains(f), "no {f} figure");
    }
    // The failing touch-stride check of that run is reported, not hidden.
    assert!(
        md.contains("touch stride"),
        "the selftest failure is in the report"
    );
    // A finding per figure kind, with numbers from the run.
    assert!(
        md.contains("populate on first touch: managed (first GPU touch 445.0 ms"),
        "{md}"
    );
    assert!(md.contains("fill kernel reaches 94.9% of cuMemsetD32"));
    // The CSVs: one per experiment, readable.
    for f in [
        "sweep.csv",
        "selftest.csv",
        "info.csv",
        "plan.csv",
        "steps.csv",
        "accounting.csv",
    ] {
        let mut rd = csv::Reader::from_path(d.path().join(f)).unwrap();
        assert!(rd.records().count() > 0, "{f} is empty");
    }
    let n = csv::Reader::from_path(d.path().join("sweep.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(n, r.sweep.as_ref().unwrap().rows.len());
}

#[test]
fn results_round_trip() {
    let r = h200();
    let d = folder(&r);
    let back = LabResults::read(&d.path().join("results.json")).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&r).unwrap()
    );
}

#[test]
fn the_real_two_device_lab_reports_both_devices() {
    // `lab --device all` on a host with two H200s: every step ran on both devices.
    let r = LabResults::read(&common::repo().join("tests/fixtures/results/h200x2-lab")).unwrap();
    assert_eq!(r.settings.devices, vec![0, 1]);
    for name in ["selftest", "sweep", "probe", "layout"] {
        let devs: Vec<Option<i32>> = r
            .steps
            .iter()
            .filter(|s| s.name == name && s.status == StepStatus::Ok)
            .map(|s| s.device)
            .collect();
        assert_eq!(devs, vec![Some(0), Some(1)], "{name}");
    }
    let d = folder(&r);
    check_folder(d.path());
    let md = std::fs::read_to_string(d.path().join("report.md")).unwrap();
    for f in [
        "alloc-time-dev0",
        "alloc-time-dev1",
        "touch-dev1",
        "bandwidth-dev1",
        "probe-dev0",
        "probe-dev1",
        "accounting",
    ] {
        assert!(md.contains(f), "no {f} figure");
    }
    for h in [
        "### Device 0: NVIDIA H200",
        "### Device 1: NVIDIA H200",
        "### Cache effect",
        "## Layout",
    ] {
        assert!(md.contains(h), "no {h}");
    }
    for g in [
        "**Sweep, device 1 (NVIDIA H200)**",
        "**Probe, device 1 (NVIDIA H200)**",
        "**Layout, device 0 (NVIDIA H200)**",
    ] {
        assert!(md.contains(g), "no findings group {g}");
    }
    // The probe table's numbers are the rows'.
    let tables = parse_markdown_tables(&md);
    let (_, header, body) = tables_with(&tables, "Probe limits, device 1")[0];
    let max = header.iter().position(|h| h == "max (GiB)").unwrap();
    for line in body {
        let row = r
            .probe
            .as_ref()
            .unwrap()
            .rows
            .iter()
            .find(|x| x.device == 1 && x.strategy == line[0] && x.kind.key() == line[1])
            .unwrap();
        same(
            &line[max],
            row.max_bytes as f64 / (1u64 << 30) as f64,
            2,
            "probe max",
        );
    }
    // Files get the mode of any file the user writes (0666 less the umask), not the 0600 of a
    // temporary file: a fleet's shared --out stays readable.
    use std::os::unix::fs::PermissionsExt;
    let umask = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
        .unwrap_or(0o022);
    for e in std::fs::read_dir(d.path()).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() && e.file_name() != "results.json" {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o666 & !umask, "{:?} is {mode:o}", e.file_name());
        }
    }
}

#[test]
fn two_devices_get_their_own_figures_and_findings() {
    // A device list of two from the one-device run: device 1 is device 0 at half the speed.
    let mut r = h200();
    let mut d1 = r.environment.devices[0].clone();
    d1.ordinal = 1;
    r.environment.devices.push(d1);
    r.settings.devices = vec![0, 1];
    let sweep = r.sweep.as_mut().unwrap();
    let extra: Vec<_> = sweep
        .rows
        .iter()
        .map(|row| {
            let mut x = row.clone();
            x.device = 1;
            x.ms_median *= 2.0;
            x.gbps = x.gbps.map(|g| g / 2.0);
            x
        })
        .collect();
    sweep.rows.extend(extra);
    let d = folder(&r);
    check_folder(d.path());
    let md = std::fs::read_to_string(d.path().join("report.md")).unwrap();
    for f in [
        "alloc-time-dev0",
        "alloc-time-dev1",
        "bandwidth-dev1",
        "touch-dev1",
    ] {
        assert!(md.contains(f), "no {f} figure");
    }
    assert!(md.contains("### Device 1: NVIDIA H200"));
    assert!(
        md.contains(": on device 1 allocating 4 GiB"),
        "findings per device"
    );
}

#[test]
fn device_list_of_one() {
    // `--device all` on a one-GPU host is a list of one: one sweep section, one set of figures.
    let r = h200();
    assert_eq!(r.settings.devices, vec![0]);
    let d = folder(&r);
    let md = std::fs::read_to_string(d.path().join("report.md")).unwrap();
    assert_eq!(md.matches("### Device ").count(), 1);
    assert!(!md.contains("dev1"));
}

#[test]
fn every_lab_folder_under_docs_results() {
    let docs = common::repo().join("docs/results");
    let mut found = 0;
    let mut stack = vec![docs.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "results.json") {
                let r = LabResults::read(&p).unwrap();
                let d = folder(&r);
                check_folder(d.path());
                found += 1;
            }
        }
    }
    if found == 0 {
        common::skip(&format!(
            "every_lab_folder_under_docs_results: no results.json under {}",
            docs.display()
        ));
    }
}

#[test]
fn newer_schema_corrupt_file_and_wrong_experiment_each_one_error() {
    let d = tempfile::tempdir().unwrap();
    let good = serde_json::to_value(h200()).unwrap();
    let f = d.path().join("results.json");
    let mut newer = good.clone();
    newer["schema_version"] = 99.into();
    std::fs::write(&f, newer.to_string()).unwrap();
    let e = LabResults::read(&f).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string().contains("newer") && e.to_string().contains("upgrade"),
        "{e}"
    );
    let text = good.to_string();
    std::fs::write(&f, &text[..text.len() / 2]).unwrap();
    let e = LabResults::read(&f).unwrap_err();
    assert!(
        e.to_string()
            .contains("not a cumemlab result file (invalid JSON"),
        "{e}"
    );
    let e = LabResults::read(&raw("sweep.json")).unwrap_err();
    assert!(
        e.to_string()
            .contains("is a `sweep` result file, not lab results"),
        "{e}"
    );
    let mut damaged = good;
    damaged["steps"] = "many".into();
    std::fs::write(&f, damaged.to_string()).unwrap();
    assert!(
        LabResults::read(&f)
            .unwrap_err()
            .to_string()
            .contains("damaged result file")
    );
    // On the command line: exit 2 and one line.
    std::fs::write(&f, &text[..100]).unwrap();
    let out = common::run(&["lab", "--from", d.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("invalid JSON"), "{err}");
}

#[test]
fn lab_from_rerenders_a_folder() {
    let d = folder(&h200());
    std::fs::remove_file(d.path().join("report.html")).unwrap();
    let out = common::run(&["lab", "--from", d.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.path().join("report.html").is_file());
    check_folder(d.path());
}

#[test]
fn lab_on_this_machine() {
    // With a GPU here the lab runs on it: hold the GPU tests' lock.
    let _gpu_lock = common::gpu_lock();
    let gpu = cumemlab::driver::Driver::load()
        .ok()
        .and_then(|d| d.device_count().ok())
        .unwrap_or(0);
    let d = tempfile::tempdir().unwrap();
    let out_dir = d.path().to_str().unwrap();
    let args: Vec<&str> = if gpu > 0 {
        // Every device, quickly: the sweep at its smallest size, the cheap steps.
        vec![
            "lab",
            "--out",
            out_dir,
            "--name",
            "run",
            "--device",
            "all",
            "--budget",
            "0.5",
            "--skip",
            "probe,layout",
            "--quiet",
        ]
    } else {
        vec!["lab", "--out", out_dir, "--name", "run", "--quiet"]
    };
    let out = common::run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let dir = d.path().join("run");
    let r = LabResults::read(&dir).unwrap();
    assert!(r.complete && !r.interrupted);
    let status = |name: &str| -> Vec<StepStatus> {
        r.steps
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.status)
            .collect()
    };
    assert_eq!(status("info"), vec![StepStatus::Ok]);
    assert_eq!(status("plan"), vec![StepStatus::Ok]);
    assert_eq!(status("cache"), vec![StepStatus::Ok]);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    if gpu > 0 {
        // One selftest and one sweep per device, every device in the report.
        assert_eq!(status("selftest").len(), gpu as usize);
        assert!(
            status("sweep").iter().all(|s| *s == StepStatus::Ok),
            "{stderr}"
        );
        for dev in 0..gpu {
            assert!(
                r.sweep
                    .as_ref()
                    .unwrap()
                    .rows
                    .iter()
                    .any(|x| x.device == dev)
            );
            assert!(
                md.contains(&format!("### Device {dev}:")),
                "device {dev} in the report"
            );
        }
        check_folder(&dir);
    } else {
        for name in ["selftest", "sweep", "probe", "layout"] {
            assert_eq!(status(name), vec![StepStatus::NeedsGpu], "{name}");
        }
        assert!(md.contains("**No GPU here**"));
        assert!(stderr.contains("need a GPU"), "{stderr}");
        // plan ran for the gb10 profile.
        assert_eq!(r.plan.as_ref().unwrap()[0].target.name, "gb10");
        assert!(dir.join("plots").read_dir().unwrap().count() >= 1);
        check_folder(&dir);
        // A bad device number is bad input only where there are GPUs: here it is not an error.
        let out = common::run(&["lab", "--out", out_dir, "--budget", "0"]);
        assert_eq!(out.status.code(), Some(2), "--budget 0 is refused");
    }
}
