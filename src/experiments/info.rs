//! `cumemlab info`: what this machine is, as far as memory is concerned. The host part (kernel,
//! page size, THP, /proc/meminfo, cgroup limit) always; the driver and each device (attributes,
//! memory architecture, which strategies work and why not, what an allocation can really get)
//! when there is a GPU. With no driver or no GPU: the host part, one line saying why, exit 0.
//! The host part includes memory pressure (PSI), the free 2 MiB-block supply (buddyinfo), CMA
//! and the cgroup's usage, and the verdict of the unified-memory pressure guard on them.

use serde::{Deserialize, Serialize};

use super::env::Environment;
use crate::driver::{ATTRIBUTES, DeviceAttributes};
use crate::host::HostPressure;
use crate::memory::REGISTRY;
use crate::memory::arch::MemoryArchitecture;
use crate::memory::safety::PressureLimits;
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
    /// PSI, buddyinfo and cgroup usage when the report was taken (absent in older reports).
    #[serde(default)]
    pub pressure: HostPressure,
    /// The pressure guard's thresholds and its verdict on a 1 GiB request now: `None` when it
    /// would go ahead, else the stop reason.
    #[serde(default)]
    pub pressure_limits: Option<PressureLimits>,
    #[serde(default)]
    pub pressure_stop: Option<String>,
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
    let pressure = HostPressure::read();
    let (pressure_limits, pressure_stop) = match PressureLimits::from_env() {
        Ok(l) => (Some(l), l.check(&pressure, crate::units::GIB).err()),
        Err(e) => (None, Some(e)),
    };
    InfoReport {
        environment,
        strategies,
        pressure,
        pressure_limits,
        pressure_stop,
    }
}

/// GB10's memory bandwidth as owners and NVIDIA's spec sheet give it: 273 GB/s (LPDDR5x,
/// 256-bit; "The 273 GB/s decode envelope", blog.kubesimplify.com "Day 3: The DGX Spark
/// Unpacked"; NVIDIA DGX Spark spec).
pub const GB10_REPORTED_GBPS: f64 = 273.0;

/// A bandwidth measured in the same run (selftest's fill and read medians), GB/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredBandwidth {
    pub fill_gbps: f64,
    pub read_gbps: f64,
}

impl MeasuredBandwidth {
    /// The fill and read kernel medians of a selftest, when it measured both.
    pub fn from_selftest(s: &super::selftest::SelftestReport) -> Option<MeasuredBandwidth> {
        use super::selftest::BandwidthOp;
        let median = |op: BandwidthOp| {
            s.bandwidth
                .iter()
                .find(|b| b.op == op)
                .map(|b| b.gbps.median)
        };
        Some(MeasuredBandwidth {
            fill_gbps: median(BandwidthOp::Fill)?,
            read_gbps: median(BandwidthOp::Read)?,
        })
    }
}

/// The bandwidth line: where its figure comes from. A measured figure wins; without one, a
/// discrete card's theoretical peak from the attributes (formula named); on integrated or
/// unified memory (LPDDR, where the clock attribute's meaning is not HBM's and the formula is
/// unknown) no peak is derived, and the figure owners report for GB10 is cited instead.
pub fn bandwidth_line(
    name: &str,
    arch: MemoryArchitecture,
    a: &DeviceAttributes,
    measured: Option<MeasuredBandwidth>,
) -> String {
    let bus = a.get("global_memory_bus_width_bits");
    let clk = a.get("memory_clock_rate_khz");
    let l2 = fmt_bytes(a.get("l2_cache_bytes").max(0) as u64);
    let attrs = if bus > 0 && clk > 0 {
        format!(
            "memory bus {bus} bits at {} MHz (attributes), L2 {l2}",
            clk / 1000
        )
    } else {
        format!("memory bus width or clock not reported, L2 {l2}")
    };
    if let Some(m) = measured {
        return format!(
            "bandwidth measured in this run: fill {:.0} GB/s, read {:.0} GB/s (selftest medians); {attrs}",
            m.fill_gbps, m.read_gbps
        );
    }
    let integrated = a.flag("integrated") || arch.is_unified();
    if integrated {
        let gb10 = if name.contains("GB10") {
            format!("; owners report {GB10_REPORTED_GBPS:.0} GB/s for GB10 (LPDDR5x, 256-bit)")
        } else {
            String::new()
        };
        format!(
            "{attrs}; no theoretical peak: 2 x clock x width is a formula for HBM/GDDR and unknown for this integrated memory{gb10}; `cumemlab selftest` measures it"
        )
    } else if bus > 0 && clk > 0 {
        // Double data rate: two transfers per clock.
        let peak = 2.0 * clk as f64 * 1e3 * bus as f64 / 8.0 / 1e9;
        format!(
            "{attrs}; theoretical {peak:.0} GB/s = 2 x clock x width / 8 (derived from the attributes, not measured; `cumemlab selftest` measures it)"
        )
    } else {
        format!("{attrs}; `cumemlab selftest` measures the bandwidth")
    }
}

/// The pressure lines of the host part: PSI, 2 MiB blocks, CMA, cgroup, and the guard's verdict.
pub fn pressure_lines(r: &InfoReport) -> String {
    let p = &r.pressure;
    let mut out = String::new();
    match &p.psi {
        Some(psi) => out.push_str(&format!(
            "memory pressure (PSI): some avg10 {:.2}%, avg60 {:.2}%; full avg10 {:.2}%, avg60 {:.2}%\n",
            psi.some_avg10, psi.some_avg60, psi.full_avg10, psi.full_avg60
        )),
        None => out.push_str("memory pressure (PSI): not available\n"),
    }
    match &p.buddyinfo {
        Some(b) => out.push_str(&format!(
            "free 2 MiB blocks (buddyinfo, order {} at {} pages): {} in {} blocks ({})\n",
            b.order_2m,
            fmt_bytes(b.page_size),
            fmt_bytes(b.free_2m_bytes()),
            b.blocks_2m(),
            b.summary()
        )),
        None => out.push_str("free 2 MiB blocks (buddyinfo): not available\n"),
    }
    if let Some(m) = &r.environment.meminfo {
        out.push_str(&format!(
            "CMA {} total, {} free; HugeTLB {} (pool {} of {} free)\n",
            fmt_bytes(m.cma_total),
            fmt_bytes(m.cma_free),
            fmt_bytes(m.hugetlb),
            fmt_bytes(m.hugetlb_free_bytes()),
            fmt_bytes(m.hugetlb_pool_bytes())
        ));
    }
    match &p.cgroup {
        Some(c) => out.push_str(&format!(
            "cgroup v{} memory: {} used, limit {} ({})\n",
            c.version,
            c.current_bytes.map_or("?".into(), fmt_bytes),
            c.max_bytes.map_or("none".into(), fmt_bytes),
            c.dir
        )),
        None => out.push_str("cgroup memory: not available\n"),
    }
    match (&r.pressure_stop, &r.pressure_limits) {
        (None, Some(l)) => out.push_str(&format!(
            "pressure guard (unified memory): a 1 GiB allocation would go ahead (stops at PSI full avg10 >= {:.1}% or under {} in 2 MiB blocks)\n",
            l.psi_full_avg10_max,
            fmt_bytes(l.min_free_2m_bytes)
        )),
        (Some(why), _) => out.push_str(&format!(
            "pressure guard (unified memory): would stop a 1 GiB allocation: {why}\n"
        )),
        (None, None) => {}
    }
    out
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

/// `info.csv` rows as they are built.
struct CsvRows(Vec<InfoCsvRow>);

impl CsvRows {
    fn add(&mut self, section: &str, device: Option<i32>, key: &str, value: String, unit: &str) {
        self.0.push(InfoCsvRow {
            section: section.into(),
            device,
            key: key.into(),
            value,
            unit: unit.into(),
        })
    }
}

/// The report as `info.csv` rows.
pub fn csv_rows(r: &InfoReport) -> Vec<InfoCsvRow> {
    let mut rows = CsvRows(Vec::new());
    environment_rows(&r.environment, &mut rows);
    pressure_rows(r, &mut rows);
    rows.0
}

/// The host, meminfo, driver and device rows.
fn environment_rows(env: &Environment, rows: &mut CsvRows) {
    let h = &env.host;
    rows.add("host", None, "tool_version", env.tool_version.clone(), "");
    rows.add("host", None, "hostname", h.hostname.clone(), "");
    rows.add("host", None, "arch", h.arch.clone(), "");
    rows.add("host", None, "kernel_release", h.kernel_release.clone(), "");
    rows.add("host", None, "cpus", h.cpus.to_string(), "count");
    rows.add("host", None, "page_size", h.page_size.to_string(), "bytes");
    rows.add("host", None, "thp_enabled", h.thp_enabled.clone(), "");
    rows.add(
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
            rows.add("meminfo", None, k, v.to_string(), "bytes");
        }
    }
    for (k, v) in [
        ("cuda_version", &env.driver_version),
        ("library", &env.driver_library),
        ("no_gpu_reason", &env.no_device_reason),
    ] {
        if let Some(v) = v {
            rows.add("driver", None, k, v.clone(), "");
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
            rows.add("device", o, k, v, unit);
        }
        for (k, v) in &d.attributes.values {
            rows.add("attribute", o, k, v.to_string(), "");
        }
    }
}

/// The pressure rows and the strategies' support.
fn pressure_rows(r: &InfoReport, rows: &mut CsvRows) {
    let p = &r.pressure;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
    rows.add(
        "pressure",
        None,
        "psi_some_avg10_percent",
        opt(p.psi.map(|x| x.some_avg10.to_string())),
        "",
    );
    rows.add(
        "pressure",
        None,
        "psi_full_avg10_percent",
        opt(p.psi_full_avg10().map(|x| x.to_string())),
        "",
    );
    rows.add(
        "pressure",
        None,
        "free_in_2m_blocks",
        opt(p.free_2m_bytes().map(|x| x.to_string())),
        "bytes",
    );
    rows.add(
        "pressure",
        None,
        "cgroup_memory_current",
        opt(p.cgroup_current().map(|x| x.to_string())),
        "bytes",
    );
    if let Some(why) = &r.pressure_stop {
        rows.add("pressure", None, "guard_would_stop_1gib", why.clone(), "");
    }
    for s in &r.strategies {
        let value = match &s.reason {
            None => "supported".to_string(),
            Some(why) => format!("not supported: {why}"),
        };
        rows.add("strategy", Some(s.device), &s.strategy, value, "");
    }
}

/// The host memory table (or a line saying /proc/meminfo could not be read).
fn meminfo_table(meminfo: Option<&crate::host::MemInfo>) -> String {
    let mut out = String::new();
    if let Some(m) = meminfo {
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
    out
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
    out.push_str(&meminfo_table(env.meminfo.as_ref()));
    out.push_str(&pressure_lines(r));
    out.push('\n');
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
        out.push_str(&bandwidth_line(
            &d.name,
            d.architecture,
            &d.attributes,
            None,
        ));
        out.push('\n');
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
    after_help = "Examples:\n  cumemlab info\n  cumemlab info --json > info.json\n  cumemlab info --csv > info.csv\n  cumemlab info --who-sees 1GiB"
)]
pub struct InfoArgs {
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Allocate SIZE with every strategy (one at a time, within the safety rules) and show what
    /// each accounting source saw after the allocation and after the first GPU touch.
    #[arg(long, value_name = "SIZE", conflicts_with = "csv", allow_hyphen_values = true, value_parser = crate::units::parse_size)]
    pub who_sees: Option<u64>,
    /// Device for --who-sees.
    // One device, not the shared `--device N|all` (`cli::DeviceArgs`): --who-sees allocates on one device.

    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(0..))]
    pub device: i32,
    /// Print the report as CSV (section,device,key,value,unit: the lab's info.csv).
    #[arg(long)]
    pub csv: bool,
}

/// Runs `info` and prints it.
pub fn main(args: InfoArgs) -> crate::error::Result<()> {
    if let Some(bytes) = args.who_sees {
        let envelope = crate::report::envelope::Envelope::start("info");
        let drv = super::require_driver()?;
        let gpu = super::Gpu::open(&drv, args.device)?;
        let w = super::visibility::run(&gpu, bytes, crate::memory::safety::DEFAULT_HEADROOM)?;
        if args.json {
            let doc = crate::report::envelope::to_json(envelope.finish(false), &w)?;
            crate::report::sink::print_stdout(doc)?;
        } else {
            print!("{}", super::visibility::render(&w));
        }
        return Ok(());
    }
    let r = collect();
    if args.json {
        let envelope = crate::report::envelope::Envelope::start("info").finish(false);
        crate::report::sink::print_stdout(crate::report::envelope::to_json(envelope, &r)?)?;
    } else if args.csv {
        crate::report::sink::print_stdout(crate::report::sink::to_csv(&csv_rows(&r))?)?;
    } else {
        crate::report::sink::print_stdout(render(&r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_line_names_its_source() {
        // GB10 as owners report its attributes: 8533 MHz, 256-bit, integrated.
        let gb10 = DeviceAttributes::from_pairs(&[
            ("integrated", 1),
            ("pageable_memory_access", 1),
            ("pageable_memory_access_uses_host_page_tables", 1),
            ("memory_clock_rate_khz", 8_533_000),
            ("global_memory_bus_width_bits", 256),
        ]);
        let arch = MemoryArchitecture::classify(&gb10);
        let l = bandwidth_line("NVIDIA GB10", arch, &gb10, None);
        assert!(
            !l.contains("546"),
            "no 2 x clock x width peak on LPDDR: {l}"
        );
        assert!(
            l.contains("no theoretical peak") && l.contains("273 GB/s"),
            "{l}"
        );
        // Measured figures win, and say so.
        let m = MeasuredBandwidth {
            fill_gbps: 221.4,
            read_gbps: 240.6,
        };
        let l = bandwidth_line("NVIDIA GB10", arch, &gb10, Some(m));
        assert!(
            l.starts_with("bandwidth measured in this run: fill 221 GB/s, read 241 GB/s"),
            "{l}"
        );
        // A discrete HBM card: the derived peak, with its formula.
        let h200 = DeviceAttributes::from_pairs(&[
            ("memory_clock_rate_khz", 3_201_000),
            ("global_memory_bus_width_bits", 6144),
        ]);
        let l = bandwidth_line(
            "NVIDIA H200",
            MemoryArchitecture::classify(&h200),
            &h200,
            None,
        );
        assert!(
            l.contains("theoretical 4917 GB/s = 2 x clock x width / 8"),
            "{l}"
        );
        assert!(l.contains("not measured"), "{l}");
    }
}
