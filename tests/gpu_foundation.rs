//! GPU tests of the foundation: every kernel verified with fresh random values on a poisoned
//! buffer at 1 GiB and at an odd size; `check` catches a planted error; `info` agrees with
//! nvidia-smi; a driver error names its call and the process goes on. Each test skips with one
//! line on machines without a GPU (fails under CUMEMLAB_REQUIRE_GPU=1).

mod common;

use cumemlab::experiments::selftest::{ODD_BYTES, verify_kernels};
use cumemlab::memory::{AllocOptions, Strategy, allocate};
use cumemlab::units::GIB;

#[test]
fn kernels_verify_at_1gib_and_an_odd_size() {
    let Some(gpu) = common::gpu_or_skip("kernels_verify_at_1gib_and_an_odd_size") else {
        return;
    };
    let page = cumemlab::host::facts::page_size();
    // CUMEMLAB_TEST_BYTES shrinks the large size for runs under compute-sanitizer.
    let big = std::env::var("CUMEMLAB_TEST_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(GIB);
    for bytes in [big, ODD_BYTES, 4097, 13] {
        assert!(
            bytes == big || bytes % 16 != 0,
            "odd sizes are not multiples of 16"
        );
        let a = allocate(
            &gpu.ctx,
            &gpu.stream,
            Strategy::Device,
            bytes,
            &AllocOptions::default(),
        )
        .unwrap();
        // Twice: two fresh seeds, the second over the first's data.
        for _ in 0..2 {
            let checks = verify_kernels(&gpu, a.span(), page).unwrap();
            assert!(checks.len() >= 5);
            for c in &checks {
                assert!(c.passed, "{} at {bytes} bytes: {}", c.kernel, c.detail);
            }
        }
        // The odd sizes also with a page stride that does not divide them.
        let checks = verify_kernels(&gpu, a.span(), 12).unwrap();
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    }
}

#[test]
fn check_counts_every_planted_error() {
    let Some(gpu) = common::gpu_or_skip("check_counts_every_planted_error") else {
        return;
    };
    let bytes = 64 << 20;
    let a = allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        bytes,
        &AllocOptions::default(),
    )
    .unwrap();
    let seed = rand::random::<u32>();
    gpu.kernels.fill(&gpu.stream, a.span(), seed).unwrap();
    let offsets = [0u64, 4, 1 << 20, bytes - 4];
    for off in offsets {
        gpu.kernels
            .upload(a.span().slice(off, 4).unwrap(), &[0xde, 0xad, 0xbe, 0xef])
            .unwrap();
    }
    let (_, c) = gpu.kernels.check(&gpu.stream, a.span(), seed).unwrap();
    // A planted value could equal the pattern by chance (1 in 2^32 per word); count those out.
    let coincide = offsets
        .iter()
        .filter(|o| {
            cumemlab::driver::host_pattern_word(*o / 4, seed)
                == u32::from_le_bytes([0xde, 0xad, 0xbe, 0xef])
        })
        .count() as u64;
    assert_eq!(c.mismatches, offsets.len() as u64 - coincide);
    assert_eq!(c.first_bad_offset, Some(0));
    // The wrong seed makes everything wrong.
    let (_, c) = gpu.kernels.check(&gpu.stream, a.span(), seed ^ 1).unwrap();
    assert!(c.mismatches > bytes / 4 - 16);
}

#[test]
fn impossible_allocation_is_a_named_driver_error_and_the_process_goes_on() {
    let Some(gpu) = common::gpu_or_skip(
        "impossible_allocation_is_a_named_driver_error_and_the_process_goes_on",
    ) else {
        return;
    };
    let total = gpu.device.total_mem().unwrap();
    let err = match allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        total * 4,
        &AllocOptions::default(),
    ) {
        Ok(_) => panic!("allocating 4x the card's memory succeeded"),
        Err(e) => e,
    };
    let d = err.driver_error().expect("a driver error");
    assert_eq!(d.call, "cuMemAlloc_v2");
    assert_eq!(d.name, "CUDA_ERROR_OUT_OF_MEMORY");
    assert!(err.is_out_of_memory());
    assert!(
        err.to_string()
            .contains("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY"),
        "{err}"
    );
    // The context is still usable.
    let a = allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        1 << 20,
        &AllocOptions::default(),
    )
    .unwrap();
    gpu.kernels.fill(&gpu.stream, a.span(), 3).unwrap();
    let (_, c) = gpu.kernels.check(&gpu.stream, a.span(), 3).unwrap();
    assert_eq!(c.mismatches, 0);
}

#[test]
fn info_matches_nvidia_smi() {
    let Some(gpu) = common::gpu_or_skip("info_matches_nvidia_smi") else {
        return;
    };
    let Ok(out) = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
            "-i",
            "0",
        ])
        .output()
    else {
        common::skip("info_matches_nvidia_smi: nvidia-smi is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim().rsplitn(2, ',');
    let mib: u64 = parts.next().unwrap().trim().parse().unwrap();
    let name = parts.next().unwrap().trim().to_string();
    assert_eq!(gpu.name, name);
    let total = gpu.device.total_mem().unwrap();
    // nvidia-smi counts the whole framebuffer; the driver keeps a reserve out of
    // cuDeviceTotalMem (seen: 616 MiB of 143,771 MiB on an H200, 479 MiB of 81,559 MiB on an
    // H100). The same card: within 1%.
    let smi = mib << 20;
    assert!(
        total <= smi && smi - total < smi / 100,
        "cuDeviceTotalMem {total} B vs nvidia-smi {mib} MiB"
    );
    // And the binary's JSON says the same.
    let json = common::run(&["info", "--json"]);
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["environment"]["devices"][0]["name"],
        serde_json::Value::String(name)
    );
    assert_eq!(
        v["environment"]["devices"][0]["total_bytes"].as_u64(),
        Some(total)
    );
}
