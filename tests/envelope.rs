//! The result envelope on `info --json` and `selftest --json` (issue 13's named change): the old
//! shapes, kept as fixtures from an H200 run (tests/fixtures/results/h200-raw), still read, and so
//! do the new ones made from them; both feed `lab::assemble` as before.

mod common;

use cumemlab::experiments::info::InfoReport;
use cumemlab::experiments::lab;
use cumemlab::experiments::selftest::SelftestReport;
use cumemlab::report::envelope::{self, Envelope, Reports};

fn raw(name: &str) -> String {
    std::fs::read_to_string(
        common::repo()
            .join("tests/fixtures/results/h200-raw")
            .join(name),
    )
    .unwrap()
}

#[test]
fn old_and_enveloped_info_and_selftest_documents_both_read() {
    let old_info: InfoReport = serde_json::from_str(&raw("info.json")).unwrap();
    let old_selftest: Vec<SelftestReport> = envelope::read_list(&raw("selftest.json")).unwrap();
    assert!(!old_selftest.is_empty());

    let new_info = envelope::to_json(Envelope::start("info").finish(false), &old_info).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&new_info).unwrap();
    assert_eq!(
        (v["schema"].as_str(), v["experiment"].as_str()),
        (Some("cumemlab"), Some("info"))
    );
    let back: InfoReport = serde_json::from_slice(&new_info).unwrap();
    assert_eq!(back, old_info);

    let new_selftest = envelope::to_json(
        Envelope::start("selftest").finish(false),
        &Reports {
            reports: old_selftest.clone(),
        },
    )
    .unwrap();
    let back: Vec<SelftestReport> =
        envelope::read_list(std::str::from_utf8(&new_selftest).unwrap()).unwrap();
    assert_eq!(back.len(), old_selftest.len());
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&old_selftest).unwrap()
    );
    // Both shapes assemble into the same lab results.
    let a = lab::assemble(Some(old_info), Some(old_selftest), None, None).unwrap();
    let new_info: InfoReport = serde_json::from_slice(&new_info).unwrap();
    let b = lab::assemble(Some(new_info), Some(back), None, None).unwrap();
    assert_eq!(
        serde_json::to_value(&a.info).unwrap(),
        serde_json::to_value(&b.info).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&a.selftest).unwrap(),
        serde_json::to_value(&b.selftest).unwrap()
    );
}

#[test]
fn info_json_on_this_host_carries_the_envelope() {
    let o = common::run(&["info", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "cumemlab");
    assert_eq!(v["experiment"], "info");
    assert_eq!(v["complete"], true);
    assert!(v["schema_version"].as_u64().is_some());
    assert!(v["environment"]["host"].is_object());
    let _: InfoReport = serde_json::from_value(v).unwrap();
}
