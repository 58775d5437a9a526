//! The human and CSV forms of a self-test report. Pure: reports in, text or rows out.

use serde::{Deserialize, Serialize};

use super::SelftestReport;
use crate::report::new_table;
use crate::units::fmt_bytes;

/// The human form.
pub fn render(r: &SelftestReport) -> String {
    let mut out = format!("selftest on device {} ({})\n\n", r.device, r.device_name);
    let mut t = new_table(&["kernel", "size", "result", "detail"]);
    for c in &r.checks {
        t.add_row(vec![
            c.kernel.to_string(),
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
            b.op.to_string(),
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

/// What a CSV row of `selftest` holds (its `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvKind {
    /// A kernel check.
    Check,
    /// A bandwidth figure at the test size.
    Bandwidth,
    /// `cuMemsetD32` or fill at one of the `--fill-sizes`.
    FillBySize,
}

/// A flat CSV row of `selftest` (kernel checks and bandwidth figures in one file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SelftestCsvRow {
    pub device: i32,
    pub device_name: String,
    /// `check`, `bandwidth` or `fill_by_size` (cuMemsetD32 and fill at each `--fill-sizes` size).
    pub kind: CsvKind,
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
                kind: CsvKind::Check,
                name: c.kernel.to_string(),
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
        let by_size = s.fill_by_size.iter().map(|b| (CsvKind::FillBySize, b));
        for (kind, b) in s
            .bandwidth
            .iter()
            .map(|b| (CsvKind::Bandwidth, b))
            .chain(by_size)
        {
            rows.push(SelftestCsvRow {
                device: s.device,
                device_name: s.device_name.clone(),
                kind,
                name: b.op.to_string(),
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
