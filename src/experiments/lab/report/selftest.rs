//! The selftest section of the lab report: kernel checks and bandwidth on device memory.

use super::findings::Findings;
use crate::experiments::lab::LabResults;
use crate::experiments::sweep::headline;
use crate::report::markdown::Page;
use crate::units::fmt_bytes;

/// The section (nothing without selftest results).
pub fn section(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let Some(v) = &r.selftest else { return };
    if v.is_empty() {
        return;
    }
    p.h2("Selftest");
    findings.group = "Selftest".into();
    p.para("Every kernel verified on fresh random data (at the bandwidth size and at an odd size), then `fill`, `read` and a device-to-device copy against `cuMemsetD32` on device memory.");
    let mut checks = Vec::new();
    for s in v {
        let passed = s.checks.iter().filter(|c| c.passed).count();
        let failed: Vec<String> = s
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} at {}: {}", c.kernel, fmt_bytes(c.bytes), c.detail))
            .collect();
        checks.push(vec![
            s.device.to_string(),
            s.device_name.clone(),
            format!("{passed} of {}", s.checks.len()),
            if failed.is_empty() {
                "none".into()
            } else {
                failed.join("; ")
            },
        ]);
    }
    let t1 = p.table(
        "Kernel checks",
        &["device", "name", "passed", "failures"],
        checks,
    );
    let mut bw = Vec::new();
    for s in v {
        for b in &s.bandwidth {
            bw.push(vec![
                s.device.to_string(),
                b.op.to_string(),
                fmt_bytes(b.bytes),
                format!("{:.1}", b.gbps.median),
                format!("{:.1}", b.gbps.min),
                format!("{:.1}", b.gbps.max),
                format!("{:.2}", 100.0 * b.gbps.cv),
                headline::pct_vs(b.percent_of_memset, 95.0),
            ]);
        }
    }
    let t2 = p.table(
        "Bandwidth on device memory (GB/s = 1e9 bytes/s; median of the timed runs after a warm-up)",
        &[
            "device",
            "operation",
            "size",
            "median (GB/s)",
            "min (GB/s)",
            "max (GB/s)",
            "CV (%)",
            "% of cuMemsetD32",
        ],
        bw,
    );
    for s in v {
        let passed = s.checks.iter().filter(|c| c.passed).count();
        let fill = s.bandwidth.iter().find(|b| b.op == "fill kernel");
        findings.push(format!(
            "{t1}: on device {} ({}) {} of {} kernel checks passed{}.",
            s.device,
            s.device_name,
            passed,
            s.checks.len(),
            if s.all_passed {
                String::new()
            } else {
                ": results from a failing kernel are suspect until the failure is understood".into()
            }
        ));
        if let Some(f) = fill {
            findings.push(format!(
                "{t2}: on device {} the fill kernel reaches {}% of cuMemsetD32 ({:.0} GB/s){}.",
                s.device,
                headline::pct_vs(f.percent_of_memset, 95.0),
                f.gbps.median,
                if s.fill_reaches_95_percent_of_memset {
                    ": kernel bandwidth figures can be trusted"
                } else {
                    ", below the 95% the protocol requires: kernel bandwidth figures understate this memory"
                }
            ));
        }
    }
}
