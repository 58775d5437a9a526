//! On a GPU host: what issue 13 changed in the command-line layer, seen from outside the binary.
//! `selftest --json` opens with the result envelope and holds one report per device under
//! `reports`; `info --who-sees --json` opens with it too; a warning of `--force` reaches standard
//! error when it is not a terminal and `--quiet` hides the progress bar (the one diagnostics
//! channel, `report::diag`).

mod common;

use cumemlab::experiments::selftest::SelftestReport;
use cumemlab::report::envelope;

#[test]
fn selftest_json_carries_the_envelope_and_one_report_per_device() {
    let Some(gpu) =
        common::gpu_or_skip("selftest_json_carries_the_envelope_and_one_report_per_device")
    else {
        return;
    };
    let _lock = gpu.into_lock();
    let o = common::run(&[
        "selftest",
        "--size",
        "64MiB",
        "--fill-sizes",
        "64MiB",
        "--runs",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "cumemlab");
    assert_eq!(v["experiment"], "selftest");
    assert_eq!(v["complete"], true);
    assert!(v["finished_at"].is_string());
    let reports: Vec<SelftestReport> =
        envelope::read_list(std::str::from_utf8(&o.stdout).unwrap()).unwrap();
    assert_eq!(reports.len(), 1, "device 0 only by default");
    assert!(reports[0].all_passed);
}

#[test]
fn a_force_warning_reaches_a_piped_stderr_under_quiet() {
    let Some(gpu) = common::gpu_or_skip("a_force_warning_reaches_a_piped_stderr_under_quiet")
    else {
        return;
    };
    let _lock = gpu.into_lock();
    // A headroom larger than any host's memory puts every pinned allocation past the ceiling;
    // --force lifts it with a warning (64 MiB is harmless on any host).
    let o = common::run(&[
        "sweep",
        "--sizes",
        "64MiB",
        "--strategies",
        "pinned",
        "--repeat",
        "1",
        "--runs",
        "1",
        "--headroom",
        "100000GiB",
        "--force",
        "--quiet",
        "--json",
    ]);
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("WARNING: --force:"),
        "no --force warning on stderr: {err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["rows"].as_array().is_some_and(|r| !r.is_empty()),
        "the forced allocation ran: {v}"
    );
}

#[test]
fn who_sees_json_carries_the_envelope() {
    let Some(gpu) = common::gpu_or_skip("who_sees_json_carries_the_envelope") else {
        return;
    };
    let _lock = gpu.into_lock();
    let o = common::run(&["info", "--who-sees", "64MiB", "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["schema"].as_str(), v["experiment"].as_str()),
        (Some("cumemlab"), Some("info"))
    );
    assert!(
        v["rows"].as_array().is_some_and(|r| !r.is_empty()),
        "no rows: {v}"
    );
}
