//! The page cache sections of the lab report: `cache` status and `cache effect`.

use super::findings::{Findings, gib};
use crate::experiments::lab::LabResults;
use crate::report::markdown::Page;

/// The "Page cache" heading, before whichever of the two sections comes first.
fn heading(p: &mut Page, findings: &mut Findings) {
    p.h2("Page cache");
    findings.group = "Page cache".into();
}

/// `cache` status (nothing without rows).
pub fn status(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let Some(c) = r.cache.as_ref().filter(|c| !c.rows.is_empty()) else {
        return;
    };
    heading(p, findings);
    let body = c
        .rows
        .iter()
        .map(|x| {
            vec![
                x.label.label().to_string(),
                gib(x.mem_free_bytes),
                gib(x.mem_available_bytes),
                gib(x.cached_bytes),
                gib(x.reclaimable_cache_bytes),
                gib(x.dirty_bytes),
                x.device_free_bytes.map_or("-".into(), gib),
            ]
        })
        .collect();
    let t = p.table(
        "The page cache against GPU memory (GiB = 2^30 bytes)",
        &[
            "state",
            "MemFree",
            "MemAvailable",
            "Cached",
            "reclaimable cache",
            "Dirty",
            "cuMemGetInfo free",
        ],
        body,
    );
    p.bullets(c.notes.clone());
    if let Some(x) = c.rows.first() {
        findings.push(format!(
            "{t}: the page cache holds {} GiB, {} GiB of it reclaimable; MemAvailable is {} GiB against MemFree {} GiB.",
            gib(x.cached_bytes),
            gib(x.reclaimable_cache_bytes),
            gib(x.mem_available_bytes),
            gib(x.mem_free_bytes)
        ));
    }
}

/// `cache effect` (nothing without rows), under the status's heading when there was one.
pub fn effect(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let Some(c) = r.cache_effect.as_ref().filter(|c| !c.rows.is_empty()) else {
        return;
    };
    if r.cache.as_ref().is_none_or(|c| c.rows.is_empty()) {
        heading(p, findings);
    }
    p.h3("Cache effect");
    let body = c
        .rows
        .iter()
        .map(|x| {
            vec![
                x.device.to_string(),
                x.state.label().to_string(),
                gib(x.fill_bytes),
                x.file_resident_bytes.map_or("-".into(), gib),
                gib(x.device_free_bytes),
                gib(x.mem_available_bytes),
                gib(x.cached_bytes),
                x.alloc_first_ms.map_or("-".into(), |v| format!("{v:.2}")),
                x.probe_device_max_bytes.map_or("-".into(), gib),
            ]
        })
        .collect();
    let t = p.table(
        "What the page cache costs (GiB = 2^30 bytes)",
        &[
            "device",
            "state",
            "fill (GiB)",
            "file in cache (GiB)",
            "cuMemGetInfo free",
            "MemAvailable",
            "Cached",
            "first device alloc (ms)",
            "largest device alloc (GiB)",
        ],
        body,
    );
    for n in &c.notes {
        findings.push(format!("{t}: {n}"));
    }
}
