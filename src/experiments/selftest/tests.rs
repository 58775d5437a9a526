//! Unit tests of the self-test's pure parts: the CSV rows, the fill sizes, the expected touch
//! mismatches, and the operation and kernel names on disk.

use super::*;
use crate::driver::{host_pattern_byte, host_pattern_word};
use crate::units::{GIB, MIB};

#[test]
fn csv_rows_carry_the_fill_by_size_table() {
    let bw = |op: BandwidthOp, bytes, median, pct| Bandwidth {
        device: 0,
        op,
        bytes,
        gbps: Summary::of(&[median]).unwrap(),
        percent_of_memset: pct,
    };
    let r = SelftestReport {
        device: 0,
        device_name: "gpu".into(),
        checks: vec![],
        bandwidth: vec![bw(BandwidthOp::Fill, 4 * GIB, 4600.0, 101.0)],
        fill_reaches_95_percent_of_memset: true,
        fill_by_size: vec![
            bw(BandwidthOp::Memset, GIB, 4400.0, 100.0),
            bw(BandwidthOp::Fill, GIB, 4500.0, 102.3),
        ],
        all_passed: true,
    };
    let rows = csv_rows(&[r]);
    let kinds: Vec<CsvKind> = rows.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [CsvKind::Bandwidth, CsvKind::FillBySize, CsvKind::FillBySize]
    );
    assert_eq!(rows[1].name, "cuMemsetD32");
    assert_eq!(rows[2].bytes, GIB);
    assert_eq!(rows[2].percent_of_memset, Some(102.3));
    assert_eq!(rows[2].gbps_median, Some(4500.0));
}

#[test]
fn fill_sizes_default_and_chosen() {
    // Defaults: 1, 4, 16 GiB where each is at most a quarter of free memory.
    assert_eq!(
        fill_sizes(None, 139 * GIB).unwrap(),
        vec![GIB, 4 * GIB, 16 * GIB]
    );
    assert_eq!(fill_sizes(None, 20 * GIB).unwrap(), vec![GIB, 4 * GIB]);
    assert!(fill_sizes(None, 2 * GIB).unwrap().is_empty());
    // Chosen: kept as given between 1 MiB and half of free memory, else a usage error.
    assert_eq!(
        fill_sizes(Some(&[2 * GIB, MIB]), 8 * GIB).unwrap(),
        vec![2 * GIB, MIB]
    );
    for bad in [[5 * GIB], [MIB - 1]] {
        let e = fill_sizes(Some(&bad), 8 * GIB).unwrap_err();
        assert!(e.to_string().contains("--fill-sizes"), "{e}");
    }
}

#[test]
fn touch_mismatch_expectation() {
    // 3 pages of 16 bytes over 40 bytes: words at 0 and 16 (16-byte part), then offset 32 in
    // the 8-byte tail: 4 bytes written there.
    let seed = 7;
    let v = host_pattern_word(0, seed); // equal to word 0: no mismatch there
    let n = expected_touch_mismatches(40, 16, v, seed);
    let tail: u64 = (0..4u64)
        .filter(|i| (v >> (8 * i)) as u8 != host_pattern_byte(32 + i, seed))
        .count() as u64;
    assert_eq!(n, u64::from(v != host_pattern_word(4, seed)) + tail);
    // Last page with fewer than 4 bytes left: one byte.
    let n2 = expected_touch_mismatches(34, 32, 0xFFFF_FFFF, seed);
    assert_eq!(
        n2,
        u64::from(0xFFFF_FFFF != host_pattern_word(0, seed))
            + u64::from(0xFF != host_pattern_byte(32, seed))
    );
}

#[test]
fn operation_and_kernel_names_on_disk() {
    for op in BandwidthOp::ALL {
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(json, format!("\"{}\"", op.name()));
        assert_eq!(serde_json::from_str::<BandwidthOp>(&json).unwrap(), op);
        assert!(op == op.name());
    }
    assert_eq!(BandwidthOp::Fill.to_string(), "fill kernel");
    assert_eq!(
        serde_json::to_string(&KernelTest::PlantedError).unwrap(),
        "\"check (planted error)\""
    );
    assert!(serde_json::from_str::<BandwidthOp>("\"fill\"").is_err());
}
