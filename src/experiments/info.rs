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
        out.push_str(&format!(
            "Host memory: {} could not be read\n\n",
            crate::host::MemInfo::path()
        ));
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
#[command(after_help = "Examples:\n  cumemlab info\n  cumemlab info --json > info.json")]
pub struct InfoArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `info` and prints it.
pub fn main(args: InfoArgs) -> crate::error::Result<()> {
    let r = collect();
    if args.json {
        let text = serde_json::to_string_pretty(&r)
            .map_err(|e| crate::error::Error::Failed(e.to_string()))?;
        crate::report::sink::print_stdout(format!("{text}\n"))?;
    } else {
        crate::report::sink::print_stdout(render(&r))?;
    }
    Ok(())
}
