//! Bad input, everywhere: the real binary with invalid arguments must exit with code 2, print one
//! clear message naming the input (and no panic text) on stderr, and leave no file behind. Runs on
//! any machine: every case is refused before a GPU would be needed.

mod common;

use std::path::Path;
use std::process::Command;

/// (arguments, a phrase the error must contain)
fn cases(dir: &Path) -> Vec<(Vec<String>, &'static str)> {
    let d = |p: &str| dir.join(p).display().to_string();
    std::fs::write(dir.join("not-json.json"), "{ this is not json").unwrap();
    std::fs::write(
        dir.join("future.json"),
        r#"{"schema":"cumemlab","schema_version":999,"rows":[]}"#,
    )
    .unwrap();
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        // unknown subcommands and flags
        (v(&["frobnicate"]), "unrecognized subcommand"),
        (v(&["sweep", "--no-such-flag"]), "--no-such-flag"),
        // sizes: ambiguous, malformed, zero, negative, overflowing, missing unit
        (v(&["sweep", "--sizes", "4G"]), "4GiB"),
        (v(&["sweep", "--sizes", "4g"]), "ambiguous"),
        (v(&["sweep", "--sizes", "1GiB,16M"]), "16MiB"),
        (v(&["sweep", "--sizes", "0GiB"]), "zero"),
        (v(&["sweep", "--sizes", "-1GiB"]), "negative"),
        (v(&["sweep", "--sizes", "99999999999TiB"]), "too large"),
        (v(&["sweep", "--sizes", "12"]), "no unit"),
        (v(&["sweep", "--sizes", "lots"]), "lots"),
        (v(&["sweep", "--sizes", "1.5B"]), "whole number of bytes"),
        (v(&["sweep", "--sizes", "2 parsecs"]), "unknown unit"),
        (v(&["sweep", "--sizes", ","]), "empty"),
        (v(&["sweep", "--headroom", "8G"]), "ambiguous"),
        (v(&["sweep", "--page-stride", "4097B"]), "multiple of 4"),
        (v(&["sweep", "--page-stride", "0B"]), "zero"),
        (v(&["selftest", "--size", "4Q"]), "unknown unit"),
        // strategies
        (
            v(&["sweep", "--strategies", "cudaMalloc"]),
            "unknown strategy `cudaMalloc`",
        ),
        (v(&["sweep", "--strategies", "device,device"]), "twice"),
        (v(&["sweep", "--strategies", ""]), "empty"),
        // devices
        (v(&["sweep", "--device", "gpu0"]), "not a device number"),
        (v(&["sweep", "--device", "-1"]), "-1"),
        (v(&["selftest", "--device", "first"]), "not a device number"),
        // numbers out of range
        (v(&["sweep", "--runs", "0"]), "--runs"),
        (v(&["sweep", "--runs", "many"]), "many"),
        (v(&["sweep", "--cpu-threads", "0"]), "--cpu-threads"),
        (v(&["selftest", "--runs", "-3"]), "-3"),
        // files
        (
            v(&[
                "sweep",
                "--file",
                &d("missing.bin"),
                "--strategies",
                "registered",
            ]),
            "no such file",
        ),
        (
            vec!["sweep".into(), "--out".into(), d("no/such/dir/out.json")],
            "does not exist",
        ),
        (
            vec!["sweep".into(), "--out".into(), dir.display().to_string()],
            "is a directory",
        ),
        // conflicting flags
        (v(&["sweep", "--json", "--csv"]), "cannot be used with"),
        (
            v(&["plan", "--params", "7B", "--model", "llama-3.1-8b"]),
            "cannot be used with",
        ),
        // plan inputs
        (v(&["plan"]), "plan needs a model"),
        (v(&["plan", "--model", "llama-9"]), "llama-9"),
        (v(&["plan", "--params", "70G"]), "70G"),
        (v(&["plan", "--params", "-5B"]), "-5B"),
        (v(&["plan", "--params", "7B", "--precisions", "fp7"]), "fp7"),
        (v(&["plan", "--params", "7B", "--kv-dtype", "int3"]), "int3"),
        (
            v(&["plan", "--params", "7B", "--workload", "pretraining"]),
            "pretraining",
        ),
        (v(&["plan", "--params", "7B", "--target", "a100"]), "a100"),
        (v(&["plan", "--params", "7B", "--target", "80G"]), "80G"),
        (
            v(&["plan", "--params", "7B", "--context", "0"]),
            "--context",
        ),
        (
            v(&["plan", "--params", "7B", "--lora-rank", "0"]),
            "--lora-rank",
        ),
        (
            vec!["plan".into(), "--config".into(), d("missing-config.json")],
            "missing-config.json",
        ),
        (
            vec!["plan".into(), "--config".into(), d("not-json.json")],
            "not-json.json",
        ),
        // probe
        (v(&["probe", "--resolution", "256M"]), "ambiguous"),
        (v(&["probe", "--chunk", "0MiB"]), "zero"),
        (v(&["probe", "--kind", "biggest"]), "biggest"),
        (
            v(&["probe", "--strategies", "malloc"]),
            "unknown strategy `malloc`",
        ),
        (v(&["probe", "--max", "lots"]), "lots"),
        // cache and watch
        (v(&["cache", "--fill", "1G"]), "ambiguous"),
        (
            vec!["cache".into(), "--evict".into(), d("no-such-file.bin")],
            "no-such-file.bin",
        ),
        (v(&["cache", "effect", "--fill", "-4GiB"]), "negative"),
        (v(&["watch", "--interval", "soon"]), "soon"),
        (v(&["watch", "--count", "0"]), "--count"),
        // layout
        (v(&["layout", "--preset", "70b-sim"]), "70b-sim"),
        (
            v(&["layout", "--model", "llama-3.1-8b", "--precision", "fp5"]),
            "fp5",
        ),
        (
            v(&["layout", "--preset", "13b-sim", "--free", "half"]),
            "half",
        ),
        (
            v(&["layout", "--preset", "13b-sim", "--strategy", "heap"]),
            "heap",
        ),
        (
            vec!["layout".into(), "--spec".into(), d("missing-spec.toml")],
            "missing-spec.toml",
        ),
        // lab and compare: newer schema, corrupt file, missing input
        (v(&["lab", "--budget", "-1"]), "-1"),
        (
            vec!["lab".into(), "--from".into(), d("no-such-lab")],
            "no-such-lab",
        ),
        (
            vec!["compare".into(), d("future.json"), d("future.json")],
            "newer",
        ),
        (
            vec!["compare".into(), d("not-json.json"), d("future.json")],
            "not-json.json",
        ),
        (
            vec!["compare".into(), d("missing-a.json"), d("missing-b.json")],
            "missing-a.json",
        ),
    ]
}

#[test]
fn every_bad_input_is_exit_2_with_one_clear_message_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let all = cases(dir.path());
    assert!(
        all.len() >= 40,
        "at least 40 bad inputs, have {}",
        all.len()
    );
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut failures = Vec::new();
    for (args, phrase) in &all {
        let out = Command::new(common::bin())
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let problems: Vec<&str> = [
            (out.status.code() != Some(2), "exit code is not 2"),
            (!err.contains(phrase), "message lacks the expected phrase"),
            (
                err.contains("panicked") || err.contains("RUST_BACKTRACE"),
                "panic text",
            ),
            (
                err.lines()
                    .filter(|l| l.starts_with("error") || l.starts_with("cumemlab: error"))
                    .count()
                    != 1,
                "not exactly one error line",
            ),
        ]
        .iter()
        .filter(|(bad, _)| *bad)
        .map(|(_, why)| *why)
        .collect();
        if !problems.is_empty() {
            failures.push(format!(
                "{args:?}: {problems:?} (exit {:?})\n{err}",
                out.status.code()
            ));
        }
    }
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "a bad input left a file behind");
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs misbehaved:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
