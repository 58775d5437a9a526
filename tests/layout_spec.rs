//! `cumemlab layout` without a GPU, through the real binary: every spec-file problem is one
//! sentence on stderr naming the file, the tensor and the field, with exit code 2 and nothing on
//! stdout, before any GPU is looked for; good specs in both formats read the same; the presets'
//! arithmetic (`--dry-run --json`) matches the lab's sizes and the planner's figures.

mod common;
use common::stderr;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures/layout").join(name)
}

fn layout(args: &[&str]) -> Output {
    let mut all = vec!["layout"];
    all.extend_from_slice(args);
    common::run(&all)
}

/// Exit 2, nothing on stdout, one line on stderr containing every `want`.
fn assert_usage_error(o: &Output, want: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr: {e}");
    assert!(
        o.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {e}");
    assert!(lines[0].starts_with("cumemlab: error: "), "{e}");
    for w in want {
        assert!(e.contains(w), "stderr lacks {w:?}: {e}");
    }
    // The spec error comes first, not the missing GPU.
    assert!(!e.contains("needs a GPU"), "{e}");
}

#[test]
fn spec_file_errors_are_one_sentence_and_exit_2() {
    let cases: &[(&str, &[&str])] = &[
        (
            "missing-size.toml",
            &[
                "missing-size.toml",
                "tensor 2 `attention`",
                "field `size` is missing",
                "size = \"512MiB\"",
            ],
        ),
        (
            "negative-size.toml",
            &[
                "negative-size.toml",
                "tensor 1 `embeddings`",
                "field `size`",
                "`-2GB` is negative",
            ],
        ),
        (
            "unknown-dtype.toml",
            &[
                "unknown-dtype.toml",
                "tensor 2 `experts`",
                "field `dtype`",
                "`fp6`",
                "bf16",
                "nvfp4",
                "mxfp4",
            ],
        ),
        (
            "malformed.toml",
            &[
                "malformed.toml",
                "not valid TOML",
                "line 3",
                "fix the syntax",
            ],
        ),
        (
            "bare-number.json",
            &[
                "bare-number.json",
                "tensor 1 `embeddings`",
                "field `size`",
                "no unit",
                "\"512MiB\"",
            ],
        ),
        (
            "zero-count.json",
            &[
                "zero-count.json",
                "tensor 1 `layer`",
                "field `count` is 0",
                "positive whole number",
            ],
        ),
        (
            "unknown-field.toml",
            &[
                "unknown-field.toml",
                "tensor 1 `embeddings`",
                "unknown field `sise`",
                "name, size, count, dtype",
            ],
        ),
        (
            "missing-name.json",
            &["missing-name.json", "tensor 1", "field `name` is missing"],
        ),
        (
            "malformed.json",
            &["malformed.json", "not valid JSON", "line 1"],
        ),
    ];
    for (file, want) in cases {
        let path = fixture(file);
        let p = path.to_str().unwrap();
        // As a run (errors come before the GPU) and as a dry run.
        assert_usage_error(&layout(&["--spec", p]), want);
        assert_usage_error(&layout(&["--spec", p, "--dry-run"]), want);
    }
}

#[test]
fn unreadable_or_unnamed_spec_files_exit_2() {
    let missing = fixture("no-such-file.toml");
    assert_usage_error(
        &layout(&["--spec", missing.to_str().unwrap()]),
        &["cannot read layout spec", "no-such-file.toml"],
    );
    let readme = fixture("README.md");
    assert_usage_error(
        &layout(&["--spec", readme.to_str().unwrap()]),
        &["README.md", "neither .toml nor .json"],
    );
}

#[test]
fn other_bad_input_exits_2() {
    assert_usage_error(
        &layout(&["--preset", "7b-sim"]),
        &["unknown preset `7b-sim`", "13b-sim"],
    );
    assert_usage_error(
        &layout(&["--model", "llama-9000"]),
        &["unknown model `llama-9000`"],
    );
    assert_usage_error(&layout(&[]), &["layout needs tensors", "--preset 13b-sim"]);
    assert_usage_error(
        &layout(&["--preset", "13b-sim", "--precision", "fp8"]),
        &["--precision applies to --model and --config only"],
    );
    // clap's own refusals use exit code 2 too.
    for args in [
        &["--preset", "13b-sim", "--free", "half"][..],
        &["--preset", "13b-sim", "--free", "random"],
        &["--preset", "13b-sim", "--strategy", "cudaMalloc"],
        &["--preset", "13b-sim", "--resolution", "64M"],
        &["--preset", "13b-sim", "--model", "llama-3.1-8b"],
    ] {
        let o = layout(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

fn dry_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--dry-run", "--json"]);
    let o = layout(&all);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn tensors(v: &Value) -> Vec<(String, u64)> {
    v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn good_specs_read_the_same_in_both_formats() {
    let toml = dry_json(&["--spec", fixture("good.toml").to_str().unwrap()]);
    let json = dry_json(&["--spec", fixture("good.json").to_str().unwrap()]);
    let array = dry_json(&["--spec", fixture("good-array.json").to_str().unwrap()]);
    let want: Vec<(String, u64)> = [
        ("embeddings", 2_000_000_000u64),
        ("block.0", 512 << 20),
        ("block.1", 512 << 20),
        ("block.2", 512 << 20),
        ("odd", 1 << 30),
    ]
    .iter()
    .map(|(n, b)| (n.to_string(), *b))
    .collect();
    assert_eq!(tensors(&toml), want);
    assert_eq!(toml["tensors"], json["tensors"]);
    assert_eq!(toml["tensors"], array["tensors"]);
    assert_eq!(toml["tensors"][0]["dtype"], "bf16");
    assert_eq!(toml["tensors"][0]["elements"], 1_000_000_000u64);
    assert_eq!(toml["tensors"][1]["dtype"], "fp8-e4m3");
    assert_eq!(toml["tensors"][1]["component"], "block");
    assert!(toml["tensors"][4]["dtype"].is_null());
    // The human form lists them and the total.
    let o = layout(&[
        "--spec",
        fixture("good.toml").to_str().unwrap(),
        "--dry-run",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("block.2") && text.contains("total: 5 tensors, 4684354560 bytes"),
        "{text}"
    );
}

#[test]
fn preset_arithmetic() {
    // 13b-sim: the lab's sizes, GB = 1e9.
    let sim = dry_json(&["--preset", "13b-sim"]);
    let t = tensors(&sim);
    assert_eq!(t.len(), 6);
    assert_eq!(t.iter().map(|(_, b)| b).sum::<u64>(), 25_500_000_000);
    assert_eq!(t[2], ("feedforward".to_string(), 10_000_000_000));

    // A model preset: weights match `plan`'s figure for the precision, KV cache its formula.
    let m = dry_json(&["--model", "llama-3.1-8b", "--precision", "bf16"]);
    let t = tensors(&m);
    assert_eq!(
        t.len(),
        227,
        "embeddings, 32 x 6 layer tensors, final norm, lm head, 32 KV caches"
    );
    let weights: u64 = t
        .iter()
        .filter(|(n, _)| !n.ends_with("kv_cache"))
        .map(|(_, b)| b)
        .sum();
    let kv: u64 = t
        .iter()
        .filter(|(n, _)| n.ends_with("kv_cache"))
        .map(|(_, b)| b)
        .sum();
    let o = common::run(&[
        "plan",
        "--model",
        "llama-3.1-8b",
        "--precisions",
        "bf16",
        "--workload",
        "inference",
        "--target",
        "h100-80gb",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        weights,
        plan["precisions"][0]["weights_bytes"].as_u64().unwrap()
    );
    // 2 (K, V) x 32 layers x 8 KV heads x 128 x 8192 tokens x 2 B.
    assert_eq!(kv, 2 * 32 * 8 * 128 * 8192 * 2);
    assert!(
        t.iter()
            .any(|(n, b)| n == "layer.12.attn.qkv" && *b == (4096 * 4096 + 2 * 4096 * 1024) * 2)
    );

    // --context scales the KV cache; --no-kv-cache drops it.
    let long = tensors(&dry_json(&[
        "--model",
        "llama-3.1-8b",
        "--context",
        "32768",
    ]));
    let kv_long: u64 = long
        .iter()
        .filter(|(n, _)| n.ends_with("kv_cache"))
        .map(|(_, b)| b)
        .sum();
    assert_eq!(kv_long, 4 * kv);
    let bare = tensors(&dry_json(&["--model", "llama-3.1-8b", "--no-kv-cache"]));
    assert_eq!(bare.len(), 195);
    // nvfp4 is 4.5 bits a parameter: 9/32 of bf16, rounded up per tensor; the layer norms stay
    // in bf16 (quantizers replace the linear layers only).
    let fp4 = tensors(&dry_json(&[
        "--model",
        "llama-3.1-8b",
        "--precision",
        "nvfp4",
        "--no-kv-cache",
    ]));
    let norm_bytes = |t: &[(String, u64)]| -> u64 {
        t.iter()
            .filter(|(n, _)| n.ends_with("norm"))
            .map(|(_, b)| b)
            .sum()
    };
    let norms_bf16 = norm_bytes(&bare);
    assert_eq!(
        norms_bf16,
        65 * 4096 * 2,
        "32 layers x 2 norms + the final norm"
    );
    assert_eq!(norm_bytes(&fp4), norms_bf16);
    let fp4_rest: u64 = fp4.iter().map(|(_, b)| b).sum::<u64>() - norms_bf16;
    let rest = weights - norms_bf16;
    assert!(
        fp4_rest >= rest * 9 / 32 && fp4_rest <= rest * 9 / 32 + 195,
        "{fp4_rest}"
    );
}
