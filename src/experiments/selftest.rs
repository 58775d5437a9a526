//! `cumemlab selftest`: the first thing to run on a new machine. Runs every kernel on fresh random
//! data over a poisoned buffer and verifies the result (at the test size and at an odd size that
//! is a multiple of neither 16 nor the page size), plants a wrong element to prove `check` sees
//! it, then measures `fill` against `cuMemsetD32` and `read` beside them (and a device-to-device
//! copy) on up to 4 GiB of device memory, and `fill` against `cuMemsetD32` alone at 1, 4 and
//! 16 GiB (`--fill-sizes`; sizes over a quarter of free memory are left out). A wrong kernel is
//! exit 1.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{Gpu, check_interrupt};
use crate::driver::{DevicePtr, host_pattern_byte, host_pattern_sum, host_pattern_word};
use crate::error::{Error, Result};
use crate::memory::{AllocOptions, Strategy, allocate};
use crate::report::{Progress, new_table};
use crate::stats::Summary;
use crate::units::{GIB, MIB, fmt_bytes, gbps};

/// One kernel check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KernelCheck {
    pub device: i32,
    pub kernel: String,
    pub bytes: u64,
    pub passed: bool,
    pub detail: String,
}

/// One bandwidth measurement (GB/s = 1e9 bytes per second, counted as bytes written for
/// memset/fill, bytes read for read, bytes copied for copy).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bandwidth {
    pub device: i32,
    pub op: String,
    pub bytes: u64,
    pub gbps: Summary,
    /// Median GB/s relative to `cuMemsetD32`'s median, percent.
    pub percent_of_memset: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_carry_the_fill_by_size_table() {
        let bw = |op: &str, bytes, median, pct| Bandwidth {
            device: 0,
            op: op.into(),
            bytes,
            gbps: Summary::of(&[median]).unwrap(),
            percent_of_memset: pct,
        };
        let r = SelftestReport {
            device: 0,
            device_name: "gpu".into(),
            checks: vec![],
            bandwidth: vec![bw("fill kernel", 4 * GIB, 4600.0, 101.0)],
            fill_reaches_95_percent_of_memset: true,
            fill_by_size: vec![
                bw("cuMemsetD32", GIB, 4400.0, 100.0),
                bw("fill kernel", GIB, 4500.0, 102.3),
            ],
            all_passed: true,
        };
        let rows = csv_rows(&[r]);
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["bandwidth", "fill_by_size", "fill_by_size"]);
        assert_eq!(rows[2].bytes, GIB);
        assert_eq!(rows[2].percent_of_memset, Some(102.3));
        assert_eq!(rows[2].gbps_median, Some(4500.0));
    }

    #[test]
    fn fill_sizes_default_and_chosen() {
        // Defaults: 1, 4, 16 GiB where each is at most a quarter of free memory.
        assert_eq!(
            fill_sizes(None, 139 * GIB).unwrap(),
            vec![GIB, 4 * GIB, 16 * GIB]
        );
        assert_eq!(fill_sizes(None, 20 * GIB).unwrap(), vec![GIB, 4 * GIB]);
        assert!(fill_sizes(None, 2 * GIB).unwrap().is_empty());
        // Chosen: kept as given between 1 MiB and half of free memory, else a usage error.
        assert_eq!(
            fill_sizes(Some(&[2 * GIB, MIB]), 8 * GIB).unwrap(),
            vec![2 * GIB, MIB]
        );
        for bad in [[5 * GIB], [MIB - 1]] {
            let e = fill_sizes(Some(&bad), 8 * GIB).unwrap_err();
            assert!(e.to_string().contains("--fill-sizes"), "{e}");
        }
    }

    #[test]
    fn touch_mismatch_expectation() {
        // 3 pages of 16 bytes over 40 bytes: words at 0 and 16 (16-byte part), then offset 32 in
        // the 8-byte tail: 4 bytes written there.
        let seed = 7;
        let v = host_pattern_word(0, seed); // equal to word 0: no mismatch there
        let n = expected_touch_mismatches(40, 16, v, seed);
        let tail: u64 = (0..4u64)
            .filter(|i| (v >> (8 * i)) as u8 != host_pattern_byte(32 + i, seed))
            .count() as u64;
        assert_eq!(n, u64::from(v != host_pattern_word(4, seed)) + tail);
        // Last page with fewer than 4 bytes left: one byte.
        let n2 = expected_touch_mismatches(34, 32, 0xFFFF_FFFF, seed);
        assert_eq!(
            n2,
            u64::from(0xFFFF_FFFF != host_pattern_word(0, seed))
                + u64::from(0xFF != host_pattern_byte(32, seed))
        );
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SelftestReport {
    pub device: i32,
    pub device_name: String,
    pub checks: Vec<KernelCheck>,
    pub bandwidth: Vec<Bandwidth>,
    pub fill_reaches_95_percent_of_memset: bool,
    /// `cuMemsetD32` and `fill` at each of the fill sizes (percent relative to the memset of the
    /// same size); absent in reports from before this field.
    #[serde(default)]
    pub fill_by_size: Vec<Bandwidth>,
    pub all_passed: bool,
}

/// Options.
#[derive(Debug, Clone)]
pub struct SelftestOptions {
    /// Bytes for the bandwidth runs (default: 4 GiB, or a quarter of free memory when smaller).
    pub bytes: Option<u64>,
    pub runs: u32,
    pub quiet: bool,
    /// Sizes for `fill` against `cuMemsetD32` alone (default [`DEFAULT_FILL_SIZES`], each kept
    /// when it is at most a quarter of free memory).
    pub fill_sizes: Option<Vec<u64>>,
}

/// Default sizes for `fill` against `cuMemsetD32`: 1, 4 and 16 GiB.
pub const DEFAULT_FILL_SIZES: [u64; 3] = [GIB, 4 * GIB, 16 * GIB];

/// The odd size: not a multiple of 16, of 4, or of the page size.
pub const ODD_BYTES: u64 = 64 * MIB + 4099;

/// Verifies every kernel on `ptr` (`bytes` long) with a fresh seed; returns the checks.
pub fn verify_kernels(
    gpu: &Gpu,
    ptr: DevicePtr,
    bytes: u64,
    page: u64,
) -> Result<Vec<KernelCheck>> {
    let k = &gpu.kernels;
    let s = &gpu.stream;
    let dev = gpu.device.ordinal();
    let mut rng = rand::rng();
    let seed: u32 = rng.random();
    let mut out = Vec::new();
    let mut push = |kernel: &str, passed: bool, detail: String| {
        out.push(KernelCheck {
            device: dev,
            kernel: kernel.into(),
            bytes,
            passed,
            detail,
        });
    };

    // fill over a poisoned buffer, then check: every element written with the new seed.
    k.memset_d8(ptr, bytes, 0xA5)?;
    k.fill(s, ptr, bytes, seed)?;
    let (_, c) = k.check(s, ptr, bytes, seed)?;
    push(
        "fill+check",
        c.mismatches == 0,
        format!(
            "seed {seed:#010x}: {} mismatches after fill over 0xA5 poison",
            c.mismatches
        ),
    );

    // read: the sum of the pattern, computed independently on the host.
    let (_, sum) = k.read(s, ptr, bytes)?;
    let want = host_pattern_sum(bytes, seed);
    push(
        "read",
        sum == want,
        format!("sum {sum:#x}, host expects {want:#x}"),
    );

    // check catches a planted wrong element at a random word.
    let words = bytes / 4;
    let victim = rng.random_range(0..words.max(1));
    let mut word = [0u8; 4];
    k.download(ptr + victim * 4, &mut word)?;
    let planted = [!word[0], word[1], word[2], word[3]];
    k.upload(ptr + victim * 4, &planted)?;
    let (_, c) = k.check(s, ptr, bytes, seed)?;
    push(
        "check (planted error)",
        c.mismatches == 1 && c.first_bad_offset == Some(victim * 4),
        format!(
            "planted at byte {}: check found {} at {:?}",
            victim * 4,
            c.mismatches,
            c.first_bad_offset
        ),
    );

    // touch writes one word per page (over freshly filled data: the planted error is gone):
    // read back one word per page and compare the sum.
    k.fill(s, ptr, bytes, seed)?;
    let value: u32 = rng.random_range(1..u32::MAX);
    k.touch(s, ptr, bytes, page, value)?;
    let (_, tsum) = k.touch_read(s, ptr, bytes, page)?;
    let pages = bytes.div_ceil(page);
    let last_partial = bytes - (pages - 1) * page < 4;
    let expect = if last_partial {
        (pages - 1) * u64::from(value) + u64::from(value as u8)
    } else {
        pages * u64::from(value)
    };
    push(
        "touch+touch_read",
        tsum == expect,
        format!("{pages} pages of {page} B: sum {tsum}, expected {expect}"),
    );
    // And touch changed exactly the elements it should have: count them on the host.
    let (_, c) = k.check(s, ptr, bytes, seed)?;
    let want = expected_touch_mismatches(bytes, page, value, seed);
    push(
        "touch stride",
        c.mismatches == want,
        format!(
            "{} elements differ from the pattern after touching {pages} pages (host expects {want})",
            c.mismatches
        ),
    );
    Ok(out)
}

/// How many elements `check` must report after `touch` wrote `value` every `stride` bytes over a
/// buffer filled with `seed`: words of the 16-byte part count once, tail bytes each.
pub fn expected_touch_mismatches(bytes: u64, stride: u64, value: u32, seed: u32) -> u64 {
    let vec_end = bytes / 16 * 16;
    let mut n = 0;
    let mut off = 0;
    while off < bytes {
        if off + 4 <= bytes {
            if off < vec_end {
                n += u64::from(value != host_pattern_word(off / 4, seed));
            } else {
                n += (0..4u64)
                    .filter(|i| (value >> (8 * i)) as u8 != host_pattern_byte(off + i, seed))
                    .count() as u64;
            }
        } else {
            // One byte written (off is in the tail: fewer than 4 bytes remain).
            n += u64::from(value as u8 != host_pattern_byte(off, seed));
        }
        off += stride;
    }
    n
}

fn bandwidth_runs(runs: u32, mut f: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    f()?; // warm-up, discarded
    let mut v = Vec::new();
    for _ in 0..runs {
        check_interrupt()?;
        v.push(f()?);
    }
    Ok(v)
}

/// The sizes for `fill` against `cuMemsetD32`: the defaults up to a quarter of `free`, or the
/// user's, each from 1 MiB (smaller buffers time the launch) to half of `free` (usage error).
pub fn fill_sizes(chosen: Option<&[u64]>, free: u64) -> Result<Vec<u64>> {
    let Some(v) = chosen else {
        return Ok(DEFAULT_FILL_SIZES
            .into_iter()
            .filter(|&b| b <= free / 4)
            .collect());
    };
    if let Some(b) = v.iter().find(|&&b| b < MIB || b > free / 2) {
        return Err(Error::usage(format!(
            "--fill-sizes: {} is outside 1 MiB to half of the {} free on the device",
            fmt_bytes(*b),
            fmt_bytes(free)
        )));
    }
    Ok(v.to_vec())
}

/// `cuMemsetD32` and `fill` at each size, as two [`Bandwidth`] rows per size: in alternation
/// (one warm-up pair, then `runs` pairs), on the first bytes of one buffer of the largest size.
/// One buffer, and before the rest of the self-test, because freeing device memory leaves the
/// DRAM busy for a while (on an H200, about 0.37 TB/s for about 2.5 ms per GiB freed, consistent
/// with the driver scrubbing it: docs/results/h200-2026-11-30-fill/), which slows the first runs
/// after a free.
fn fill_by_size(gpu: &Gpu, runs: u32, sizes: &[u64]) -> Result<Vec<Bandwidth>> {
    let (k, s, dev) = (&gpu.kernels, &gpu.stream, gpu.device.ordinal());
    let mut out = Vec::new();
    let Some(&largest) = sizes.iter().max() else {
        return Ok(out);
    };
    let a = allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        largest,
        &AllocOptions::default(),
    )?;
    let p = a.device_ptr();
    for &bytes in sizes {
        let (mut memset, mut fill) = (Vec::new(), Vec::new());
        for i in 0..=runs {
            check_interrupt()?;
            let m = k.memset_d32(s, p, bytes, 0x1234_5678)?;
            let f = k.fill(s, p, bytes, 0x0bad_f00d)?;
            if i > 0 {
                memset.push(m);
                fill.push(f);
            }
        }
        let to_gbps = |ms: &[f64]| ms.iter().map(|m| gbps(bytes, *m)).collect::<Vec<_>>();
        let (Some(m), Some(f)) = (Summary::of(&to_gbps(&memset)), Summary::of(&to_gbps(&fill)))
        else {
            continue;
        };
        for (op, sum) in [("cuMemsetD32", m), ("fill kernel", f)] {
            out.push(Bandwidth {
                device: dev,
                op: op.into(),
                bytes,
                gbps: sum,
                percent_of_memset: if m.median > 0.0 {
                    100.0 * sum.median / m.median
                } else {
                    0.0
                },
            });
        }
    }
    a.free()?;
    Ok(out)
}

/// Runs the self-test on one device.
pub fn run(gpu: &Gpu, opts: &SelftestOptions) -> Result<SelftestReport> {
    let dev = gpu.device.ordinal();
    let free = gpu.free_bytes()?;
    // Two buffers of `bytes` each (the copy needs a destination), within a quarter of free memory
    // apiece.
    let bytes = opts
        .bytes
        .unwrap_or_else(|| (4 * GIB).min((free / 4) & !(MIB - 1)).max(MIB));
    if 2 * bytes > free {
        return Err(Error::usage(format!(
            "selftest needs 2 x {} of device memory and the card has {} free: pass a smaller --size",
            fmt_bytes(bytes),
            fmt_bytes(free)
        )));
    }
    let sizes = fill_sizes(opts.fill_sizes.as_deref(), free)?;
    let progress = Progress::new(5, opts.quiet);
    let no_opts = AllocOptions::default();
    // First, before this run frees anything (see fill_by_size).
    progress.message("fill against cuMemsetD32 by size");
    let fill_by_size = fill_by_size(gpu, opts.runs, &sizes)?;
    progress.inc();
    progress.message("verifying kernels");
    let a = allocate(&gpu.ctx, &gpu.stream, Strategy::Device, bytes, &no_opts)?;
    let b = allocate(&gpu.ctx, &gpu.stream, Strategy::Device, bytes, &no_opts)?;
    let page = crate::host::facts::page_size();
    let mut checks = verify_kernels(gpu, a.device_ptr(), bytes, page)?;
    progress.inc();
    let odd = allocate(&gpu.ctx, &gpu.stream, Strategy::Device, ODD_BYTES, &no_opts)?;
    checks.extend(verify_kernels(gpu, odd.device_ptr(), ODD_BYTES, page)?);
    drop(odd);
    progress.inc();
    check_interrupt()?;

    progress.message("measuring bandwidth");
    let (k, s) = (&gpu.kernels, &gpu.stream);
    let (pa, pb) = (a.device_ptr(), b.device_ptr());
    // Never time on zero-filled data when reading: fill first.
    k.fill(s, pa, bytes, 0x5eed_1234)?;
    let memset = bandwidth_runs(opts.runs, || Ok(k.memset_d32(s, pb, bytes, 0x1234_5678)?))?;
    let fill = bandwidth_runs(opts.runs, || Ok(k.fill(s, pb, bytes, 0x0bad_f00d)?))?;
    let read = bandwidth_runs(opts.runs, || Ok(k.read(s, pa, bytes)?.0))?;
    let copy = bandwidth_runs(opts.runs, || Ok(k.copy(s, pb, pa, bytes)?))?;
    progress.inc();
    let to_gbps = |ms: &[f64]| ms.iter().map(|m| gbps(bytes, *m)).collect::<Vec<_>>();
    let memset_med = Summary::of(&to_gbps(&memset)).map_or(0.0, |s| s.median);
    let mut bandwidth = Vec::new();
    for (op, ms) in [
        ("cuMemsetD32", &memset),
        ("fill kernel", &fill),
        ("read kernel", &read),
        ("cuMemcpyDtoD (bytes copied)", &copy),
    ] {
        if let Some(sum) = Summary::of(&to_gbps(ms)) {
            bandwidth.push(Bandwidth {
                device: dev,
                op: op.into(),
                bytes,
                gbps: sum,
                percent_of_memset: if memset_med > 0.0 {
                    100.0 * sum.median / memset_med
                } else {
                    0.0
                },
            });
        }
    }
    let fill_pct = bandwidth
        .iter()
        .find(|b| b.op == "fill kernel")
        .map_or(0.0, |b| b.percent_of_memset);
    // The buffers go back before the report is built.
    a.free()?;
    b.free()?;
    progress.inc();
    progress.finish();
    let all_passed = checks.iter().all(|c| c.passed);
    Ok(SelftestReport {
        device: dev,
        device_name: gpu.name.clone(),
        checks,
        bandwidth,
        fill_reaches_95_percent_of_memset: fill_pct >= 95.0,
        fill_by_size,
        all_passed,
    })
}

/// The human form.
pub fn render(r: &SelftestReport) -> String {
    let mut out = format!("selftest on device {} ({})\n\n", r.device, r.device_name);
    let mut t = new_table(&["kernel", "size", "result", "detail"]);
    for c in &r.checks {
        t.add_row(vec![
            c.kernel.clone(),
            fmt_bytes(c.bytes),
            if c.passed {
                "pass".into()
            } else {
                "FAIL".into()
            },
            c.detail.clone(),
        ]);
    }
    out.push_str(&format!("{t}\n\n"));
    if let Some(b0) = r.bandwidth.first() {
        out.push_str(&format!(
            "bandwidth on {} of device memory, GB/s (1e9 bytes/s), {} timed runs after a warm-up:\n",
            fmt_bytes(b0.bytes),
            b0.gbps.runs
        ));
    }
    let mut t = new_table(&[
        "operation",
        "median GB/s",
        "min",
        "max",
        "CV %",
        "% of cuMemsetD32",
    ]);
    for b in &r.bandwidth {
        t.add_row(vec![
            b.op.clone(),
            format!("{:.1}", b.gbps.median),
            format!("{:.1}", b.gbps.min),
            format!("{:.1}", b.gbps.max),
            format!("{:.2}", 100.0 * b.gbps.cv),
            crate::units::pct_vs(b.percent_of_memset, 95.0),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    if !r.fill_by_size.is_empty() {
        out.push_str(&format!(
            "fill against cuMemsetD32 by size, GB/s, {} timed runs after a warm-up:\n",
            r.fill_by_size[0].gbps.runs
        ));
        let mut t = new_table(&[
            "size",
            "cuMemsetD32 GB/s",
            "fill GB/s",
            "CV %",
            "% of memset",
        ]);
        for pair in r.fill_by_size.chunks(2) {
            if let [m, f] = pair {
                t.add_row(vec![
                    fmt_bytes(f.bytes),
                    format!("{:.1}", m.gbps.median),
                    format!("{:.1}", f.gbps.median),
                    format!("{:.2}", 100.0 * f.gbps.cv),
                    format!("{:.1}", f.percent_of_memset),
                ]);
            }
        }
        out.push_str(&format!("{t}\n"));
    }
    out.push_str(if r.fill_reaches_95_percent_of_memset {
        "fill reaches at least 95% of cuMemsetD32: the kernels can be trusted to measure bandwidth.\n"
    } else {
        "fill does NOT reach 95% of cuMemsetD32 on this device: bandwidth figures from the kernels understate the memory.\n"
    });
    out.push_str(if r.all_passed {
        "all kernels verified\n"
    } else {
        "KERNEL FAILURE: some results are wrong (exit 1)\n"
    });
    out
}

/// A flat CSV row of `selftest` (kernel checks and bandwidth figures in one file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SelftestCsvRow {
    pub device: i32,
    pub device_name: String,
    /// `check`, `bandwidth` or `fill_by_size` (cuMemsetD32 and fill at each `--fill-sizes` size).
    pub kind: String,
    pub name: String,
    pub bytes: u64,
    pub passed: Option<bool>,
    pub gbps_median: Option<f64>,
    pub gbps_min: Option<f64>,
    pub gbps_max: Option<f64>,
    pub gbps_cv: Option<f64>,
    pub runs: Option<u32>,
    pub percent_of_memset: Option<f64>,
    pub detail: Option<String>,
}

/// The self-test reports as flat CSV rows (the lab's `selftest.csv`, `selftest --csv`).
pub fn csv_rows(reports: &[SelftestReport]) -> Vec<SelftestCsvRow> {
    let mut rows = Vec::new();
    for s in reports {
        for c in &s.checks {
            rows.push(SelftestCsvRow {
                device: s.device,
                device_name: s.device_name.clone(),
                kind: "check".into(),
                name: c.kernel.clone(),
                bytes: c.bytes,
                passed: Some(c.passed),
                gbps_median: None,
                gbps_min: None,
                gbps_max: None,
                gbps_cv: None,
                runs: None,
                percent_of_memset: None,
                detail: Some(c.detail.clone()),
            });
        }
        let by_size = s.fill_by_size.iter().map(|b| ("fill_by_size", b));
        for (kind, b) in s.bandwidth.iter().map(|b| ("bandwidth", b)).chain(by_size) {
            rows.push(SelftestCsvRow {
                device: s.device,
                device_name: s.device_name.clone(),
                kind: kind.into(),
                name: b.op.clone(),
                bytes: b.bytes,
                passed: None,
                gbps_median: Some(b.gbps.median),
                gbps_min: Some(b.gbps.min),
                gbps_max: Some(b.gbps.max),
                gbps_cv: Some(b.gbps.cv),
                runs: Some(b.gbps.runs),
                percent_of_memset: Some(b.percent_of_memset),
                detail: None,
            });
        }
    }
    rows
}

/// `cumemlab selftest` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab selftest\n  cumemlab selftest --device 1 --size 1GiB --json\n  cumemlab selftest --out selftest.csv"
)]
pub struct SelftestArgs {
    /// Device ordinal, or `all`.
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = super::DeviceSel::parse)]
    pub device: super::DeviceSel,
    /// Buffer size for the bandwidth runs (default 4GiB, less on small cards).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::units::parse_size)]
    pub size: Option<u64>,
    /// Sizes for fill against cuMemsetD32, comma-separated (default 1GiB,4GiB,16GiB, each kept
    /// when it is at most a quarter of free memory).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::cli::size_list)]
    pub fill_sizes: Option<crate::cli::List<u64>>,
    /// Timed runs per bandwidth figure (after one discarded warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the self-test on the selected devices; exit 1 when a kernel is wrong.
pub fn main(args: SelftestArgs) -> Result<()> {
    let output = args.output;
    output.check()?;
    let envelope = crate::report::envelope::Envelope::start("selftest");
    let drv = super::require_driver()?;
    let ordinals = args.device.resolve(drv.device_count()?)?;
    let tables = output.tables();
    let opts = SelftestOptions {
        bytes: args.size,
        runs: args.runs,
        quiet: args.quiet || !tables,
        fill_sizes: args.fill_sizes.map(|l| l.0),
    };
    let mut reports = Vec::new();
    for o in ordinals {
        let gpu = Gpu::open(&drv, o)?;
        let r = run(&gpu, &opts)?;
        if tables {
            crate::report::sink::print_stdout(render(&r))?;
        }
        reports.push(r);
    }
    let body = crate::report::envelope::Reports { reports };
    output.write_result(
        || crate::report::envelope::to_json(envelope.clone().finish(false), &body),
        || crate::report::sink::to_csv(&csv_rows(&body.reports)),
    )?;
    let reports = body.reports;
    if reports.iter().all(|r| r.all_passed) {
        Ok(())
    } else {
        Err(Error::Failed(
            "selftest: at least one kernel produced wrong results".into(),
        ))
    }
}
