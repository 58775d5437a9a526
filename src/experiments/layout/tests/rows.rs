//! Unit tests of the typed rows: the totals, the summary, the tables and the findings from
//! synthetic rows, and the rows' on-disk shape.

use super::super::render::overhead_reason;
use super::super::run::snapshot_row;
use super::super::*;
use crate::experiments::env::Environment;
use crate::host::Accounting;
use crate::report::sink::to_json;
use crate::units::{GIB, KIB, MIB};

fn snap(device_free: u64, mem_available: u64) -> Accounting {
    Accounting {
        device_free: Some(device_free),
        mem_available,
        ..Default::default()
    }
}

#[test]
fn totals_arithmetic() {
    let req = [3 * MIB, KIB, 4 * MIB];
    let t = Totals::compute(
        &req,
        &req,
        &snap(10 * GIB, 100 * GIB),
        &snap(10 * GIB - 10 * MIB, 100 * GIB - MIB),
    );
    assert_eq!(t.tensors, 3);
    assert_eq!(t.requested_bytes, 7 * MIB + KIB);
    assert_eq!(t.device_free_drop_bytes, (10 * MIB) as i64);
    assert_eq!(t.mem_available_drop_bytes, MIB as i64);
    assert_eq!(t.overhead_bytes, (3 * MIB - KIB) as i64);
    assert!(
        (t.overhead_pct - 100.0 * (3 * MIB - KIB) as f64 / (7 * MIB + KIB) as f64).abs() < 1e-9
    );
    assert_eq!(t.rounding_2mib_bytes, MIB + (2 * MIB - KIB));
    // A row round-trips through its on-disk shape.
    let row = LayoutRow::new(0, Strategy::Device, RowData::Total(t));
    let back: LayoutRow = serde_json::from_slice(&to_json(&row).unwrap()).unwrap();
    assert_eq!(back, row);
}

/// The rows of a small run, as `run` writes them.
fn synthetic(n: usize) -> Vec<LayoutRow> {
    let st = Strategy::Device;
    let mut rows = vec![snapshot_row(
        0,
        st,
        Moment::Baseline,
        &snap(80 * GIB, 500 * GIB),
    )];
    let sizes: Vec<u64> = (0..n as u64).map(|i| (i % 3 + 1) * 256 * MIB).collect();
    for (i, &b) in sizes.iter().enumerate() {
        let a = AllocRow {
            index: i as u64,
            name: format!("layer.{i}.w"),
            component: if i % 2 == 0 { "w".into() } else { "v".into() },
            dtype: Some("bf16".into()),
            elements: Some(b / 2),
            bytes: b,
            mapped_bytes: b,
            alloc_ms: 0.1 + i as f64 / 100.0,
            ..AllocRow::default()
        };
        rows.push(LayoutRow::new(0, st, RowData::Alloc(a)));
    }
    let total: u64 = sizes.iter().sum();
    let after = snap(80 * GIB - total - 4 * MIB, 500 * GIB - MIB);
    rows.push(snapshot_row(0, st, Moment::AfterAlloc, &after));
    let t = Totals::compute(&sizes, &sizes, &snap(80 * GIB, 500 * GIB), &after);
    rows.push(LayoutRow::new(0, st, RowData::Total(t)));
    let pick = FreePattern::EveryOther.select(&sizes);
    let freed = |i: usize| FreedRow {
        index: i as u64,
        name: Some(format!("layer.{i}.w")),
        component: None,
        bytes: sizes[i],
        free_ms: 0.05,
    };
    for &i in &pick {
        rows.push(LayoutRow::new(0, st, RowData::Free(freed(i))));
    }
    rows.push(LayoutRow::new(
        0,
        st,
        RowData::Fragmentation(Fragmentation {
            pattern: "every-other".into(),
            freed_tensors: pick.len() as u64,
            freed_bytes: pick.iter().map(|&i| sizes[i]).sum(),
            largest_freed_bytes: 768 * MIB,
            device_free_bytes: 70 * GIB,
            mem_available_bytes: 499 * GIB,
            free_total_bytes: 70 * GIB,
            free_total_of: "cuMemGetInfo free".into(),
            bound_bytes: 70 * GIB,
            resolution_bytes: 64 * MIB,
            largest_bytes: 69 * GIB,
            attempts: 11,
            reached_bound: false,
        }),
    ));
    for i in (0..n).filter(|i| !pick.contains(i)) {
        rows.push(LayoutRow::new(0, st, RowData::Cleanup(freed(i))));
    }
    rows.push(snapshot_row(
        0,
        st,
        Moment::AfterCleanup,
        &snap(80 * GIB - 2 * MIB, 500 * GIB),
    ));
    rows
}

#[test]
fn summary_tables_and_findings_from_rows() {
    let rows = synthetic(40);
    let s = summarize(&rows);
    assert_eq!(s.allocated, 40);
    assert_eq!(s.freed, 40);
    let t = s.totals.unwrap();
    assert_eq!(t.overhead_bytes, (4 * MIB) as i64);
    let f = s.fragmentation.clone().unwrap();
    assert_eq!((f.largest_bytes, f.freed_tensors), (69 * GIB, 20));
    assert!((f.largest_pct_of_free() - 100.0 * 69.0 / 70.0).abs() < 1e-9);
    assert_eq!(s.residual_bytes, Some((2 * MIB) as i64));

    let doc = LayoutDoc {
        envelope: crate::report::envelope::Envelope::start("layout").finish(false),
        environment: Environment::host_only("test".into()),
        notes: {
            let mut n = vec!["synthetic layout".to_string()];
            n.extend(findings(&rows));
            n
        },
        rows: rows.clone(),
        skipped: vec!["tensor 40 `x` (1 GiB): refused: reasons".into()],
        error: None,
    };
    let text = render(&doc);
    for want in [
        "synthetic layout",
        "layer.0.w",
        "layer.9.w",
        "25 more",
        "layer.39.w",
        "by component",
        "| w ",
        "totals",
        "requested (40 tensors)",
        "drop in cuMemGetInfo free",
        "fragmentation",
        "freed by `every-other` (20 tensors)",
        "98.6% of free",
        "after cleanup: cuMemGetInfo free is 2 MiB below the baseline",
        "What this shows:",
        "larger than the largest tensor freed",
        "Skipped:",
    ] {
        assert!(text.contains(want), "render lacks {want:?}:\n{text}");
    }
    assert!(
        !text.contains("layer.20.w"),
        "the middle of a long list is elided"
    );
    // Each finding once, under "What this shows", not among the notes at the top.
    let f = findings(&rows);
    assert!(
        f.iter().any(|s| s.contains("overhead of +4.0 MiB")),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|s| s.contains("did not come out of host memory")),
        "{f:?}"
    );
    for s in &f {
        assert_eq!(text.matches(s.as_str()).count(), 1, "{s}");
    }
    // One row type to JSON and CSV.
    let csv = String::from_utf8(crate::report::sink::to_csv(&rows).unwrap()).unwrap();
    assert!(csv.starts_with("device,strategy,phase,index,name,component,dtype,elements,bytes,"));
    assert_eq!(csv.lines().count(), rows.len() + 1);
    let back: Vec<LayoutRow> = serde_json::from_slice(&to_json(&rows).unwrap()).unwrap();
    assert_eq!(back.len(), rows.len());
    assert_eq!(summarize(&back), s, "the summary reads back from JSON");
}

#[test]
fn the_overhead_is_explained_against_2mib_rounding() {
    let t = |drop: i64, rounding: u64| {
        let requested = 10 * GIB;
        Totals {
            tensors: 100,
            requested_bytes: requested,
            mapped_bytes: requested,
            device_free_drop_bytes: drop,
            mem_available_drop_bytes: 0,
            overhead_bytes: drop - requested as i64,
            overhead_pct: 0.0,
            rounding_2mib_bytes: rounding,
        }
    };
    let g = (10 * GIB) as i64;
    let m = MIB as i64;
    let why = |d, r| overhead_reason(&t(d, r)).unwrap_or_default();
    assert!(
        why(g - m / 2, 100 * MIB).contains("less than requested"),
        "{}",
        why(g - m / 2, 100 * MIB)
    );
    assert!(why(g + 100 * m, 100 * MIB).contains("matches rounding"));
    assert!(why(g + 101 * m, 100 * MIB).contains("matches rounding"));
    assert!(why(g + 20 * m, 100 * MIB).contains("more tightly than whole 2 MiB pages"));
    assert!(why(g + 300 * m, 100 * MIB).contains("exceeds 2 MiB rounding by 200.0 MiB"));
    // Host memory or untouched managed memory: cuMemGetInfo did not move, nothing to explain.
    assert_eq!(overhead_reason(&t(0, 100 * MIB)), None);
}

#[test]
fn untouched_managed_memory_is_not_called_device_overhead() {
    let mut rows = synthetic(6);
    for r in &mut rows {
        r.strategy = Strategy::Managed;
        match &mut r.data {
            RowData::Total(t) => {
                t.device_free_drop_bytes = 0;
                t.overhead_bytes = -(t.requested_bytes as i64);
            }
            RowData::Fragmentation(f) => {
                f.reached_bound = true;
                f.largest_bytes = f.bound_bytes / (64 * MIB) * (64 * MIB);
            }
            _ => {}
        }
    }
    let f = findings(&rows).join("\n");
    assert!(f.contains("do not sit in device memory (yet)"), "{f}");
    assert!(f.contains("run with --touch"), "{f}");
    assert!(f.contains("reserve address space, not memory"), "{f}");
    assert!(!f.contains("an overhead of"), "{f}");
    assert!(!f.contains("nothing was lost to fragmentation"), "{f}");
}
