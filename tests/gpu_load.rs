//! On a GPU host: the checksum kernel equals its host mirror (tails included) and catches one
//! changed byte, and the copy kernel moves every byte at any alignment; the lab's load step moves a synthetic llama-shaped file into device memory by
//! every supported path, cold and warm, with the GPU checksum equal to the file's for every run,
//! skipped paths named with a reason, and the copy matrix measured; `load` through the binary
//! writes rows whose checksums match and leaves no synthetic file behind.

mod common;

use cumemlab::driver::load_kernels::{LoadKernels, host_checksum};
use cumemlab::experiments::load::{self, PATHS};
use cumemlab::memory::safety::DEFAULT_HEADROOM;
use cumemlab::memory::{AllocOptions, Strategy, allocate};
use cumemlab::units::MIB;

#[test]
fn checksum_kernel_matches_the_host_and_catches_a_changed_byte() {
    let Some(gpu) =
        common::gpu_or_skip("checksum_kernel_matches_the_host_and_catches_a_changed_byte")
    else {
        return;
    };
    let n = 3 * MIB as usize + 13; // not a multiple of 16: the tail words count too
    let data: Vec<u8> = (0..n as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let buf = allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        n as u64,
        &AllocOptions::default(),
    )
    .unwrap();
    gpu.kernels.upload(buf.device_ptr(), &data).unwrap();
    let k = LoadKernels::new(&gpu.kernels).unwrap();
    for len in [n, n - 5, 16, 7, 0] {
        let (_, sum) = k
            .checksum(&gpu.stream, buf.device_ptr(), len as u64)
            .unwrap();
        assert_eq!(sum, host_checksum(&data[..len], 0), "length {len}");
    }
    // The copy kernel at aligned, 8-byte and odd offsets moves every byte.
    let out = allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        n as u64,
        &AllocOptions::default(),
    )
    .unwrap();
    for (d, s) in [(0usize, 0usize), (8, 24), (3, 5)] {
        let len = n - 32;
        k.copy(
            &gpu.stream,
            out.device_ptr() + d as u64,
            buf.device_ptr() + s as u64,
            len as u64,
        )
        .unwrap();
        let mut back = vec![0u8; len];
        gpu.kernels
            .download(out.device_ptr() + d as u64, &mut back)
            .unwrap();
        assert!(back == data[s..s + len], "copy at dst+{d}, src+{s}");
    }
    gpu.kernels
        .upload(buf.device_ptr() + 1_000_000, &[data[1_000_000] ^ 1])
        .unwrap();
    let (_, changed) = k.checksum(&gpu.stream, buf.device_ptr(), n as u64).unwrap();
    assert_ne!(changed, host_checksum(&data, 0));
}

#[test]
fn every_supported_path_loads_the_file_with_equal_checksums() {
    let Some(gpu) = common::gpu_or_skip("every_supported_path_loads_the_file_with_equal_checksums")
    else {
        return;
    };
    let dir = tempfile::tempdir_in(cumemlab::host::cache::default_fill_dir()).unwrap();
    let size = 96 * MIB;
    let step = load::lab_step(&gpu, dir.path(), size, 4 * MIB, 2, DEFAULT_HEADROOM).unwrap();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the synthetic file is removed"
    );
    // Every path either ran (cold and warm, twice each) or was skipped with its reason.
    for p in PATHS {
        let ran: Vec<_> = step.rows.iter().filter(|r| r.path == p.key).collect();
        let skipped = step
            .skipped
            .iter()
            .find(|s| s.starts_with(&format!("{}: ", p.key)));
        match (ran.len(), skipped) {
            (4, None) => {}
            (0, Some(s)) => assert!(s.len() > p.key.len() + 10, "a reason: {s}"),
            other => panic!("{}: {other:?}; skipped {:?}", p.key, step.skipped),
        }
    }
    for must in ["mmap-copy", "read-copy", "pinned-staging"] {
        assert!(
            step.rows.iter().any(|r| r.path == must),
            "{must} runs on every GPU"
        );
    }
    for r in &step.rows {
        assert!(r.checksum_ok, "{r:?}");
        assert!(
            r.data_bytes > size * 99 / 100 && r.data_bytes < size * 101 / 100,
            "{r:?}"
        );
        assert!(
            r.wall_ms > 0.0 && r.first_tensor_ms > 0.0 && r.first_tensor_ms <= r.wall_ms + 1.0,
            "{r:?}"
        );
        assert!(
            r.peak_rss_bytes > 0 && r.min_mem_available_bytes > 0,
            "{r:?}"
        );
        if r.state == "warm" {
            assert!(
                r.resident_before_bytes >= r.data_bytes,
                "a warm file is in the page cache: {r:?}"
            );
        } else {
            assert!(
                r.resident_before_bytes < r.data_bytes / 2,
                "a cold file was evicted: {r:?}"
            );
        }
        if r.path == "pinned-staging" || r.path == "registered-file" {
            assert!(r.pinned_bytes > 0, "{r:?}");
        }
    }
    // The copy matrix: pageable and pinned both ways, sync and async, and the device baseline.
    for (dir, host) in [
        ("HtoD", "pageable"),
        ("HtoD", "pinned"),
        ("DtoH", "pinned"),
        ("DtoD", "device"),
    ] {
        assert!(
            step.copies
                .iter()
                .any(|c| c.direction == dir && c.host_memory == host && c.gbps_median > 0.0),
            "{dir} {host}: {:?}",
            step.copies
        );
    }
    assert!(
        step.copies
            .iter()
            .any(|c| c.piece_bytes == 4096 && c.pieces > 1)
    );
    assert!(!step.findings.is_empty());
}

#[test]
fn load_through_the_binary_writes_rows_and_removes_its_file() {
    let Some(gpu) = common::gpu_or_skip("load_through_the_binary_writes_rows_and_removes_its_file")
    else {
        return;
    };
    let lock = gpu.into_lock();
    let dir = tempfile::tempdir_in(cumemlab::host::cache::default_fill_dir()).unwrap();
    let d = dir.path().to_str().unwrap();
    let o = common::run_env(
        &[
            "load",
            "--size",
            "32MiB",
            "--repeat",
            "1",
            "--paths",
            "mmap-copy,pinned-staging",
            "--dir",
            d,
            "--json",
        ],
        &[(common::LOCK_HELD_ENV, "1")],
    );
    drop(lock);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "two paths, cold and warm, once: {doc}");
    assert!(rows.iter().all(|r| r["checksum_ok"] == true), "{doc}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
