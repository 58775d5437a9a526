//! `cumemlab selftest`: the first thing to run on a new machine. Runs every kernel on fresh random
//! data over a poisoned buffer and verifies the result (at the test size and at an odd size that
//! is a multiple of neither 16 nor the page size), plants a wrong element to prove `check` sees
//! it, then measures `fill` against `cuMemsetD32` and `read` beside them (and a device-to-device
//! copy) on up to 4 GiB of device memory, and `fill` against `cuMemsetD32` alone at 1, 4 and
//! 16 GiB (`--fill-sizes`; sizes over a quarter of free memory are left out). A wrong kernel is
//! exit 1.
//!
//! Files: this one holds the report types, the operation and kernel names ([`BandwidthOp`],
//! [`KernelTest`]) and the bandwidth runs; [`checks`] verifies the kernels, [`render`](mod@render)
//! writes the table and the CSV rows, [`cli`] is the command.

mod checks;
mod cli;
mod render;

use serde::{Deserialize, Serialize};

use super::{Gpu, check_interrupt};
use crate::error::{Error, Result};
use crate::memory::{AllocOptions, Strategy, allocate};
use crate::report::Progress;
use crate::stats::Summary;
use crate::units::{GIB, MIB, fmt_bytes, gbps};

pub use checks::{expected_touch_mismatches, verify_kernels};
pub use cli::{SelftestArgs, main};
pub use render::{CsvKind, SelftestCsvRow, csv_rows, render};

/// The operations whose bandwidth the self-test measures; serialised as the names the reports
/// have always carried (`op` in JSON, `name` in CSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BandwidthOp {
    #[serde(rename = "cuMemsetD32")]
    Memset,
    #[serde(rename = "fill kernel")]
    Fill,
    #[serde(rename = "read kernel")]
    Read,
    #[serde(rename = "cuMemcpyDtoD (bytes copied)")]
    CopyDtoD,
}

impl BandwidthOp {
    /// In the order of the report.
    pub const ALL: [BandwidthOp; 4] = [
        BandwidthOp::Memset,
        BandwidthOp::Fill,
        BandwidthOp::Read,
        BandwidthOp::CopyDtoD,
    ];

    /// The name in reports and tables.
    pub fn name(self) -> &'static str {
        match self {
            BandwidthOp::Memset => "cuMemsetD32",
            BandwidthOp::Fill => "fill kernel",
            BandwidthOp::Read => "read kernel",
            BandwidthOp::CopyDtoD => "cuMemcpyDtoD (bytes copied)",
        }
    }
}

impl std::fmt::Display for BandwidthOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// For callers that still compare with the name (`b.op == "fill kernel"`): prefer the variant.
impl PartialEq<&str> for BandwidthOp {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// The kernel checks, serialised as the names the reports have always carried (`kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KernelTest {
    #[serde(rename = "fill+check")]
    FillCheck,
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "check (planted error)")]
    PlantedError,
    #[serde(rename = "touch+touch_read")]
    Touch,
    #[serde(rename = "touch stride")]
    TouchStride,
}

impl KernelTest {
    /// The name in reports and tables.
    pub fn name(self) -> &'static str {
        match self {
            KernelTest::FillCheck => "fill+check",
            KernelTest::Read => "read",
            KernelTest::PlantedError => "check (planted error)",
            KernelTest::Touch => "touch+touch_read",
            KernelTest::TouchStride => "touch stride",
        }
    }
}

impl std::fmt::Display for KernelTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One kernel check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KernelCheck {
    pub device: i32,
    pub kernel: KernelTest,
    pub bytes: u64,
    pub passed: bool,
    pub detail: String,
}

/// One bandwidth measurement (GB/s = 1e9 bytes per second, counted as bytes written for
/// memset/fill, bytes read for read, bytes copied for copy).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bandwidth {
    pub device: i32,
    pub op: BandwidthOp,
    pub bytes: u64,
    pub gbps: Summary,
    /// Median GB/s relative to `cuMemsetD32`'s median, percent.
    pub percent_of_memset: f64,
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
        for (op, sum) in [(BandwidthOp::Memset, m), (BandwidthOp::Fill, f)] {
            out.push(Bandwidth {
                device: dev,
                op,
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
        (BandwidthOp::Memset, &memset),
        (BandwidthOp::Fill, &fill),
        (BandwidthOp::Read, &read),
        (BandwidthOp::CopyDtoD, &copy),
    ] {
        if let Some(sum) = Summary::of(&to_gbps(ms)) {
            bandwidth.push(Bandwidth {
                device: dev,
                op,
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
        .find(|b| b.op == BandwidthOp::Fill)
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

#[cfg(test)]
mod tests;
