//! A new user's first ten minutes, through the binary and without a GPU: `plan`'s answer to a
//! one-model, one-precision question fits in 25 lines of 80 columns with the verdict first;
//! `--context 128k` and `--precision` work as the README shows them; every measuring command
//! takes `--json`, `--csv` and `--out`; `info.csv` always has a header and the host facts; the
//! no-GPU reason is one short line (the long form behind `-v`); `lab --from` leaves committed
//! CSVs byte for byte as they were.

mod common;
use common::stderr;

use std::path::Path;

use cumemlab::driver::{Driver, Error as DriverError};

use common::run_ok as stdout_ok;

/// The README's first question: will Llama 3.1 70B fit in fp8 on a DGX Spark?
const PLAN_70B_FP8: [&str; 7] = [
    "plan",
    "--model",
    "llama-3.1-70b",
    "--precision",
    "fp8",
    "--target",
    "gb10",
];

/// True on a host where the CUDA driver cannot be loaded (this test machine); the no-GPU
/// tests skip with one line elsewhere.
fn no_driver(test: &str) -> bool {
    if Driver::load().is_ok() {
        common::skip(&format!("{test}: this host has a CUDA driver"));
        return false;
    }
    true
}

#[test]
fn plan_answers_one_model_one_precision_in_25_lines_of_80_columns() {
    let text = stdout_ok(&PLAN_70B_FP8);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 25, "{} lines:\n{text}", lines.len());
    for l in &lines {
        assert!(
            l.chars().count() <= 80,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    // The question and the verdict come first.
    assert!(
        lines[0].starts_with("Llama 3.1 70B") && lines[0].contains("fp8-e4m3 weights on gb10"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("inference fits: 76.4 GB, 64.1% of the 119.2 GB budget"),
        "{text}"
    );
    // Markdown tables like every other command, no box drawing.
    assert!(text.contains("| workload "), "{text}");
    assert!(text.contains("|----"), "{text}");
    assert!(!text.contains(['─', '│', '┌', '╞']), "{text}");
    // The long form is one flag away and not printed by default.
    assert!(text.contains("-v (--verbose)"), "{text}");
    assert!(!text.contains("Korthikanti"), "{text}");
}

#[test]
fn plan_with_several_formats_says_which_fit_first() {
    let text = stdout_ok(&[
        "plan",
        "--model",
        "llama-3.1-70b",
        "--precision",
        "fp16,fp8,nvfp4",
        "--workload",
        "inference",
        "--target",
        "gb10",
    ]);
    let second = text.lines().nth(1).unwrap_or_default();
    assert_eq!(
        second, "inference fits in fp8-e4m3, nvfp4; not in fp16 (budget 119.2 GB)",
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn plan_verbose_has_the_formulas_and_no_one_active_experts_for_dense_models() {
    for flag in ["-v", "--explain"] {
        let mut args = PLAN_70B_FP8.to_vec();
        args.push(flag);
        let text = stdout_ok(&args);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("Korthikanti"), "{flag}: {text}");
        assert!(
            flat.contains("(2 x 8192 hidden + 2 x 28672 intermediate)"),
            "{flag}: {text}"
        );
        assert!(!flat.contains("1 active experts"), "{flag}: {text}");
        assert!(!text.contains('│'), "{flag}: {text}");
    }
    // A mixture of experts still names its active experts.
    let moe = stdout_ok(&[
        "plan",
        "--model",
        "mixtral-8x7b",
        "--precision",
        "bf16",
        "-v",
    ]);
    let flat = moe.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("2 active experts x 14336 intermediate"),
        "{moe}"
    );
}

#[test]
fn plan_context_takes_k_and_precision_takes_the_old_spelling() {
    let ctx = |c: &str| -> u64 {
        let json = stdout_ok(&[
            "plan",
            "--params",
            "8B",
            "--precision",
            "bf16",
            "--workload",
            "inference",
            "--context",
            c,
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["settings"]["context"].as_u64().unwrap()
    };
    assert_eq!(ctx("128k"), 131_072);
    assert_eq!(ctx("128K"), 131_072);
    assert_eq!(ctx("1M"), 1_048_576);
    assert_eq!(ctx("8192"), 8192);
    for bad in ["12x", "0", "0k", "200M", "k"] {
        let out = common::run(&["plan", "--params", "8B", "--context", bad]);
        assert_eq!(out.status.code(), Some(2), "--context {bad}");
        assert!(stderr(&out).contains("--context"), "{}", stderr(&out));
    }
    // --precisions stays an alias of --precision.
    let a = stdout_ok(&["plan", "--params", "8B", "--precision", "fp8", "--json"]);
    let b = stdout_ok(&["plan", "--params", "8B", "--precisions", "fp8", "--json"]);
    let prec = |s: &str| {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["precisions"].clone()
    };
    assert_eq!(prec(&a), prec(&b));
    assert_eq!(prec(&a)[0]["precision"], "fp8-e4m3");
}

#[test]
fn plan_help_lists_the_accepted_spellings_and_a_short_first_example() {
    let help = stdout_ok(&["plan", "--help"]);
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "fp8-e4m3 (fp8, e4m3)",
        "nf4",
        "128k = 131,072",
        "--precisions",
        "cumemlab plan --model llama-3.1-70b --precision fp8 --target gb10",
    ] {
        assert!(
            flat.contains(needle),
            "plan --help lacks `{needle}`:\n{help}"
        );
    }
}

#[test]
fn every_measuring_command_takes_json_csv_and_out() {
    for cmd in [
        &["selftest"][..],
        &["sweep"],
        &["probe"],
        &["layout"],
        &["load"],
        &["cache"],
        &["cache", "effect"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = stdout_ok(&args);
        for flag in ["--json", "--csv", "--out <OUT>"] {
            assert!(help.contains(flag), "{cmd:?} --help lacks {flag}");
        }
        // --json and --csv together are refused at parse time, in every command.
        let mut args = cmd.to_vec();
        args.extend(["--json", "--csv"]);
        let out = common::run(&args);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        assert!(stderr(&out).contains("cannot be used with"), "{cmd:?}");
    }
    // The flags do what they say where no GPU is needed.
    let csv = stdout_ok(&["cache", "--host-only", "--csv"]);
    assert!(csv.lines().count() >= 2, "{csv}");
    let tensors = stdout_ok(&["layout", "--preset", "13b-sim", "--dry-run", "--csv"]);
    assert!(
        tensors.starts_with("name,component,bytes,dtype,elements\n"),
        "{tensors}"
    );
    assert_eq!(tensors.lines().count(), 7, "{tensors}");
    // selftest parses --csv and --out: without a GPU it stops at the driver, not at the flags.
    let d = tempfile::tempdir().unwrap();
    let out_file = d.path().join("selftest.csv");
    let out = common::run(&["selftest", "--csv", "--out", out_file.to_str().unwrap()]);
    assert!(
        !stderr(&out).contains("unexpected argument"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn info_csv_holds_the_host_facts_with_a_header() {
    let csv = stdout_ok(&["info", "--csv"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("section,device,key,value,unit"));
    let rows: Vec<&str> = lines.collect();
    for key in [
        "host,,hostname,",
        "host,,page_size,",
        "meminfo,,mem_available,",
    ] {
        assert!(rows.iter().any(|r| r.starts_with(key)), "no {key}:\n{csv}");
    }
    if Driver::load().is_err() {
        assert!(
            rows.iter()
                .any(|r| r.starts_with("driver,,no_gpu_reason,no CUDA driver")),
            "{csv}"
        );
    } else {
        assert!(
            rows.iter().any(|r| r.starts_with("strategy,0,device,")),
            "{csv}"
        );
    }
}

#[test]
fn a_gpu_less_lab_writes_info_csv_and_titles_figure_1_for_what_it_has() {
    if !no_driver("a_gpu_less_lab_writes_info_csv_and_titles_figure_1_for_what_it_has") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = common::run(&[
        "lab",
        "--out",
        d.path().to_str().unwrap(),
        "--name",
        "nogpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Every line of the lab's stderr is short: the no-GPU reason is one short line.
    for l in stderr(&out).lines() {
        assert!(l.len() < 300, "long stderr line: {l}");
        assert!(!l.contains("/usr/lib64/libcuda.so.1"), "long form: {l}");
    }
    let dir = d.path().join("nogpu");
    let info = std::fs::read_to_string(dir.join("info.csv")).unwrap();
    assert!(
        info.starts_with("section,device,key,value,unit\n"),
        "{info}"
    );
    assert!(info.lines().count() > 10, "{info}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let fig1 = md
        .lines()
        .find(|l| l.starts_with("*Figure 1:"))
        .expect("a Figure 1");
    assert!(!fig1.contains("cuMemGetInfo free against"), "{fig1}");
    assert!(fig1.contains("no GPU"), "{fig1}");
    assert!(
        !md.contains("/usr/lib64/libcuda.so.1"),
        "long form in the report"
    );
}

#[test]
fn the_no_gpu_reason_is_one_short_line_and_v_gives_the_long_form() {
    // The message itself, on any host.
    let e = DriverError::Load {
        tried: vec!["libcuda.so.1".into(), "/usr/lib64/libcuda.so.1".into()],
        reason: "libcuda.so.1: cannot open shared object file: No such file or directory".into(),
    };
    assert_eq!(
        e.to_string(),
        "no CUDA driver (libcuda.so.1 not found); `cumemlab -v info` lists the paths tried"
    );
    let long = format!("{e:#}");
    assert!(long.contains("/usr/lib64/libcuda.so.1") && long.contains("CUMEMLAB_LIBCUDA"));

    // Through the binary, where there is no driver.
    if !no_driver("the_no_gpu_reason_is_one_short_line_and_v_gives_the_long_form") {
        return;
    }
    for args in [&["sweep"][..], &["selftest"], &["probe"], &["info"]] {
        let out = common::run(args);
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(
            all.contains("no CUDA driver (libcuda.so.1 not found)"),
            "{args:?}: {all}"
        );
        assert!(!all.contains("/usr/lib64/libcuda.so.1"), "{args:?}: {all}");
        let mut v = vec!["-v"];
        v.extend_from_slice(args);
        let out = common::run(&v);
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(
            all.contains("/usr/lib64/libcuda.so.1"),
            "-v {args:?}: {all}"
        );
    }
    let out = common::run(&["sweep"]);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn lab_from_leaves_committed_csvs_byte_for_byte() {
    let src = common::repo().join("tests/fixtures/results/h200-2026-11-26-lab-old-build");
    if !src.join("results.json").is_file() {
        common::skip("lab_from_leaves_committed_csvs_byte_for_byte: no committed lab folder");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dst = d.path().join("lab");
    std::fs::create_dir_all(&dst).unwrap();
    let mut csvs = Vec::new();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
            // info.csv changed format on purpose (the host facts); the others must not move.
            if p.extension().is_some_and(|x| x == "csv") && !p.ends_with("info.csv") {
                csvs.push(p);
            }
        }
    }
    assert!(csvs.len() >= 5, "{csvs:?}");
    stdout_ok(&["lab", "--from", dst.to_str().unwrap()]);
    for p in &csvs {
        let name = p.file_name().unwrap();
        let before = std::fs::read(p).unwrap();
        let after = std::fs::read(dst.join(name)).unwrap();
        if before == after {
            continue;
        }
        // Columns added on purpose (the pressure accounting of sweep and probe rows) are allowed,
        // empty for old rows; every committed column must come back byte for byte.
        let table = |b: &[u8]| {
            let mut r = csv::Reader::from_reader(b);
            let h: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
            let rows: Vec<Vec<String>> = r
                .records()
                .map(|x| x.unwrap().iter().map(String::from).collect())
                .collect();
            (h, rows)
        };
        let ((hb, rb), (ha, ra)) = (table(&before), table(&after));
        assert_eq!(rb.len(), ra.len(), "{}: rows", Path::new(name).display());
        for (j, col) in ha.iter().enumerate() {
            match hb.iter().position(|c| c == col) {
                Some(i) => {
                    for (b, a) in rb.iter().zip(&ra) {
                        assert_eq!(
                            b[i],
                            a[j],
                            "{} column {col} changed",
                            Path::new(name).display()
                        );
                    }
                }
                None => assert!(
                    ra.iter().all(|a| a[j].is_empty()),
                    "{}: added column {col} is not empty for old rows",
                    Path::new(name).display()
                ),
            }
        }
        assert!(
            hb.iter().all(|c| ha.contains(c)),
            "{}: a committed column is gone",
            Path::new(name).display()
        );
    }
}
