//! The GB10 paths on what DGX Sparks really showed (tests/fixtures/gb10, sources in its README):
//! `info` and `watch` through the binary with the /proc files replaced (`CUMEMLAB_MEMINFO`,
//! `CUMEMLAB_BUDDYINFO`, `CUMEMLAB_PSI_MEMORY`, `CUMEMLAB_CGROUP_DIR`), the pressure guard's
//! verdict on a wedged host, and the device part of `info` rendered for a GB10 (no GB10 runs
//! these tests, so the device part goes through the library with the reported attributes).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use cumemlab::driver::DeviceAttributes;
use cumemlab::experiments::env::{DeviceInfo, Environment};
use cumemlab::experiments::info::{self, InfoReport};
use cumemlab::host::{HostPressure, MemInfo};
use cumemlab::memory::arch::{MemoryArchitecture, UsableEstimate};
use cumemlab::units::GIB;

fn gb10(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures/gb10").join(name)
}

/// The binary with every /proc source replaced by a GB10 fixture, and no CUDA driver (the host
/// part alone, whatever machine runs the test).
fn on_gb10(args: &[&str], buddy: &str, psi: &str, extra: &[(&str, &str)]) -> Output {
    let mut c = Command::new(common::bin());
    c.args(args)
        .env("CUMEMLAB_MEMINFO", gb10("meminfo-after-60gb-write.txt"))
        .env("CUMEMLAB_BUDDYINFO", gb10(buddy))
        .env("CUMEMLAB_PSI_MEMORY", gb10(psi))
        .env("CUMEMLAB_CGROUP_DIR", gb10("cgroup-vllm-load"))
        .env("CUMEMLAB_PAGE_SIZE", "4096")
        .env("CUMEMLAB_LIBCUDA", "/nonexistent/libcuda.so.1")
        .env_remove("CUMEMLAB_PSI_FULL_MAX")
        .env_remove("CUMEMLAB_MIN_FREE_2M");
    for (k, v) in extra {
        c.env(k, v);
    }
    c.output().expect("the cumemlab binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn info_shows_the_pressure_of_a_wedged_gb10_and_the_guard_stops() {
    let o = on_gb10(
        &["info"],
        "buddyinfo-wedged.txt",
        "pressure-memory-calm.txt",
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    // The meminfo fixture: MemTotal 127600748 kB = 121.69 GiB, MemAvailable 115.65 GiB.
    assert!(out.contains("121.69") && out.contains("115.65"), "{out}");
    assert!(
        out.contains("memory pressure (PSI): some avg10 0.00%"),
        "{out}"
    );
    // 137 MB free, none of it in blocks of 2 MiB or more.
    assert!(
        out.contains("free 2 MiB blocks (buddyinfo, order 9 at 4 KiB pages): 0 B in 0 blocks"),
        "{out}"
    );
    assert!(
        out.contains("cgroup v2 memory: 16.7 GiB used, limit none"),
        "{out}"
    );
    // The guard's verdict names the figure, the limit and the report.
    assert!(
        out.contains("would stop a 1 GiB allocation: unified memory fragmented: free blocks of 2 MiB and larger hold 0 B (limit 1 GiB"),
        "{out}"
    );
    assert!(out.contains("#23"), "{out}");
}

#[test]
fn the_guard_thresholds_are_settable_and_psi_stops_too() {
    // A fresh boot's block supply: the guard lets 1 GiB through.
    let o = on_gb10(
        &["info"],
        "buddyinfo-fresh.txt",
        "pressure-memory-calm.txt",
        &[],
    );
    let (out, _) = text(&o);
    assert!(
        out.contains("a 1 GiB allocation would go ahead (stops at PSI full avg10 >= 10.0% or under 1 GiB in 2 MiB blocks)"),
        "{out}"
    );
    // 2385 x 1 MiB + 1500 x 2 MiB + 24 x 4 MiB: 1548 blocks of 2 MiB.
    assert!(out.contains("3.02 GiB in 1548 blocks"), "{out}");
    // Thrashing stops it with the figure.
    let o = on_gb10(
        &["info"],
        "buddyinfo-fresh.txt",
        "pressure-memory-stalling.txt",
        &[],
    );
    let (out, _) = text(&o);
    assert!(
        out.contains("would stop a 1 GiB allocation: unified memory under pressure: PSI full avg10 is 42.00% (limit 10.00%"),
        "{out}"
    );
    // A higher PSI limit and a zero block floor let the same hosts through.
    let o = on_gb10(
        &["info"],
        "buddyinfo-wedged.txt",
        "pressure-memory-stalling.txt",
        &[
            ("CUMEMLAB_PSI_FULL_MAX", "50"),
            ("CUMEMLAB_MIN_FREE_2M", "0"),
        ],
    );
    let (out, _) = text(&o);
    assert!(
        out.contains("would go ahead (stops at PSI full avg10 >= 50.0%"),
        "{out}"
    );
    // A threshold that does not parse is named.
    let o = on_gb10(
        &["info"],
        "buddyinfo-fresh.txt",
        "pressure-memory-calm.txt",
        &[("CUMEMLAB_PSI_FULL_MAX", "lots")],
    );
    let (out, _) = text(&o);
    assert!(
        out.contains("CUMEMLAB_PSI_FULL_MAX `lots` is not a percentage"),
        "{out}"
    );
}

#[test]
fn info_json_carries_psi_buddyinfo_and_cgroup_from_the_fixtures() {
    let o = on_gb10(
        &["info", "--json"],
        "buddyinfo-fresh.txt",
        "pressure-memory-stalling.txt",
        &[],
    );
    assert!(o.status.success());
    let r: InfoReport = serde_json::from_slice(&o.stdout).expect("info --json is an InfoReport");
    let p = &r.pressure;
    assert_eq!(p.psi.map(|x| x.full_avg10), Some(42.0));
    assert_eq!(p.psi.map(|x| x.some_avg60), Some(38.75));
    let b = p.buddyinfo.as_ref().expect("buddyinfo");
    assert_eq!(b.order_2m, 9);
    let normal = b.zones.iter().find(|z| z.zone == "Normal").unwrap();
    assert_eq!(normal.blocks_2m, 1548);
    assert_eq!(p.cgroup.as_ref().unwrap().current_bytes, Some(17931488461));
    assert!(r.pressure_stop.unwrap().contains("42.00%"));
    let m = r.environment.meminfo.unwrap();
    assert_eq!(m.mem_total, 127600748 * 1024);
}

#[test]
fn info_json_carries_psi_buddyinfo_and_cgroup_on_this_host() {
    let o = common::run(&["info", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &v["pressure"];
    for key in ["psi", "buddyinfo", "cgroup"] {
        assert!(p.get(key).is_some(), "pressure.{key} is missing: {p}");
        // Present, or listed as unavailable with the reason.
        if p[key].is_null() {
            let why = p["unavailable"].to_string();
            assert!(
                why.to_lowercase().contains(&key[..3]),
                "{key} absent without a reason: {why}"
            );
        }
    }
    // Every Linux host with /proc/buddyinfo gives zones.
    if std::path::Path::new("/proc/buddyinfo").exists() {
        assert!(
            p["buddyinfo"]["zones"]
                .as_array()
                .is_some_and(|z| !z.is_empty())
        );
    }
}

#[test]
fn watch_shows_psi_2mib_blocks_and_peaks() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("w.json");
    let o = on_gb10(
        &[
            "watch",
            "--host-only",
            "--count",
            "2",
            "--interval",
            "50ms",
            "--out",
            out_file.to_str().unwrap(),
        ],
        "buddyinfo-fresh.txt",
        "pressure-memory-stalling.txt",
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("PSI some 61.20% full 42.00%  2 MiB blocks 3.02 GiB"),
        "{out}"
    );
    assert!(out.contains("cgroup 16.7 GiB"), "{out}");
    assert!(
        out.contains(
            "peaks since start: device used n/a  PSI full 42.00%  fewest 2 MiB blocks 3.02 GiB"
        ),
        "{out}"
    );
    for l in out.lines() {
        assert!(
            l.chars().count() <= 100,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(doc["complete"], true);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["free_2m_bytes"], 1548u64 * 2 * 1024 * 1024);
    assert_eq!(rows[1]["peak_psi_full_avg10"], 42.0);
}

#[test]
fn watch_refuses_zero_counts_and_huge_intervals_and_fails_on_a_full_stdout() {
    for (args, phrase) in [
        (
            &["watch", "--count", "0"][..],
            "--count 0 would take no sample",
        ),
        (&["watch", "--interval", "1e20"][..], "is too long"),
    ] {
        let o = common::run(args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(phrase), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("w.json");
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        common::skip("watch to /dev/full: this host has no /dev/full");
        return;
    };
    let o = Command::new(common::bin())
        .args([
            "watch",
            "--host-only",
            "--count",
            "3",
            "--interval",
            "50ms",
            "--out",
            out_file.to_str().unwrap(),
        ])
        .stdout(full)
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("cannot write to stdout"), "{err}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(doc["complete"], false, "a failed watch is not complete");
    assert_eq!(
        doc["rows"].as_array().unwrap().len(),
        1,
        "the sample taken is kept"
    );
}

/// GB10's attributes as owners report them (issue 12: integrated, pageable memory access through
/// the host page tables, LPDDR5x at 8533 MHz on a 256-bit bus).
fn gb10_attributes() -> DeviceAttributes {
    DeviceAttributes::from_pairs(&[
        ("integrated", 1),
        ("pageable_memory_access", 1),
        ("pageable_memory_access_uses_host_page_tables", 1),
        ("concurrent_managed_access", 1),
        ("host_register_supported", 1),
        ("managed_memory", 1),
        ("memory_clock_rate_khz", 8_533_000),
        ("global_memory_bus_width_bits", 256),
        ("compute_capability_major", 12),
        ("compute_capability_minor", 1),
    ])
}

#[test]
fn the_device_part_of_info_on_a_gb10() {
    let m = MemInfo::parse(&std::fs::read_to_string(gb10("meminfo-after-60gb-write.txt")).unwrap())
        .unwrap();
    let attrs = gb10_attributes();
    let arch = MemoryArchitecture::classify(&attrs);
    // On GB10 cuMemGetInfo free is MemFree (cuda-free-vs-meminfo.txt).
    let usable = UsableEstimate::new(arch, m.mem_free, &m);
    let mut environment = Environment::host_only(String::new());
    environment.no_device_reason = None;
    environment.meminfo = Some(m.clone());
    environment.devices = vec![DeviceInfo {
        ordinal: 0,
        name: "NVIDIA GB10".into(),
        uuid: "GPU-fixture".into(),
        pci_bus_id: "0000000F:01:00.0".into(),
        compute_capability: "12.1".into(),
        multiprocessors: 48,
        total_bytes: m.mem_total,
        cumemgetinfo_free_bytes: m.mem_free,
        cumemgetinfo_total_bytes: m.mem_total,
        architecture: arch,
        attributes: attrs,
        usable,
    }];
    let r = InfoReport {
        environment,
        strategies: Vec::new(),
        pressure: HostPressure::default(),
        pressure_limits: None,
        pressure_stop: None,
    };
    let t = info::render(&r);
    assert!(
        t.contains("memory architecture: integrated unified memory"),
        "{t}"
    );
    // The usable estimate is MemAvailable (no swap here), not cuMemGetInfo's MemFree, and the
    // page cache that hides the difference is named with the fix.
    assert!(
        t.contains("a GPU allocation can get about 116 GiB (MemAvailable + SwapFree"),
        "{t}"
    );
    assert!(t.contains("cuMemGetInfo says 41.5 GiB"), "{t}");
    assert!(
        t.contains("WARNING: the page cache holds") && t.contains("drop_caches"),
        "{t}"
    );
    // No 2 x 8533 MHz x 256 bit = 546 GB/s "peak"; the reported 273 GB/s instead, with the source.
    assert!(!t.contains("546"), "{t}");
    assert!(
        t.contains("no theoretical peak") && t.contains("owners report 273 GB/s for GB10"),
        "{t}"
    );
}

#[test]
fn captured_cuda_free_tracks_memfree_while_the_estimate_holds() {
    // unsloth PR #10704's three rows: cuda_free = MemFree, so cuMemGetInfo loses 61.7 GiB to the
    // page cache; the usable estimate (MemAvailable) moves by 0.2 GiB.
    let text = std::fs::read_to_string(gb10("cuda-free-vs-meminfo.txt")).unwrap();
    let field = |line: &str, key: &str| -> f64 {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let mut estimates = Vec::new();
    let mut device_free = Vec::new();
    for l in text.lines().filter(|l| l.starts_with('[')) {
        let b = |g: f64| (g * GIB as f64) as u64;
        let cuda_free = b(field(l, "cuda_free="));
        let m = MemInfo {
            mem_total: 127600748 * 1024,
            mem_free: b(field(l, "MemFree=")),
            mem_available: b(field(l, "MemAvailable=")),
            cached: b(field(l, "Cached=")),
            ..MemInfo::default()
        };
        assert_eq!(cuda_free, m.mem_free, "{l}");
        let u = UsableEstimate::new(MemoryArchitecture::IntegratedUnified, cuda_free, &m);
        estimates.push(u.estimate_bytes);
        device_free.push(u.cumemgetinfo_free_bytes);
    }
    assert_eq!(estimates.len(), 3);
    let spread = |v: &[u64]| v.iter().max().unwrap() - v.iter().min().unwrap();
    assert!(spread(&device_free) > 60 * GIB);
    assert!(spread(&estimates) < GIB / 2);
}

#[test]
fn every_gb10_fixture_has_a_source_in_the_readme() {
    let dir = common::repo().join("tests/fixtures/gb10");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name == "README.md" {
            continue;
        }
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}")))
            .unwrap_or_else(|| panic!("{name} has no row in the README"));
        let cols: Vec<&str> = row.split('|').map(str::trim).collect();
        // | file | what | source | captured or constructed |
        assert!(cols.len() >= 5, "{row}");
        assert!(
            cols[3].contains('#'),
            "{name}: the source names an issue or PR: {row}"
        );
        assert!(
            cols[4].starts_with("captured") || cols[4].starts_with("constructed"),
            "{name}: {row}"
        );
    }
}

#[test]
fn the_lab_report_prefers_the_bandwidth_its_selftest_measured() {
    // A real two-H200 lab folder, re-rendered: each device's bandwidth line cites its selftest.
    let src = common::repo().join("tests/fixtures/results/h200x2-lab");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("results.json"), dir.path().join("results.json")).unwrap();
    let o = common::run(&["lab", "--from", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let line = md
        .lines()
        .find(|l| l.starts_with("Device 0: bandwidth measured in this run: fill "))
        .unwrap_or_else(|| panic!("no measured bandwidth line:\n{md}"));
    assert!(line.contains("(selftest medians)"), "{line}");
    assert!(!line.contains("theoretical"), "{line}");
}

#[test]
fn cache_status_on_a_gb10_page_cache_of_60_gb() {
    let o = on_gb10(
        &["cache", "--host-only"],
        "buddyinfo-fresh.txt",
        "pressure-memory-calm.txt",
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    // The reported figures: MemFree 41.52, MemAvailable 115.65, Cached 72.64 GiB.
    assert!(out.contains("| MemFree           | 41.52 "), "{out}");
    assert!(out.contains("| MemAvailable      | 115.65"), "{out}");
    assert!(out.contains("| reclaimable cache | 72.64 "), "{out}");
    assert!(out.contains("on GB10 it would equal MemFree"), "{out}");
}
