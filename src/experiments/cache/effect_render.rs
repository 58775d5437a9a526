//! The human side of `cache effect`: the states side by side and the findings written from the
//! measured numbers. Pure: rows in, text out.

use super::*;
use crate::report::new_table;
use crate::units::{MIB, fmt_bytes, fmt_gib};

fn opt_gib(v: Option<u64>) -> String {
    v.map_or("-".into(), |b| fmt_gib(b as f64))
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// The table of states and the sentences written from it.
pub fn render_effect(doc: &EffectDoc) -> String {
    let mut out = String::new();
    let rows = &doc.rows;
    let mut devices: Vec<i32> = rows.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    for dev in devices {
        let d = doc.environment.devices.iter().find(|d| d.ordinal == dev);
        let arch = d.map(|d| d.architecture);
        let rs: Vec<&EffectRow> = rows.iter().filter(|r| r.device == dev).collect();
        let Some(r0) = rs.first() else { continue };
        out.push_str(&format!(
            "device {dev}: {} ({}); fill {}, timed allocation {}\n\n",
            d.map_or("?", |d| d.name.as_str()),
            arch.map_or("?", |a| a.label()),
            fmt_bytes(r0.fill_bytes),
            fmt_bytes(r0.alloc_bytes)
        ));
        let mut t = new_table(&[
            "state",
            "file in cache, GiB",
            "cuMemGetInfo free, GiB",
            "MemFree, GiB",
            "MemAvailable, GiB",
            "Cached, GiB",
            "device alloc first / median, ms",
            "registered file (mode): register ms / GPU read GB/s",
            "pageable file: GPU read GB/s",
            "probe device max, GiB (stop)",
        ]);
        for r in &rs {
            t.add_row(vec![
                r.state.label().to_string(),
                opt_gib(r.file_resident_bytes),
                fmt_gib(r.device_free_bytes as f64),
                fmt_gib(r.mem_free_bytes as f64),
                fmt_gib(r.mem_available_bytes as f64),
                fmt_gib(r.cached_bytes as f64),
                format!(
                    "{} / {}",
                    opt_ms(r.alloc_first_ms),
                    opt_ms(r.alloc_ms_median)
                ),
                match (r.registered_register_ms, r.registered_read_gbps) {
                    (Some(ms), Some(g)) => format!(
                        "({}) {ms:.1} / {g:.1}",
                        r.registered_mode.as_deref().unwrap_or("?")
                    ),
                    _ => "-".into(),
                },
                r.pageable_read_gbps
                    .map_or("-".into(), |g| format!("{g:.1}")),
                match (r.probe_device_max_bytes, r.probe_stop_reason) {
                    (Some(b), Some(s)) => format!("{} ({})", fmt_gib(b as f64), s.phrase()),
                    _ => "-".into(),
                },
            ]);
        }
        out.push_str(&format!(
            "what the page cache costs, and what dropping it buys (GiB = 2^30 bytes, GB/s = 1e9 bytes/s)\n{t}\n\n"
        ));
        out.push_str("What this shows:\n");
        for f in effect_findings(rows, dev, arch.is_some_and(|a| a.is_unified())) {
            out.push_str(&format!("- {f}\n"));
        }
        out.push('\n');
    }
    out.push_str(&crate::report::bullet_section("Skipped", &doc.skipped));
    for n in &doc.notes {
        out.push_str(&format!("{n}\n"));
    }
    out
}

/// Sentences written from the measured states of one device.
pub fn effect_findings(rows: &[EffectRow], dev: i32, unified: bool) -> Vec<String> {
    let find = |s: EffectState| rows.iter().find(|r| r.device == dev && r.state == s);
    let mut out = Vec::new();
    let (Some(filled), Some(evicted)) = (
        find(EffectState::CacheFilled),
        find(EffectState::AfterEvict),
    ) else {
        return out;
    };
    let d = |a: u64, b: u64| signed(b as i64 - a as i64);
    let base = find(EffectState::BeforeFill);
    if let Some(b) = base {
        out.push(format!(
            "Filling the cache with {} moved Cached by {}, MemAvailable by {} and cuMemGetInfo free by {}{}.",
            fmt_bytes(filled.fill_bytes),
            d(b.cached_bytes, filled.cached_bytes),
            d(b.mem_available_bytes, filled.mem_available_bytes),
            d(b.device_free_bytes, filled.device_free_bytes),
            if unified {
                ": on unified memory cuMemGetInfo free is MemFree, so the cache looks like memory in use"
            } else {
                ": on a discrete card the page cache does not touch the card's memory"
            }
        ));
    }
    out.push(format!(
        "Evicting the file moved Cached by {}, MemFree by {} and cuMemGetInfo free by {}; MemAvailable moved by {} (the kernel already counted the cache as reclaimable).",
        d(filled.cached_bytes, evicted.cached_bytes),
        d(filled.mem_free_bytes, evicted.mem_free_bytes),
        d(filled.device_free_bytes, evicted.device_free_bytes),
        d(filled.mem_available_bytes, evicted.mem_available_bytes)
    ));
    if let (Some(a), Some(b)) = (
        filled.probe_device_max_bytes,
        evicted.probe_device_max_bytes,
    ) {
        out.push(format!(
            "The largest device allocation was {} with the cache filled and {} after evicting ({}).",
            fmt_bytes(a),
            fmt_bytes(b),
            if unified {
                "the kernel reclaims the cache for GPU allocations, so the cache costs capacity only when it cannot be reclaimed"
            } else {
                "the cache does not limit device memory on a discrete card"
            }
        ));
        if let (Some(r0), Some(r1)) = (
            filled.file_resident_bytes,
            filled.file_resident_after_probe_bytes,
        ) && r1 + 256 * MIB < r0
        {
            out.push(format!(
                "The probe's allocations made the kernel drop {} of the filled file's cache.",
                fmt_bytes(r0 - r1)
            ));
        }
    }
    if let (Some(a), Some(b)) = (filled.alloc_first_ms, evicted.alloc_first_ms) {
        out.push(format!(
            "The first {} device allocation took {:.2} ms with the cache filled and {:.2} ms after evicting (median of the following runs: {} and {} ms).",
            fmt_bytes(filled.alloc_bytes),
            a,
            b,
            opt_ms(filled.alloc_ms_median),
            opt_ms(evicted.alloc_ms_median)
        ));
    }
    if let (Some(w), Some(c)) = (
        filled.registered_register_ms,
        evicted.registered_register_ms,
    ) {
        out.push(format!(
            "Registering the {} file mapping took {:.1} ms warm and {:.1} ms cold (cuMemHostRegister pins every page, so a cold file is read from disk first); the GPU then read it at {} GB/s warm and {} GB/s cold (pinned pages either way).",
            fmt_bytes(filled.fill_bytes),
            w,
            c,
            filled
                .registered_read_gbps
                .map_or("-".into(), |g| format!("{g:.1}")),
            evicted
                .registered_read_gbps
                .map_or("-".into(), |g| format!("{g:.1}"))
        ));
    }
    if let (Some(w), Some(c)) = (filled.pageable_read_gbps, evicted.pageable_read_gbps) {
        out.push(format!(
            "Read through its pageable mapping, the GPU took the file at {w:.1} GB/s warm and {c:.1} GB/s cold (a cold read faults every page in from disk)."
        ));
    }
    out
}
