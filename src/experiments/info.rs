//! `cumemlab info`: what this machine is, as far as memory is concerned. The host part (kernel,
//! page size, THP, /proc/meminfo, cgroup limit) always; the driver and each device (attributes,
//! memory architecture, which strategies work and why not, what an allocation can really get)
//! when there is a GPU. With no driver or no GPU: the host part, one line saying why, exit 0.

use serde::{Deserialize, Serialize};

use super::env::Environment;
use crate::driver::ATTRIBUTES;
use crate::memory::REGISTRY;
use crate::report::new_table;
use crate::units::{fmt_bytes, fmt_gib};

/// Whether a strategy works on a device, and why not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StrategySupport {
    pub device: i32,
    pub strategy: String,
    pub supported: bool,
    pub reason: Option<String>,
}

/// What `info --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InfoReport {
    pub environment: Environment,
    pub strategies: Vec<StrategySupport>,
}

/// Collects the report (never fails: what cannot be read is reported as such).
pub fn collect() -> InfoReport {
    let environment = Environment::collect(None);
    let mut strategies = Vec::new();
    for d in &environment.devices {
        for s in REGISTRY {
            let r = s.strategy.supported(&d.attributes);
            strategies.push(StrategySupport {
                device: d.ordinal,
                strategy: s.key.into(),
                supported: r.is_ok(),
                reason: r.err(),
            });
        }
    }
    InfoReport {
        environment,
        strategies,
    }
}

/// One fact of `info.csv` (long form: the host facts, the driver, each device and which
/// strategies it supports, so the file has a header and the host part even without a GPU).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InfoCsvRow {
    /// `host`, `meminfo`, `driver`, `device`, `attribute` or `strategy`.
    pub section: String,
    /// The device ordinal (device sections only).
    pub device: Option<i32>,
    pub key: String,
    pub value: String,
    /// `bytes`, `count` or empty for text.
    pub unit: String,
}

/// The report as `info.csv` rows.
pub fn csv_rows(r: &InfoReport) -> Vec<InfoCsvRow> {
    let mut rows = Vec::new();
    let mut add = |section: &str, device: Option<i32>, key: &str, value: String, unit: &str| {
        rows.push(InfoCsvRow {
            section: section.into(),
            device,
            key: key.into(),
            value,
            unit: unit.into(),
        })
    };
    let env = &r.environment;
    let h = &env.host;
    add("host", None, "tool_version", env.tool_version.clone(), "");
    add("host", None, "hostname", h.hostname.clone(), "");
    add("host", None, "arch", h.arch.clone(), "");
    add("host", None, "kernel_release", h.kernel_release.clone(), "");
    add("host", None, "cpus", h.cpus.to_string(), "count");
    add("host", None, "page_size", h.page_size.to_string(), "bytes");
    add("host", None, "thp_enabled", h.thp_enabled.clone(), "");
    add(
        "host",
        None,
        "cgroup_memory_limit",
        h.cgroup_memory_limit
            .map_or("none".into(), |v| v.to_string()),
        "bytes",
    );
    if let Some(m) = &env.meminfo {
        for (k, v) in [
            ("mem_total", m.mem_total),
            ("mem_free", m.mem_free),
            ("mem_available", m.mem_available),
            ("buffers", m.buffers),
            ("cached", m.cached),
            ("s_reclaimable", m.s_reclaimable),
            ("shmem", m.shmem),
            ("swap_total", m.swap_total),
            ("swap_free", m.swap_free),
            ("hugepage_size", m.hugepage_size),
        ] {
            add("meminfo", None, k, v.to_string(), "bytes");
        }
    }
    for (k, v) in [
        ("cuda_version", &env.driver_version),
        ("library", &env.driver_library),
        ("no_gpu_reason", &env.no_device_reason),
    ] {
        if let Some(v) = v {
            add("driver", None, k, v.clone(), "");
        }
    }
    for d in &env.devices {
        let o = Some(d.ordinal);
        for (k, v, unit) in [
            ("name", d.name.clone(), ""),
            ("compute_capability", d.compute_capability.clone(), ""),
            ("total", d.total_bytes.to_string(), "bytes"),
            (
                "cumemgetinfo_free",
                d.cumemgetinfo_free_bytes.to_string(),
                "bytes",
            ),
            ("architecture", d.architecture.label().to_string(), ""),
            (
                "usable_estimate",
                d.usable.estimate_bytes.to_string(),
                "bytes",
            ),
        ] {
            add("device", o, k, v, unit);
        }
        for (k, v) in &d.attributes.values {
            add("attribute", o, k, v.to_string(), "");
        }
    }
    for s in &r.strategies {
        let value = match &s.reason {
            None => "supported".to_string(),
            Some(why) => format!("not supported: {why}"),
        };
        add("strategy", Some(s.device), &s.strategy, value, "");
    }
    rows
}

/// The human form.
pub fn render(r: &InfoReport) -> String {
    let env = &r.environment;
    let h = &env.host;
    let mut out = String::new();
    out.push_str(&format!(
        "cumemlab {} on {} ({}, Linux {}, {} CPUs)\n",
        env.tool_version, h.hostname, h.arch, h.kernel_release, h.cpus
    ));
    out.push_str(&format!(
        "page size {}, transparent huge pages: {}, cgroup memory limit: {}\n\n",
        fmt_bytes(h.page_size),
        h.thp_enabled,
        h.cgroup_memory_limit.map_or("none".to_string(), fmt_bytes)
    ));
    if let Some(m) = &env.meminfo {
        out.push_str("Host memory (/proc/meminfo), GiB (2^30 bytes):\n");
        let mut t = new_table(&[
            "MemTotal",
            "MemFree",
            "MemAvailable",
            "Buffers",
            "Cached",
            "SReclaimable",
            "Shmem",
            "SwapFree",
            "HugePages total/free",
        ]);
        t.add_row(vec![
            fmt_gib(m.mem_total as f64),
            fmt_gib(m.mem_free as f64),
            fmt_gib(m.mem_available as f64),
            fmt_gib(m.buffers as f64),
            fmt_gib(m.cached as f64),
            fmt_gib(m.s_reclaimable as f64),
            fmt_gib(m.shmem as f64),
            fmt_gib(m.swap_free as f64),
            format!(
                "{}/{} x {}",
                m.hugepages_total,
                m.hugepages_free,
                fmt_bytes(m.hugepage_size)
            ),
        ]);
        out.push_str(&format!("{t}\n\n"));
    } else {
        out.push_str("Host memory: /proc/meminfo could not be read\n\n");
    }
    if let Some(v) = &env.driver_version {
        out.push_str(&format!(
            "CUDA driver: supports CUDA {v} ({})\n",
            env.driver_library.as_deref().unwrap_or("?")
        ));
    }
    if let Some(reason) = &env.no_device_reason {
        out.push_str(&format!("No GPU part: {reason}\n"));
    }
    for d in &env.devices {
        out.push_str(&format!(
            "\nDevice {}: {} (compute capability {}, {} multiprocessors, {})\n",
            d.ordinal, d.name, d.compute_capability, d.multiprocessors, d.pci_bus_id
        ));
        out.push_str(&format!(
            "total memory {} ({:.2} GB); cuMemGetInfo free {} of {}\n",
            fmt_bytes(d.total_bytes),
            d.total_bytes as f64 / 1e9,
            fmt_bytes(d.cumemgetinfo_free_bytes),
            fmt_bytes(d.cumemgetinfo_total_bytes)
        ));
        let bus = d.attributes.get("global_memory_bus_width_bits");
        let clk = d.attributes.get("memory_clock_rate_khz");
        if bus > 0 && clk > 0 {
            // Double data rate: two transfers per clock.
            let peak = 2.0 * clk as f64 * 1e3 * bus as f64 / 8.0 / 1e9;
            out.push_str(&format!(
                "memory bus {bus} bits at {} MHz (theoretical {:.0} GB/s from these two attributes), L2 {}\n",
                clk / 1000,
                peak,
                fmt_bytes(d.attributes.get("l2_cache_bytes").max(0) as u64)
            ));
        }
        out.push_str(&format!(
            "memory architecture: {}. {}\n",
            d.architecture.label(),
            d.architecture.meaning()
        ));
        out.push_str(&format!(
            "a GPU allocation can get about {} ({}); cuMemGetInfo says {}\n",
            fmt_bytes(d.usable.estimate_bytes),
            d.usable.basis,
            fmt_bytes(d.usable.cumemgetinfo_free_bytes)
        ));
        if let Some(w) = &d.usable.warning {
            out.push_str(&format!("WARNING: {w}\n"));
        }
        let mut t = new_table(&["attribute", "value", "meaning"]);
        for a in ATTRIBUTES {
            let v = d
                .attributes
                .values
                .get(a.key)
                .map_or("n/a".to_string(), |v| v.to_string());
            t.add_row(vec![a.key.to_string(), v, a.meaning.to_string()]);
        }
        out.push_str(&format!("\n{t}\n"));
        let mut t = new_table(&["strategy", "supported", "description / why not"]);
        for s in r.strategies.iter().filter(|s| s.device == d.ordinal) {
            let desc = REGISTRY
                .iter()
                .find(|i| i.key == s.strategy)
                .map_or("", |i| i.description);
            t.add_row(vec![
                s.strategy.clone(),
                if s.supported {
                    "yes".into()
                } else {
                    "no".into()
                },
                s.reason.clone().unwrap_or_else(|| desc.to_string()),
            ]);
        }
        out.push_str(&format!("\n{t}\n"));
    }
    out
}

/// `cumemlab info` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab info\n  cumemlab info --json > info.json\n  cumemlab info --csv > info.csv"
)]
pub struct InfoArgs {
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the report as CSV (section,device,key,value,unit: the lab's info.csv).
    #[arg(long)]
    pub csv: bool,
}

/// Runs `info` and prints it.
pub fn main(args: InfoArgs) -> crate::error::Result<()> {
    let r = collect();
    if args.json {
        let text = serde_json::to_string_pretty(&r)
            .map_err(|e| crate::error::Error::Failed(e.to_string()))?;
        println!("{text}");
    } else if args.csv {
        let bytes = crate::report::sink::to_csv(&csv_rows(&r))?;
        print!("{}", String::from_utf8_lossy(&bytes));
    } else {
        print!("{}", render(&r));
    }
    Ok(())
}
