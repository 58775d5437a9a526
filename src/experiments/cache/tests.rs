//! Unit tests of the cache module's pure parts: meminfo arithmetic and explanations from
//! fixtures, the side-by-side table, the default fill, input checks, and the effect findings.

use super::*;
use crate::experiments::probe::StopReason;
use crate::memory::arch::MemoryArchitecture;

fn gb10() -> MemInfo {
    crate::test_support::meminfo("gb10-cache-heavy.txt")
}

#[test]
fn meminfo_arithmetic_on_a_unified_host() {
    let m = gb10();
    // cuMemGetInfo free is MemFree on GB10.
    let r = CacheRow::new(
        CacheState::Now,
        &m,
        Some((0, m.mem_free, m.mem_total, true)),
    );
    assert_eq!(
        r.reclaimable_cache_bytes,
        m.cached - m.shmem + m.buffers,
        "reclaimable = Cached - Shmem + Buffers"
    );
    let hidden = m.mem_available - m.mem_free;
    // 98_566_144 - 24_117_248 KiB = 71 GiB: what cuMemGetInfo hides there.
    assert_eq!(hidden, (98_566_144 - 24_117_248) * 1024);
    let text = explain(&r, Some(MemoryArchitecture::IntegratedUnified), None).join("\n");
    assert!(
        text.contains(&format!("= +{}", fmt_bytes(hidden))),
        "{text}"
    );
    assert!(
        text.contains("is the kernel's MemFree") && text.contains("--evict"),
        "{text}"
    );
    assert!(text.contains("SwapFree"), "{text}");
    let table = render_states(std::slice::from_ref(&r));
    assert!(
        table.contains("MemAvailable - cuMemGetInfo free"),
        "{table}"
    );
    // 71.00 GiB in the table.
    assert!(table.contains("71.00"), "{table}");
}

#[test]
fn explanation_on_a_discrete_card_and_without_gpu() {
    let m = crate::test_support::meminfo("h100-host.txt");
    let r = CacheRow::new(CacheState::Now, &m, Some((0, 79 * GIB, 80 * GIB, false)));
    let t = explain(&r, Some(MemoryArchitecture::Discrete), None).join("\n");
    let table = render_states(std::slice::from_ref(&r));
    assert!(table.contains("| cuMemGetInfo free"), "{table}");
    assert!(
        !table.contains("MemAvailable - cuMemGetInfo free"),
        "meaningless on a discrete card: {table}"
    );
    assert!(
        t.contains("discrete card") && t.contains("79 GiB of 80 GiB"),
        "{t}"
    );
    let host = CacheRow::new(CacheState::Now, &m, None);
    let t = explain(&host, None, Some("--host-only")).join("\n");
    assert!(t.contains("No GPU part (--host-only)"), "{t}");
    let table = render_states(std::slice::from_ref(&host));
    assert!(!table.contains("cuMemGetInfo free |"), "{table}");
}

#[test]
fn side_by_side_with_the_change() {
    let m = gb10();
    let before = CacheRow::new(CacheState::BeforeFill, &m, None);
    let mut m2 = m.clone();
    m2.cached += GIB;
    m2.mem_free -= GIB;
    let after = CacheRow::new(CacheState::AfterFill, &m2, None);
    let t = render_states(&[before, after]);
    let cached_line = t.lines().find(|l| l.starts_with("| Cached")).unwrap();
    assert!(cached_line.contains("+1.00"), "{cached_line}");
    let free_line = t.lines().find(|l| l.starts_with("| MemFree")).unwrap();
    assert!(free_line.contains("-1.00"), "{free_line}");
}

#[test]
fn default_fill_fits_memory_and_disk() {
    assert_eq!(default_effect_fill(100 * GIB, 8 * GIB, 500 * GIB), 4 * GIB);
    // A small host: half of (MemAvailable - headroom), in 256 MiB steps.
    assert_eq!(
        default_effect_fill(13 * GIB, 8 * GIB, 500 * GIB),
        2 * GIB + 512 * MIB
    );
    // A nearly full disk.
    assert_eq!(
        default_effect_fill(100 * GIB, 8 * GIB, 2 * GIB + 100 * MIB),
        GIB
    );
    assert_eq!(default_effect_fill(8 * GIB, 8 * GIB, 500 * GIB), 0);
}

#[test]
fn evict_input_is_checked_first() {
    let dir = tempfile::tempdir().unwrap();
    let e = validate(
        &CacheAction::Evict {
            path: dir.path().join("none"),
            remove: false,
        },
        false,
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("no such file"));
    let e = validate(
        &CacheAction::Evict {
            path: dir.path().to_path_buf(),
            remove: false,
        },
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a regular file"));
    let user = dir.path().join("model.bin");
    std::fs::write(&user, b"weights").unwrap();
    let e = validate(
        &CacheAction::Evict {
            path: user.clone(),
            remove: true,
        },
        false,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("--remove deletes only files made by")
    );
    assert!(user.exists());
    let e = validate(&CacheAction::Drop, false).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(validate(&CacheAction::Drop, true).is_ok());
}

fn row(state: EffectState, free: u64, cached: u64, avail: u64) -> EffectRow {
    EffectRow {
        device: 0,
        state,
        fill_bytes: 4 * GIB,
        file_resident_bytes: None,
        device_free_bytes: free,
        device_total_bytes: 128 * GIB,
        mem_free_bytes: free,
        mem_available_bytes: avail,
        cached_bytes: cached,
        swap_free_bytes: 0,
        alloc_bytes: GIB,
        alloc_first_ms: Some(5.0),
        alloc_ms_median: Some(1.0),
        alloc_ms_min: Some(1.0),
        alloc_ms_max: Some(1.0),
        registered_mmap_ms: Some(0.1),
        registered_register_ms: Some(400.0),
        registered_read_ms: Some(100.0),
        registered_read_gbps: Some(40.0),
        registered_mode: Some("read-only".into()),
        pageable_read_ms: None,
        pageable_read_gbps: None,
        probe_device_max_bytes: Some(100 * GIB),
        probe_stop_reason: Some(StopReason::SafetyCeiling),
        probe_ms: Some(1000.0),
        file_resident_after_probe_bytes: None,
        alloc_after_probe_ms: None,
    }
}

#[test]
fn effect_findings_from_numbers() {
    let b = row(EffectState::BeforeFill, 50 * GIB, 2 * GIB, 110 * GIB);
    let f = row(EffectState::CacheFilled, 46 * GIB, 6 * GIB, 110 * GIB);
    let mut e = row(EffectState::AfterEvict, 50 * GIB, 2 * GIB, 110 * GIB);
    e.registered_register_ms = Some(2000.0);
    let t = effect_findings(&[b, f, e], 0, true).join("\n");
    assert!(
        t.contains("moved Cached by +4 GiB") && t.contains("cuMemGetInfo free by -4 GiB"),
        "{t}"
    );
    assert!(t.contains("cache looks like memory in use"), "{t}");
    assert!(
        t.contains("Evicting the file moved Cached by -4 GiB"),
        "{t}"
    );
    assert!(t.contains("400.0 ms warm and 2000.0 ms cold"), "{t}");
    let csv = String::from_utf8(
        crate::report::sink::to_csv(&[row(EffectState::AfterEvict, 1, 2, 3)]).unwrap(),
    )
    .unwrap();
    assert!(csv.starts_with("device,state,fill_bytes,"), "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("0,after_evict,"),
        "{csv}"
    );
}
