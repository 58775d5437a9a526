//! On a GPU host: "who sees my allocation" (`info --who-sees`) reports, for each strategy, the
//! accounting sources' changes, and the ones that must move do (device memory in cuMemGetInfo,
//! pinned host memory in MemAvailable); a file registered for the GPU says which mode it used,
//! and that mode follows the READ_ONLY_HOST_REGISTER_SUPPORTED attribute. A GB10 will also run
//! the pressure guard before every allocation here.

mod common;

use cumemlab::experiments::visibility;
use cumemlab::memory::safety::DEFAULT_HEADROOM;
use cumemlab::memory::{AllocOptions, Strategy, allocate};
use cumemlab::units::{GIB, MIB};

#[test]
fn who_sees_device_and_pinned_memory() {
    let Some(gpu) = common::gpu_or_skip("who_sees_device_and_pinned_memory") else {
        return;
    };
    let size = GIB;
    let w = visibility::run(&gpu, size, DEFAULT_HEADROOM).expect("who-sees runs");
    let row = |st: &str, stage: &str| {
        w.rows
            .iter()
            .find(|r| r.strategy == st && r.stage == stage)
            .unwrap_or_else(|| panic!("no {st} {stage} row; skipped: {:?}", w.skipped))
    };
    // Device memory: cuMemGetInfo free falls by at least the size at allocation (2 MiB slack for
    // the driver's rounding of other processes' changes is not given: the call takes it all).
    let d = row("device", "alloc");
    assert!(
        d.delta_cumemgetinfo_free_bytes <= -((size - 2 * MIB) as i64),
        "{d:?}"
    );
    // Pinned host memory is populated at allocation: MemAvailable falls by at least half the size
    // (other processes move it too, hence the margin).
    let p = row("pinned", "alloc");
    assert!(p.delta_mem_available_bytes <= -((size / 2) as i64), "{p:?}");
    // Every supported strategy has both stages, and every skip has a reason.
    for r in &w.rows {
        assert!(r.stage == "alloc" || r.stage == "first_touch", "{r:?}");
        assert_eq!(r.bytes, size);
    }
    for s in &w.skipped {
        assert!(s.contains(':'), "a skip says why: {s}");
    }
    let t = visibility::render(&w);
    assert!(
        t.contains("cgroup memory.current") && t.contains("first GPU touch"),
        "{t}"
    );
    // Through the binary: the same table.
    let o = common::run(&["info", "--who-sees", "256MiB"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("Who sees an allocation of 256 MiB"), "{out}");
}

#[test]
fn a_registered_file_reports_its_mode() {
    let Some(gpu) = common::gpu_or_skip("a_registered_file_reports_its_mode") else {
        return;
    };
    if Strategy::Registered.supported(&gpu.attrs).is_err() {
        common::skip("a_registered_file_reports_its_mode: cuMemHostRegister not supported");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![3u8; (64 * MIB) as usize]).unwrap();
    let opts = AllocOptions {
        file: Some(path),
        ..AllocOptions::default()
    };
    let a = match allocate(&gpu.ctx, &gpu.stream, Strategy::Registered, 64 * MIB, &opts) {
        Ok(a) => a,
        Err(e) => {
            // Only a driver that refuses registration outright may end here, with its reason.
            let d = e.driver_error().expect("a driver refusal");
            assert!(d.name.contains("NOT_SUPPORTED"), "{e}");
            common::skip(&format!("a_registered_file_reports_its_mode: {e}"));
            return;
        }
    };
    let mode = a.registration_mode().expect("registered reports a mode");
    let ro = gpu.attrs.get("read_only_host_register_supported") == 1;
    if ro {
        assert!(mode == "read-only" || mode == "private-copy", "{mode}");
    } else {
        assert_eq!(mode, "private-copy");
    }
    assert!(!a.writable());
    // The GPU reads the file's bytes through the registration.
    let (_, sum) = gpu.kernels.read(&gpu.stream, a.span()).unwrap();
    assert!(sum > 0, "the registered file is readable from the GPU");
    a.free().unwrap();
}
