//! `load`'s rows (one per run, as JSON/CSV write them) and its human output: one table line per
//! path and page-cache state with medians, min-max and n, and the findings (which path to use on
//! this machine for this file, by how much, and why). Pure: no GPU, no files; snapshot-tested.
//! Imports: stats, units, the report table style.

use serde::Serialize;

use crate::report::table::{bullet_section, new_table};
use crate::stats::{Order, Summary, fmt_spread, order};
use crate::units::fmt_bytes;

/// One load of the file by one path.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LoadRow {
    pub path: String,
    /// `cold` or `warm`.
    pub state: String,
    /// 1-based run number of this path and state.
    pub run: u32,
    /// Bytes of tensor data loaded (the file's data section).
    pub data_bytes: u64,
    pub tensors: u64,
    /// Bytes of the file in the page cache just before the run (mincore).
    pub resident_before_bytes: u64,
    /// Host clock from start to data in device memory, ready for a kernel.
    pub wall_ms: f64,
    /// data_bytes / wall time, GB/s (1 GB = 1e9 bytes).
    pub gbps: f64,
    /// Host clock until the first tensor was in device memory.
    pub first_tensor_ms: f64,
    /// Growth of the page cache (`Cached`) over the run, bytes (negative: it shrank).
    pub cache_growth_bytes: i64,
    /// Lowest MemAvailable seen while the path ran.
    pub min_mem_available_bytes: u64,
    /// Highest RSS of this process while the path ran.
    pub peak_rss_bytes: u64,
    /// Host memory the path page-locked.
    pub pinned_bytes: u64,
    /// The checksum kernel's time on the loaded data (for `managed`, it includes the migration).
    pub kernel_ms: f64,
    /// The GPU's checksum equals the CPU's checksum of the file.
    pub checksum_ok: bool,
    pub note: String,
}

/// One line of the table: a path and state over its runs.
#[derive(Debug, Clone)]
pub struct PathSummary {
    pub path: String,
    pub state: String,
    pub gbps: Summary,
    pub wall_s: Summary,
    pub first_ms: Summary,
    pub all_ok: bool,
    pub last: LoadRow,
}

/// Groups rows by (path, state) in the order they first appear.
pub fn summarize(rows: &[LoadRow]) -> Vec<PathSummary> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        let k = (r.path.clone(), r.state.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .filter_map(|(path, state)| {
            let g: Vec<&LoadRow> = rows
                .iter()
                .filter(|r| r.path == path && r.state == state)
                .collect();
            let of =
                |f: fn(&LoadRow) -> f64| Summary::of(&g.iter().map(|r| f(r)).collect::<Vec<_>>());
            Some(PathSummary {
                gbps: of(|r| r.gbps)?,
                wall_s: of(|r| r.wall_ms / 1e3)?,
                first_ms: of(|r| r.first_tensor_ms)?,
                all_ok: g.iter().all(|r| r.checksum_ok),
                last: (*g.last()?).clone(),
                path,
                state,
            })
        })
        .collect()
}

/// The text table.
pub fn render_table(rows: &[LoadRow]) -> String {
    let mut t = new_table(&[
        "path",
        "state",
        "n",
        "GB/s median [min-max]",
        "wall s",
        "first tensor ms",
        "cache growth",
        "min MemAvailable",
        "peak RSS",
        "pinned",
        "checksum",
        "note",
    ]);
    for s in summarize(rows) {
        t.add_row(vec![
            s.path.clone(),
            s.state.clone(),
            s.gbps.runs.to_string(),
            fmt_spread(&s.gbps, 2),
            fmt_spread(&s.wall_s, 2),
            fmt_spread(&s.first_ms, 0),
            signed_bytes(s.last.cache_growth_bytes),
            fmt_bytes(s.last.min_mem_available_bytes),
            fmt_bytes(s.last.peak_rss_bytes),
            fmt_bytes(s.last.pinned_bytes),
            if s.all_ok {
                "equal".into()
            } else {
                "MISMATCH".into()
            },
            s.last.note.clone(),
        ]);
    }
    format!("{t}\n")
}

fn signed_bytes(b: i64) -> String {
    if b < 0 {
        format!("-{}", fmt_bytes(b.unsigned_abs()))
    } else {
        format!("+{}", fmt_bytes(b as u64))
    }
}

/// Findings per state: the fastest path, by how much over the others (only where the samples do
/// not overlap), what pinning and the page cache cost, and any checksum mismatch.
pub fn findings(rows: &[LoadRow], unified: bool) -> Vec<String> {
    let sums = summarize(rows);
    let mut out = Vec::new();
    for state in ["cold", "warm"] {
        let mut s: Vec<&PathSummary> = sums.iter().filter(|p| p.state == state).collect();
        if s.is_empty() {
            continue;
        }
        s.sort_by(|a, b| b.gbps.median.total_cmp(&a.gbps.median));
        let best = s[0];
        let mut line = format!(
            "{state}: {} is fastest at {:.2} GB/s (median of {})",
            best.path, best.gbps.median, best.gbps.runs
        );
        if let Some(next) = s.get(1) {
            let ratio = best.gbps.median / next.gbps.median.max(1e-9);
            match order(&best.gbps, &next.gbps) {
                Order::Above => line.push_str(&format!(
                    ", {ratio:.2}x the next, {} ({:.2} GB/s; the ranges do not overlap)",
                    next.path, next.gbps.median
                )),
                _ => line.push_str(&format!(
                    "; {} ({:.2} GB/s) is indistinguishable from it at this n (the ranges overlap)",
                    next.path, next.gbps.median
                )),
            }
            if let Some(worst) = s.last().filter(|w| w.path != next.path) {
                line.push_str(&format!(
                    "; slowest {} at {:.2} GB/s ({:.1}x slower)",
                    worst.path,
                    worst.gbps.median,
                    best.gbps.median / worst.gbps.median.max(1e-9)
                ));
            }
        }
        out.push(format!("{line}."));
    }
    if let Some(reg) = sums.iter().find(|p| p.path == "registered-file") {
        out.push(format!(
            "registered-file page-locks the whole file ({}) for the load: pinning is part of its {:.2} s ({}).",
            fmt_bytes(reg.last.pinned_bytes),
            reg.wall_s.median,
            reg.last.note
        ));
    }
    let growth = sums
        .iter()
        .filter(|p| p.state == "cold")
        .max_by_key(|p| p.last.cache_growth_bytes);
    if let Some(g) = growth.filter(|g| g.last.cache_growth_bytes > (g.last.data_bytes / 2) as i64) {
        let why = if unified {
            "on unified memory these cached pages are the same DRAM the GPU copy occupies: the file is held twice until the cache is evicted"
        } else {
            "on a discrete card this is host memory only; it makes the next (warm) load faster"
        };
        out.push(format!(
            "A cold {} load grew the page cache by {}: {why}.",
            g.path,
            fmt_bytes(g.last.cache_growth_bytes as u64)
        ));
    }
    for s in sums.iter().filter(|s| !s.all_ok) {
        out.push(format!(
            "{} ({}) loaded data whose GPU checksum differs from the file's: its numbers are not valid.",
            s.path, s.state
        ));
    }
    out
}

/// The whole text output.
pub fn render(rows: &[LoadRow], skipped: &[String], notes: &[String]) -> String {
    let mut out = render_table(rows);
    out.push_str(&bullet_section("Skipped", skipped));
    out.push_str(&bullet_section("Findings", notes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, state: &str, run: u32, gbps: f64) -> LoadRow {
        LoadRow {
            path: path.into(),
            state: state.into(),
            run,
            data_bytes: 1 << 30,
            tensors: 195,
            resident_before_bytes: 0,
            wall_ms: (1u64 << 30) as f64 / gbps / 1e6,
            gbps,
            first_tensor_ms: 12.0,
            cache_growth_bytes: 1 << 30,
            min_mem_available_bytes: 100 << 30,
            peak_rss_bytes: 300 << 20,
            pinned_bytes: 0,
            kernel_ms: 1.0,
            checksum_ok: true,
            note: String::new(),
        }
    }

    #[test]
    fn table_and_findings_from_rows() {
        let mut rows = Vec::new();
        for (k, g) in [(1, 10.0), (2, 11.0), (3, 12.0)] {
            rows.push(row("pinned-staging", "cold", k, g));
            rows.push(row("mmap-copy", "cold", k, g / 4.0));
            rows.push(row("read-copy", "cold", k, g / 3.0));
        }
        let t = render_table(&rows);
        assert!(
            t.contains("| pinned-staging | cold  | 3 | 11.00 [10.00-12.00]"),
            "{t}"
        );
        let f = findings(&rows, false);
        assert!(
            f[0].starts_with("cold: pinned-staging is fastest at 11.00 GB/s"),
            "{f:?}"
        );
        assert!(f[0].contains("3.00x the next, read-copy"), "{f:?}");
        assert!(f[0].contains("slowest mmap-copy"), "{f:?}");
        assert!(
            f.iter().any(|l| l.contains("grew the page cache by 1 GiB")),
            "{f:?}"
        );
        rows[0].checksum_ok = false;
        assert!(render_table(&rows).contains("MISMATCH"));
        assert!(
            findings(&rows, true)
                .iter()
                .any(|l| l.contains("not valid"))
        );
    }
}
