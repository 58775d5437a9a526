//! `cumemlab compare` without a GPU, on committed results: the H200 lab results (assembled from
//! the real run's files) against the same run's plain `sweep` document, against the real
//! two-H200 lab, against a second machine derived from it, and against every committed lab
//! folder (`tests/fixtures/results/*-lab`, `docs/results/`). Tables carry the right ratios, the HTML's plots have one series per
//! machine, `--json` is the same report, a fleet folder expands to its lab folders, and bad
//! inputs each get one clear error.

mod common;

use std::path::{Path, PathBuf};

use cumemlab::experiments::compare::{self, CompareReport};
use cumemlab::experiments::lab::{self, LabResults};
use cumemlab::report::sink::read_document;
use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    common::repo().join("tests/fixtures/results").join(rel)
}

/// The H200 run's raw files assembled into a lab folder `dir/h200-lab`.
fn h200_lab(dir: &Path) -> PathBuf {
    let info =
        serde_json::from_str(&std::fs::read_to_string(fixture("h200-raw/info.json")).unwrap())
            .unwrap();
    let selftest =
        serde_json::from_str(&std::fs::read_to_string(fixture("h200-raw/selftest.json")).unwrap())
            .unwrap();
    let sweep = read_document(&fixture("h200-raw/sweep.json")).unwrap();
    let r = lab::assemble(Some(info), Some(selftest), Some(sweep), None).unwrap();
    let d = dir.join("h200-lab");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("results.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    d
}

/// A second machine: the H200 results with every time doubled and every bandwidth halved,
/// under another host name.
fn slower_copy(src: &Path, dir: &Path) -> PathBuf {
    let mut r = LabResults::read(src).unwrap();
    r.environment.host.hostname = "slow".into();
    for row in &mut r.sweep.as_mut().unwrap().rows {
        row.ms_median *= 2.0;
        row.gbps = row.gbps.map(|g| g / 2.0);
    }
    for s in r.selftest.as_mut().unwrap() {
        for b in &mut s.bandwidth {
            b.gbps.median /= 2.0;
        }
    }
    let d = dir.join("slow-lab");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("results.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    d
}

fn table<'a>(rep: &'a CompareReport, id: &str) -> &'a compare::CompareTable {
    rep.tables
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no table {id}"))
}

#[test]
fn lab_against_a_slower_machine_gives_the_ratios() {
    let d = tempfile::tempdir().unwrap();
    let slow = slower_copy(&h200_lab(d.path()), d.path());
    let out_dir = d.path().join("cmp");
    let json = common::run_ok(&[
        "compare",
        d.path().join("h200-lab").to_str().unwrap(),
        slow.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    let rep: CompareReport = serde_json::from_str(&json).unwrap();
    assert_eq!(rep.columns.len(), 2);
    // Every machine carries its folder tag, not only the ambiguous ones.
    assert_eq!(rep.columns[0].label, "vm / NVIDIA H200 (0) [h200-lab]");
    assert_eq!(rep.columns[1].label, "slow / NVIDIA H200 (0) [slow-lab]");
    for (id, want) in [
        ("sweep.alloc_ms", 2.0),
        ("sweep.gpu_first_touch_ms", 2.0),
        ("sweep.fill_gbps", 0.5),
        ("selftest.gbps", 0.5),
    ] {
        let t = table(&rep, id);
        assert!(!t.rows.is_empty(), "{id}");
        for r in &t.rows {
            if let (Some(a), Some(q)) = (r.values[0], r.ratios[1])
                && a > 0.0
            {
                assert!((q - want).abs() < 1e-9, "{id} {}: ratio {q}", r.key);
            }
        }
    }
    // The same numbers as the inputs: pinned at 4 GiB took 1980.687 ms on the H200.
    let alloc = table(&rep, "sweep.alloc_ms");
    let pinned = alloc
        .rows
        .iter()
        .find(|r| r.key == "pinned @ 4 GiB")
        .unwrap();
    assert!((pinned.values[0].unwrap() - 1980.687).abs() < 1e-3);
    // Plan capacity is per device: the same device, the same figures.
    let plan = table(&rep, "plan.max_params_billions");
    assert!(plan.rows.iter().all(|r| r.ratios[1] == Some(1.0)));

    // Files: compare.md, compare.html with plots that parse and one series per machine.
    let md = std::fs::read_to_string(out_dir.join("compare.md")).unwrap();
    let html = std::fs::read_to_string(out_dir.join("compare.html")).unwrap();
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("compare.json")).unwrap())
            .unwrap();
    assert_eq!(
        on_disk["tables"],
        serde_json::to_value(&rep.tables).unwrap()
    );
    assert!(md.contains("## Sweep") && md.contains("## Selftest") && md.contains("## Plan"));
    assert!(
        md.contains("| B/A |") || md.contains("| B/A"),
        "ratio columns"
    );
    let plots: Vec<PathBuf> = std::fs::read_dir(out_dir.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(plots.len() >= 5);
    assert_eq!(html.matches("<svg").count(), plots.len());
    for p in &plots {
        let svg = std::fs::read_to_string(p).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
        // Both machines in every legend.
        assert!(
            svg.contains("A: vm / NVIDIA H200 (0) [h200-lab]")
                && svg.contains("B: slow / NVIDIA H200 (0) [slow-lab]"),
            "{}",
            p.display()
        );
    }
    // Findings cite figures and give the ratio.
    assert!(
        md.contains("device memory fill at 4 GiB: A 4337 GB/s, B 2168 GB/s (0.50x)"),
        "{md}"
    );
}

#[test]
fn lab_against_the_runs_own_sweep_document() {
    // Two committed result sets of different kinds: the lab folder and a plain sweep file.
    let d = tempfile::tempdir().unwrap();
    let text = common::run_ok(&[
        "compare",
        h200_lab(d.path()).to_str().unwrap(),
        fixture("h200-raw/sweep.json").to_str().unwrap(),
    ]);
    // The same host and device twice: the labels say which input is which.
    assert!(
        text.contains("A = vm / NVIDIA H200 (0) [h200-lab]"),
        "{text}"
    );
    assert!(text.contains("B = vm / NVIDIA H200 (0) [sweep]"), "{text}");
    // Identical numbers: every sweep ratio is 1.00x.
    let section = text.split_once("sweep: allocation time, ms").unwrap().1;
    assert!(section.contains("| pinned @ 4 GiB ") && section.contains("1.00x"));
    assert!(!section.split("\n\n").next().unwrap().contains("2.00x"));
}

#[test]
fn the_h200_against_the_real_two_device_lab() {
    // Two committed result sets: the single-H200 run and the two-H200 lab, three machines.
    let d = tempfile::tempdir().unwrap();
    let json = common::run_ok(&[
        "compare",
        h200_lab(d.path()).to_str().unwrap(),
        fixture("h200x2-lab").to_str().unwrap(),
        "--json",
    ]);
    let rep: CompareReport = serde_json::from_str(&json).unwrap();
    let labels: Vec<&str> = rep.columns.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        vec![
            "vm / NVIDIA H200 (0) [h200-lab]",
            "vm / NVIDIA H200 (0) [h200x2-lab]",
            "vm / NVIDIA H200 (1) [h200x2-lab]"
        ]
    );
    // Only the sizes every machine ran (256 MiB, 1 GiB) are compared; 4 GiB, which only the
    // first ran, is named once in the notes instead of a row of `-`.
    let alloc = table(&rep, "sweep.alloc_ms");
    let at = |key: &str| alloc.rows.iter().find(|r| r.key == key).unwrap();
    assert!(at("device @ 1 GiB").values.iter().all(Option::is_some));
    assert!(alloc.rows.iter().all(|r| !r.key.ends_with("@ 4 GiB")));
    assert!(
        rep.notes
            .iter()
            .any(|n| n.contains("left out") && n.contains("4 GiB (only A)")),
        "{:?}",
        rep.notes
    );
    // Ratios are the values over A's.
    let r = at("pinned @ 1 GiB");
    let (a, b) = (r.values[0].unwrap(), r.values[2].unwrap());
    assert!((r.ratios[2].unwrap() - b / a).abs() < 1e-12);
    // The two-device lab brings its probe; the single run has none.
    let probe = table(&rep, "probe.max_gib");
    assert!(
        probe
            .rows
            .iter()
            .all(|r| r.values[0].is_none() && r.values[1].is_some())
    );
}

#[test]
fn every_committed_lab_folder_compares_with_the_h200() {
    let tmp = tempfile::tempdir().unwrap();
    let h200 = h200_lab(tmp.path());
    let mut others: Vec<PathBuf> = Vec::new();
    for root in [
        common::repo().join("tests/fixtures/results"),
        common::repo().join("docs/results"),
    ] {
        let Ok(rd) = std::fs::read_dir(&root) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.join("results.json").is_file() {
                others.push(p);
            }
        }
    }
    if others.is_empty() {
        common::skip(
            "every_committed_lab_folder_compares_with_the_h200: no other lab folder committed",
        );
        return;
    }
    for o in others {
        let inputs = compare::load(&[h200.clone(), o.clone()]).unwrap();
        let rep = compare::build(&inputs);
        assert!(rep.columns.len() >= 2, "{}", o.display());
        let d = tempfile::tempdir().unwrap();
        compare::write(&rep, &inputs, d.path()).unwrap();
        assert!(d.path().join("compare.html").is_file());
    }
}

#[test]
fn a_fleet_folder_expands_to_its_lab_folders() {
    let d = tempfile::tempdir().unwrap();
    let fleet = d.path().join("fleet");
    std::fs::create_dir_all(fleet.join("vm-2026-11-26")).unwrap();
    let h200 = h200_lab(d.path());
    std::fs::copy(
        h200.join("results.json"),
        fleet.join("vm-2026-11-26/results.json"),
    )
    .unwrap();
    let slow = slower_copy(&h200, &fleet);
    assert!(slow.starts_with(&fleet));
    std::fs::write(fleet.join("notes.txt"), "not results").unwrap();
    let inputs = compare::load(std::slice::from_ref(&fleet)).unwrap();
    assert_eq!(inputs.len(), 2);
    let rep = compare::build(&inputs);
    let hosts: Vec<&str> = rep.columns.iter().map(|c| c.host.as_str()).collect();
    assert_eq!(hosts, vec!["slow", "vm"], "sorted by folder name");
}

#[test]
fn bad_inputs_get_one_clear_error_each() {
    let d = tempfile::tempdir().unwrap();
    let lab_dir = h200_lab(d.path());
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(lab_dir.join("results.json")).unwrap())
            .unwrap();
    let newer = d.path().join("newer.json");
    let mut v = good.clone();
    v["schema_version"] = 2.into();
    std::fs::write(&newer, v.to_string()).unwrap();
    let corrupt = d.path().join("corrupt.json");
    std::fs::write(&corrupt, &good.to_string()[..500]).unwrap();
    let info = fixture("h200-raw/info.json");
    let empty = d.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (args, want) in [
        (
            vec![lab_dir.clone(), newer],
            "newer than this cumemlab understands",
        ),
        (
            vec![lab_dir.clone(), corrupt],
            "is not a cumemlab result file (invalid JSON",
        ),
        (
            vec![lab_dir.clone(), info],
            "is not a cumemlab result file (no \"schema\"",
        ),
        (vec![lab_dir.clone()], "compare needs at least two machines"),
        (vec![lab_dir.clone(), empty], "holds no results.json"),
        (
            vec![lab_dir.clone(), d.path().join("missing")],
            "no such file or folder",
        ),
    ] {
        let mut a = vec!["compare".to_string()];
        a.extend(args.iter().map(|p| p.display().to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = common::run(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{a:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(want), "{a:?}: {err}");
    }
}

/// The H200 lab with its GPU parts removed, as a lab on a machine without a GPU writes it.
fn gpu_less_copy(src: &Path, dir: &Path) -> PathBuf {
    let mut r = LabResults::read(src).unwrap();
    r.environment.host.hostname = "laptop".into();
    r.environment.devices.clear();
    r.environment.no_device_reason = Some("no CUDA driver (libcuda.so.1 not found)".into());
    r.settings.devices.clear();
    r.selftest = None;
    r.sweep = None;
    r.probe = None;
    r.layout = None;
    // Without a GPU the lab plans against the gb10 profile.
    let gb10 = cumemlab::plan::Target::named("gb10").unwrap();
    r.plan = Some(vec![cumemlab::plan::capacity_matrix(&gb10)]);
    let d = dir.join("laptop-lab");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("results.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    d
}

#[test]
fn a_gpu_less_lab_as_a_does_not_blank_the_ratios_and_directions_are_right() {
    let d = tempfile::tempdir().unwrap();
    let h200 = h200_lab(d.path());
    let laptop = gpu_less_copy(&h200, d.path());
    let slow = slower_copy(&h200, d.path());
    let json = common::run_ok(&[
        "compare",
        laptop.to_str().unwrap(),
        h200.to_str().unwrap(),
        slow.to_str().unwrap(),
        "--json",
    ]);
    let rep: CompareReport = serde_json::from_str(&json).unwrap();
    assert_eq!(rep.columns[0].label, "laptop (no GPU) [laptop-lab]");
    // The sweep has no figures in A: B is the reference and C/B is 2x for every time.
    let alloc = table(&rep, "sweep.alloc_ms");
    assert_eq!(alloc.reference, 1);
    assert!(!alloc.rows.is_empty());
    for r in &alloc.rows {
        assert_eq!(r.values[0], None);
        if let (Some(b), Some(q)) = (r.values[1], r.ratios[2])
            && b > 0.0
        {
            assert!((q - 2.0).abs() < 1e-9, "{}: {q}", r.key);
        }
    }
    // Directions: times lower, bandwidth higher, the page cache neither.
    assert_eq!(alloc.higher_is_better, Some(false));
    assert_eq!(table(&rep, "sweep.fill_gbps").higher_is_better, Some(true));
    if let Some(t) = rep.tables.iter().find(|t| t.id == "accounting.cached_gib") {
        assert_eq!(t.higher_is_better, None);
        assert!(t.rows.iter().all(|r| r.key.starts_with("Cached")));
    }
    assert!(
        table(&rep, "accounting.start_gib")
            .rows
            .iter()
            .all(|r| !r.key.starts_with("Cached"))
    );
    // The text says which column the ratios are against, and why.
    let text = common::run_ok(&[
        "compare",
        laptop.to_str().unwrap(),
        h200.to_str().unwrap(),
        slow.to_str().unwrap(),
    ]);
    assert!(
        text.contains(
            "sweep: allocation time, ms (lower is better; ratios against B (A has no figures here))"
        ),
        "{text}"
    );
    assert!(text.contains("| C/B"), "{text}");
    assert!(!text.contains("Cached (page cache) (higher"), "{text}");
    // The plan table names each machine's target.
    let target = rep
        .machines
        .iter()
        .find(|f| f.key == "plan target")
        .unwrap();
    assert_eq!(target.values[0], "gb10 (profile: no GPU here)");
    assert_eq!(target.values.len(), 3);
    let plan = table(&rep, "plan.max_params_billions");
    assert!(plan.title.contains("plan target"), "{}", plan.title);
    assert!(plan.rows.iter().all(|r| r.values[0].is_some()));
}

#[test]
fn layout_overhead_is_lower_is_better() {
    let d = tempfile::tempdir().unwrap();
    let lab2 = fixture("h200x2-lab");
    let rep = compare::build(&compare::load(&[h200_lab(d.path()), lab2]).unwrap());
    let over = rep.tables.iter().find(|t| t.id == "layout.overhead_pct");
    let Some(over) = over else {
        common::skip("layout_overhead_is_lower_is_better: the fixtures have no layout");
        return;
    };
    assert_eq!(over.higher_is_better, Some(false));
    assert!(over.rows.iter().all(|r| r.key.starts_with("overhead")));
    let after = table(&rep, "layout");
    assert_eq!(after.higher_is_better, Some(true));
    assert!(after.rows.iter().all(|r| r.key.starts_with("largest")));
}
