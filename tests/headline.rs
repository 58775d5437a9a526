//! The headline table ("what memory costs on this machine", issue 16), without a GPU: rendered
//! from the committed H200 lab results (`tests/fixtures/results/h200-2026-11-26-lab-old-build/results.json`) and from
//! a GB10-shaped fixture that is CONSTRUCTED here (made-up numbers with the shape of a unified-
//! memory machine: `pageable` reachable by the GPU, every host strategy at near device bandwidth,
//! a probe that ends in an out-of-memory failure; not a measurement). Every numeric cell is
//! checked against a value the test computes itself from the raw JSON rows (its own least-squares
//! formula, its own per-GiB arithmetic), to the digits printed. The "use it when" sentence must
//! change when the numbers do, the table must open report.md/report.html before the findings, and
//! no percentage next to a threshold may read as if on the other side of it.

mod common;
mod headline_support;

use headline_support::*;

#[test]
fn h200_every_cell_equals_the_value_computed_from_results_json() {
    let r = h200();
    let v = h200_json();
    let hs = r.headlines();
    assert_eq!(hs.len(), 1);
    let sweep = v["sweep"]["rows"].as_array().unwrap();
    let probe = v["probe"]["rows"].as_array().unwrap();
    let n = check_table(&hs[0], sweep, Some(probe));
    // 8 strategies, each with at least alloc (3), fixed (1), fill and read (3 or more each).
    assert!(n >= 8 * 10, "only {n} numbers checked");
    // The strategy the H200 cannot use is listed with its reason, not as a row.
    assert!(hs[0].rows.iter().all(|r| r.strategy != "pageable"));
    assert_eq!(hs[0].skipped.len(), 1);
    assert!(
        hs[0].skipped[0].starts_with("pageable: ")
            && hs[0].skipped[0].contains("PAGEABLE_MEMORY_ACCESS = 0"),
        "{:?}",
        hs[0].skipped
    );
    let ceil = hs[0].ceiling.as_ref().unwrap();
    assert!(ceil.what.starts_with("cuMemsetD32 at 34.8 GiB"), "{ceil:?}");
}

#[test]
fn gb10_shaped_fixture_every_cell_equals_the_value_computed_from_its_rows() {
    let (sweep, probe, support) = gb10_fixture();
    let h = gb10_headline(&sweep, &probe, &support);
    let n = check_table(&h, &sweep, Some(&probe));
    assert!(n >= 4 * 10, "only {n} numbers checked");
    assert_eq!(
        h.skipped,
        vec!["vmm: constructed: this fixture leaves vmm out to show a skipped line".to_string()]
    );
    // The rules on this shape: device populates at allocation; the others fault on first touch;
    // pageable and managed allocate for almost nothing; the device figure is a real limit.
    let by = |st: &str| h.rows.iter().find(|r| r.strategy == st).unwrap();
    assert!(
        by("pageable")
            .use_when
            .contains("allocations must be cheapest"),
        "{}",
        by("pageable").use_when
    );
    assert!(!by("managed").use_when.contains("cheapest"));
    assert!(by("pinned").use_when.contains("allocated once and reused"));
    assert!(
        by("device")
            .use_when
            .contains("one allocation must be as large as possible (104.25 GiB"),
        "{}",
        by("device").use_when
    );
    assert!(!by("device").use_when.contains("stopped before a failure"));
    // CPU first touch: pinned 95 ms/GiB is the lowest of 120, 95 and 110.
    assert!(by("pinned").use_when.contains("the fastest here at n=1"));
    assert!(!by("managed").use_when.contains("the fastest here"));
}
