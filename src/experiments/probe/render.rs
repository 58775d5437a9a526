//! The probe's text output: one table per device (figure, why it stopped, the accounting taken
//! before it) and one sentence per probe. Pure: imports the row type, `report` and `units`.

use super::ProbeDoc;
use crate::report::new_table;
use crate::units::{fmt_bytes, fmt_gib};

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * part as f64 / whole as f64)
    }
}

/// The table and one line per probe.
pub fn render(doc: &ProbeDoc) -> String {
    let rows = &doc.rows;
    let mut out = String::new();
    let mut devices: Vec<i32> = rows.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    for dev in devices {
        let d = doc.environment.devices.iter().find(|d| d.ordinal == dev);
        out.push_str(&format!(
            "device {dev}: {} ({})\n\n",
            d.map_or("?", |d| d.name.as_str()),
            d.map_or("?", |d| d.architecture.label())
        ));
        let mut t = new_table(&[
            "strategy",
            "kind",
            "max, GiB",
            "% of cuMemGetInfo free",
            "stopped at",
            "attempts (OOM)",
            "touched",
            "limit, GiB",
            "cuMemGetInfo free / total, GiB",
            "MemFree, GiB",
            "MemAvailable, GiB",
            "Cached, GiB",
            "SwapFree, GiB",
            "time, s",
        ]);
        for r in rows.iter().filter(|r| r.device == dev) {
            t.add_row(vec![
                r.strategy.to_string(),
                r.kind.key().to_string(),
                fmt_gib(r.max_bytes as f64),
                pct(r.max_bytes, r.device_free_bytes),
                r.stop_reason.phrase().to_string(),
                format!("{} ({})", r.attempts, r.failures),
                if r.touched { "yes" } else { "no" }.to_string(),
                fmt_gib(r.limit_bytes as f64),
                format!(
                    "{} / {}",
                    fmt_gib(r.device_free_bytes as f64),
                    fmt_gib(r.device_total_bytes as f64)
                ),
                fmt_gib(r.mem_free_bytes as f64),
                fmt_gib(r.mem_available_bytes as f64),
                fmt_gib(r.cached_bytes as f64),
                fmt_gib(r.swap_free_bytes as f64),
                format!("{:.1}", r.elapsed_ms / 1e3),
            ]);
        }
        out.push_str(&format!(
            "largest allocation per strategy (GiB = 2^30 bytes; accounting taken just before each probe)\n{t}\n\n"
        ));
        for r in rows.iter().filter(|r| r.device == dev) {
            out.push_str(&format!(
                "- {} {}: {} — {}\n",
                r.strategy,
                r.kind.key(),
                fmt_bytes(r.max_bytes),
                r.stop_detail
            ));
        }
        out.push('\n');
    }
    out.push_str(&crate::report::bullet_section("Skipped", &doc.skipped));
    for n in &doc.notes {
        out.push_str(&format!("{n}\n"));
    }
    out
}
