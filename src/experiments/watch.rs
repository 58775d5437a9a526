//! `cumemlab watch`: a live view, like `top`, of the numbers that decide whether an allocation
//! fits: the device's `cuMemGetInfo` free/total, and the host's MemAvailable, MemFree, Cached and
//! SwapFree, one sample every `--interval`; and the signs of a host near a wedge: memory pressure
//! (PSI some/full avg10), the free 2 MiB-block supply (buddyinfo) and the cgroup's usage, each
//! with its worst value since the start (the peaks). On GB10 the two halves are the same memory
//! seen two ways, which is the point of watching them together. `--json` streams one JSON line per
//! sample; `--out` keeps a result document of the samples. Without a GPU the host rows are shown
//! and the device part says why it is absent.
//!
//! Ctrl-C (or SIGTERM) ends the watch at the next sample: that is its normal end, exit 0.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::env::Environment;
use super::interrupted;
use crate::driver::{Context, Driver};
use crate::error::{Error, Result};
use crate::host::Accounting;
use crate::memory::arch::MemoryArchitecture;
use crate::report::{ResultSink, sink::now_rfc3339};
use crate::units::{fmt_bytes, fmt_gib};

/// The shortest interval allowed (reading `/proc/meminfo` and `cuMemGetInfo` takes microseconds,
/// but printing faster than this only floods the terminal).
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// `1s`, `500ms`, `2m`, or a bare number of seconds (`0.5`); zero and negative are refused.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let d = match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Duration::try_from_secs_f64(v)
            .map_err(|_| format!("duration `{s}` is too long: give at most {MAX_DURATION_TEXT}"))?,
        Ok(_) => {
            return Err(format!(
                "duration `{s}` is not positive: give for example 1s or 500ms"
            ));
        }
        Err(_) => humantime::parse_duration(t).map_err(|e| {
            format!("duration `{s}` is not a duration ({e}): give for example 1s, 500ms or 2m")
        })?,
    };
    if d.is_zero() {
        return Err(format!(
            "duration `{s}` is zero: give for example 1s or 500ms"
        ));
    }
    if d > MAX_DURATION {
        return Err(format!(
            "duration `{s}` is too long: give at most {MAX_DURATION_TEXT}"
        ));
    }
    Ok(d)
}

/// The longest duration accepted: one week (longer ones are typing mistakes, and some overflow
/// the clock arithmetic).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_DURATION_TEXT: &str = "7 days (for example 1h or 30s)";

/// `--count`: a whole number of samples, at least 1.
pub fn parse_count(s: &str) -> std::result::Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err(
            "--count 0 would take no sample: give 1 or more, or leave it out to watch until Ctrl-C"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "--count `{s}` is not a whole number of samples: give for example 10"
        )),
    }
}

/// `--interval`: a duration of at least [`MIN_INTERVAL`].
pub fn parse_interval(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "interval `{s}` is shorter than 50ms: give for example 1s or 200ms"
        ));
    }
    Ok(d)
}

/// The device view of `watch` and `cache` status (or why there is none: `--host-only`, no GPU)
/// and the environment for their result document.
pub fn open_view(
    host_only: bool,
    device: i32,
) -> Result<(Option<DeviceView>, Option<String>, Environment)> {
    let dev = if host_only {
        Err("--host-only".to_string())
    } else {
        DeviceView::open(device)?
    };
    let (view, absent) = match dev {
        Ok(v) => (Some(v), None),
        Err(reason) => (None, Some(reason)),
    };
    let env = match &view {
        Some(v) => Environment::collect(Some(&[v.ordinal])),
        None => Environment::host_only(absent.clone().unwrap_or_default()),
    };
    // Environment::collect makes the context current anew; keep ours current on this thread.
    if let Some(v) = &view {
        v.ctx.bind()?;
    }
    Ok((view, absent, env))
}

/// One device opened for `cuMemGetInfo` only (no kernels, no allocations).
pub struct DeviceView {
    pub ordinal: i32,
    pub name: String,
    pub arch: MemoryArchitecture,
    pub ctx: Arc<Context>,
}

impl DeviceView {
    /// Opens device `ordinal` if there is a GPU. `Ok(Err(reason))` when there is no driver or no
    /// device (the host part goes on alone); `Err(Usage)` when the driver works and the ordinal
    /// does not exist.
    pub fn open(ordinal: i32) -> Result<std::result::Result<DeviceView, String>> {
        let drv = match Driver::load() {
            Ok(d) => d,
            Err(crate::driver::Error::Load { .. }) => {
                return Ok(Err(
                    "no CUDA driver on this host (libcuda.so.1 not found)".into()
                ));
            }
            Err(e) => return Ok(Err(e.to_string())),
        };
        let count = match drv.device_count() {
            Ok(n) => n,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if count == 0 {
            return Ok(Err("the driver reports no CUDA device".into()));
        }
        super::DeviceSel::One(ordinal).resolve(count)?;
        let open = || -> crate::driver::Result<DeviceView> {
            let device = drv.device(ordinal)?;
            let ctx = Context::new(&device)?;
            Ok(DeviceView {
                ordinal,
                name: device.name()?,
                arch: MemoryArchitecture::classify(&device.attributes()),
                ctx,
            })
        };
        Ok(open().map_err(|e| format!("device {ordinal}: {e}")))
    }

    /// `cuMemGetInfo` (free, total).
    pub fn mem_info(&self) -> Result<(u64, u64)> {
        // The context is current on the thread that opened it; bind in case another was made
        // current since.
        self.ctx.bind()?;
        Ok(self.ctx.mem_info()?)
    }
}

/// One sample. The same struct is the JSON line, the document row and the source of the view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchSample {
    /// 1, 2, ...
    pub sample: u64,
    /// Seconds since the first sample.
    pub t_s: f64,
    pub time: String,
    pub device: Option<i32>,
    pub device_free_bytes: Option<u64>,
    pub device_total_bytes: Option<u64>,
    pub mem_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub cached_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    /// PSI memory some/full avg10, percent (`None` where the kernel has no PSI).
    #[serde(default)]
    pub psi_some_avg10: Option<f64>,
    #[serde(default)]
    pub psi_full_avg10: Option<f64>,
    /// Bytes in free blocks of 2 MiB and larger (buddyinfo), all zones.
    #[serde(default)]
    pub free_2m_bytes: Option<u64>,
    /// CmaFree, bytes.
    #[serde(default)]
    pub cma_free_bytes: u64,
    /// The cgroup's `memory.current`, bytes.
    #[serde(default)]
    pub cgroup_current_bytes: Option<u64>,
    /// Worst values since the first sample: most device memory in use (cuMemGetInfo total -
    /// free), highest PSI full avg10, fewest bytes in 2 MiB blocks, highest cgroup usage.
    #[serde(default)]
    pub peak_device_used_bytes: Option<u64>,
    #[serde(default)]
    pub peak_psi_full_avg10: Option<f64>,
    #[serde(default)]
    pub min_free_2m_bytes: Option<u64>,
    #[serde(default)]
    pub peak_cgroup_current_bytes: Option<u64>,
}

fn max_opt<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y > x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl WatchSample {
    /// Carries the peaks of `prev` (the sample before) forward into this one.
    pub fn with_peaks(mut self, prev: Option<&WatchSample>) -> WatchSample {
        let used = match (self.device_total_bytes, self.device_free_bytes) {
            (Some(t), Some(f)) => Some(t.saturating_sub(f)),
            _ => None,
        };
        self.peak_device_used_bytes = max_opt(prev.and_then(|p| p.peak_device_used_bytes), used);
        self.peak_psi_full_avg10 = max_opt(
            prev.and_then(|p| p.peak_psi_full_avg10),
            self.psi_full_avg10,
        );
        self.min_free_2m_bytes =
            min_opt(prev.and_then(|p| p.min_free_2m_bytes), self.free_2m_bytes);
        self.peak_cgroup_current_bytes = max_opt(
            prev.and_then(|p| p.peak_cgroup_current_bytes),
            self.cgroup_current_bytes,
        );
        self
    }

    /// Reads the host and, when given, the device.
    pub fn take(sample: u64, t0: Instant, dev: Option<&DeviceView>) -> Result<WatchSample> {
        let a = Accounting::host().map_err(Error::Failed)?;
        let d = match dev {
            Some(d) => Some((d.ordinal, d.mem_info()?)),
            None => None,
        };
        Ok(WatchSample {
            sample,
            t_s: t0.elapsed().as_secs_f64(),
            time: now_rfc3339(),
            device: d.map(|d| d.0),
            device_free_bytes: d.map(|d| d.1.0),
            device_total_bytes: d.map(|d| d.1.1),
            mem_total_bytes: a.mem_total,
            mem_free_bytes: a.mem_free,
            mem_available_bytes: a.mem_available,
            cached_bytes: a.cached,
            swap_total_bytes: a.swap_total,
            swap_free_bytes: a.swap_free,
            psi_some_avg10: a.psi_some_avg10,
            psi_full_avg10: a.psi_full_avg10,
            free_2m_bytes: a.free_2m,
            cma_free_bytes: a.cma_free,
            cgroup_current_bytes: a.cgroup_current,
            peak_device_used_bytes: None,
            peak_psi_full_avg10: None,
            min_free_2m_bytes: None,
            peak_cgroup_current_bytes: None,
        })
    }
}

/// `[#########---------]`: `part` of `whole` in `width` cells.
pub fn bar(part: u64, whole: u64, width: usize) -> String {
    let filled = if whole == 0 {
        0
    } else {
        ((part.min(whole) as f64 / whole as f64) * width as f64).round() as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

const BAR: usize = 30;

/// The widest line `watch` prints (a terminal of 100 columns shows every line whole).
pub const MAX_LINE: usize = 100;

fn line(label: &str, part: u64, whole: u64, what: &str) -> String {
    let pct = if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    };
    format!(
        "{label:<14} {} {:>7} of {:>7} GiB {:>5.1}% {what}\n",
        bar(part, whole, BAR),
        fmt_gib(part as f64),
        fmt_gib(whole as f64),
        pct
    )
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.2}%"))
}

fn opt_bytes(v: Option<u64>) -> String {
    v.map_or("n/a".into(), fmt_bytes)
}

/// The text of one sample: a bar per quantity, the device's first, then pressure and peaks.
pub fn render(s: &WatchSample, dev: Option<&DeviceView>, absent: Option<&str>) -> String {
    let mut out = format!(
        "cumemlab watch  sample {}  {}  t = {:.1} s  (GiB = 2^30 B; Ctrl-C stops)\n",
        s.sample, s.time, s.t_s
    );
    match (dev, s.device_free_bytes, s.device_total_bytes) {
        (Some(d), Some(free), Some(total)) => {
            out.push_str(&format!(
                "device {}: {} ({})\n",
                d.ordinal,
                d.name,
                d.arch.label()
            ));
            out.push_str(&line(
                "  device used",
                total.saturating_sub(free),
                total,
                "(total - free)",
            ));
            out.push_str(&line(
                "  device free",
                free,
                total,
                if d.arch.is_unified() {
                    "(= MemFree here)"
                } else {
                    "(cuMemGetInfo)"
                },
            ));
        }
        _ => out.push_str(&format!(
            "device: absent ({})\n",
            absent.unwrap_or("not opened")
        )),
    }
    out.push_str("host (/proc/meminfo):\n");
    let total = s.mem_total_bytes;
    out.push_str(&line(
        "  MemAvailable",
        s.mem_available_bytes,
        total,
        "(can be counted on)",
    ));
    out.push_str(&line(
        "  MemFree",
        s.mem_free_bytes,
        total,
        "(not even cache)",
    ));
    out.push_str(&line("  Cached", s.cached_bytes, total, "(page cache)"));
    if s.swap_total_bytes > 0 {
        out.push_str(&line(
            "  SwapFree",
            s.swap_free_bytes,
            s.swap_total_bytes,
            "",
        ));
    } else {
        out.push_str("  SwapFree       no swap\n");
    }
    out.push_str(&format!(
        "pressure: PSI some {} full {}  2 MiB blocks {}  CmaFree {}  cgroup {}\n",
        opt_pct(s.psi_some_avg10),
        opt_pct(s.psi_full_avg10),
        opt_bytes(s.free_2m_bytes),
        fmt_bytes(s.cma_free_bytes),
        opt_bytes(s.cgroup_current_bytes)
    ));
    out.push_str(&format!(
        "peaks since start: device used {}  PSI full {}  fewest 2 MiB blocks {}  cgroup {}\n",
        opt_bytes(s.peak_device_used_bytes),
        opt_pct(s.peak_psi_full_avg10),
        opt_bytes(s.min_free_2m_bytes),
        opt_bytes(s.peak_cgroup_current_bytes)
    ));
    out
}

/// `cumemlab watch` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Ctrl-C ends the watch; that is its normal end (exit 0). The watcher's own CUDA context takes a little device memory (counted as used).\n\nExamples:\n  cumemlab watch\n  cumemlab watch --interval 500ms --count 20\n  cumemlab watch --json --interval 2s > samples.jsonl\n  cumemlab watch --count 60 --out watch.json --host-only"
)]
pub struct WatchArgs {
    /// Time between samples (1s, 500ms, 2m, or seconds as a number).
    #[arg(long, default_value = "1s", allow_hyphen_values = true, value_parser = parse_interval)]
    pub interval: Duration,
    /// Stop after this many samples (default: until Ctrl-C).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_count)]
    pub count: Option<u64>,
    /// Device ordinal to watch.
    // One device, not the shared `--device N|all` (`cli::DeviceArgs`): the live view shows one device.

    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(0..))]
    pub device: i32,
    /// Watch the host only (do not open a GPU).
    #[arg(long)]
    pub host_only: bool,
    /// One JSON line per sample on stdout, instead of the bars.
    #[arg(long)]
    pub json: bool,
    /// Also keep the samples in a result document (JSON, or CSV for .csv), rewritten atomically after each.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Runs `watch` from the command line.
pub fn main(args: WatchArgs) -> Result<()> {
    if let Some(out) = &args.out {
        crate::report::sink::check_writable(out)?;
    }
    let (view, absent, env) = open_view(args.host_only, args.device)?;
    let mut sink: ResultSink<WatchSample, Environment> =
        ResultSink::new("watch", env, args.out.as_deref())?;
    let tty = std::io::stdout().is_terminal();
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut prev: Option<WatchSample> = None;
    let mut stdout = std::io::stdout();
    loop {
        n += 1;
        let s = WatchSample::take(n, t0, view.as_ref())?.with_peaks(prev.as_ref());
        let text = if args.json {
            let mut l = serde_json::to_string(&s)
                .map_err(|e| Error::Failed(format!("cannot serialise a sample: {e}")))?;
            l.push('\n');
            l
        } else if tty {
            // Home and clear, like top.
            format!(
                "\x1b[H\x1b[2J{}",
                render(&s, view.as_ref(), absent.as_deref())
            )
        } else {
            format!("{}\n", render(&s, view.as_ref(), absent.as_deref()))
        };
        // The sample is kept before it is shown, so --out holds what stdout was sent.
        sink.push(s.clone())?;
        prev = Some(s);
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => {}
            // A closed pipe (`watch | head`): SIGPIPE ends the process quietly (see
            // `install_interrupt_handlers`; the --out document keeps its rows, incomplete); where
            // the signal is ignored, EPIPE ends the watch normally.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            // Any other failure (a full disk, a broken terminal) is a failure: exit 1, and the
            // --out document stays marked incomplete.
            Err(e) => {
                return Err(Error::Failed(format!("cannot write to stdout: {e}")));
            }
        }
        if args.count.is_some_and(|c| n >= c) || !sleep_unless_interrupted(args.interval) {
            break;
        }
    }
    sink.finish(false)?;
    Ok(())
}

/// Sleeps `d` in short steps (`Duration::MAX`: until Ctrl-C); false when Ctrl-C arrived.
pub fn sleep_unless_interrupted(d: Duration) -> bool {
    let end = Instant::now().checked_add(d);
    let step = Duration::from_millis(50);
    loop {
        if interrupted() {
            return false;
        }
        let now = Instant::now();
        match end {
            Some(e) if now >= e => return true,
            Some(e) => std::thread::sleep((e - now).min(step)),
            None => std::thread::sleep(step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0").unwrap_err().contains("not positive"));
        assert!(parse_duration("-1").unwrap_err().contains("not positive"));
        assert!(parse_duration("soon").unwrap_err().contains("1s"));
        assert!(parse_interval("10ms").unwrap_err().contains("50ms"));
        assert_eq!(parse_interval("50ms"), Ok(MIN_INTERVAL));
        assert!(parse_interval("1e20").unwrap_err().contains("too long"));
        assert!(parse_interval("30days").unwrap_err().contains("too long"));
        assert_eq!(parse_interval("7days"), Ok(MAX_DURATION));
        assert!(parse_count("0").unwrap_err().contains("no sample"));
        assert!(parse_count("x").unwrap_err().contains("whole number"));
        assert_eq!(parse_count("3"), Ok(3));
    }

    #[test]
    fn bars_and_view() {
        assert_eq!(bar(1, 4, 8), "[##------]");
        assert_eq!(bar(5, 4, 4), "[####]");
        assert_eq!(bar(0, 0, 3), "[---]");
        let m = crate::test_support::meminfo("gb10-cache-heavy.txt");
        let s = WatchSample {
            sample: 3,
            t_s: 2.0,
            time: "t".into(),
            device: None,
            device_free_bytes: None,
            device_total_bytes: None,
            mem_total_bytes: m.mem_total,
            mem_free_bytes: m.mem_free,
            mem_available_bytes: m.mem_available,
            cached_bytes: m.cached,
            swap_total_bytes: m.swap_total,
            swap_free_bytes: m.swap_free,
            psi_some_avg10: Some(3.25),
            psi_full_avg10: Some(1.5),
            free_2m_bytes: Some(40 << 20),
            cma_free_bytes: 0,
            cgroup_current_bytes: None,
            peak_device_used_bytes: None,
            peak_psi_full_avg10: None,
            min_free_2m_bytes: None,
            peak_cgroup_current_bytes: None,
        };
        // Peaks: the first sample's own values, then the worst of the two.
        let first = s.clone().with_peaks(None);
        assert_eq!(first.peak_psi_full_avg10, Some(1.5));
        assert_eq!(first.min_free_2m_bytes, Some(40 << 20));
        let calmer = WatchSample {
            psi_full_avg10: Some(0.5),
            free_2m_bytes: Some(4 << 30),
            ..s.clone()
        }
        .with_peaks(Some(&first));
        assert_eq!(calmer.peak_psi_full_avg10, Some(1.5));
        assert_eq!(calmer.min_free_2m_bytes, Some(40 << 20));
        let s = first;
        let t = render(&s, None, Some("no libcuda"));
        for l in t.lines() {
            assert!(
                l.chars().count() <= MAX_LINE,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(
            t.contains("PSI some 3.25% full 1.50%") && t.contains("2 MiB blocks 40 MiB"),
            "{t}"
        );
        assert!(
            t.contains("peaks since start") && t.contains("fewest 2 MiB blocks 40 MiB"),
            "{t}"
        );
        assert!(t.contains("device: absent (no libcuda)"), "{t}");
        assert!(t.contains("MemAvailable") && t.contains("SwapFree"), "{t}");
        // MemAvailable 98_566_144 KiB of 125_520_512 KiB: 94.00 of 119.71 GiB, 78.5%.
        assert!(t.contains("94.00 of  119.71 GiB  78.5%"), "{t}");
        let j: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert!(j["device_free_bytes"].is_null());
        assert_eq!(j["mem_available_bytes"], m.mem_available);
    }
}
