//! Hostile inputs, environments and signals through the binary (issue 14's defects): special
//! files and symlinks as `--out`, failed runs over an old results file, concurrent labs, a full
//! standard output, wrapped plan configs, damaged figures in results files, non-UTF-8 arguments,
//! huge durations, long fractions, exit classes, and signals during a failing step or a held fill.
//!
//! The GPU paths are reached without a GPU through a stand-in driver library
//! (`tests/fixtures/stub-driver/libcuda-stub.c`), compiled here with `cc` and loaded through
//! `CUMEMLAB_LIBCUDA`: it reports one device and fails every context, so measuring commands fail
//! after the driver loaded and before their first row. Without `cc` those tests print a SKIP line.

mod common;
use common::{run_env, stderr};

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Exit `code`, one line on stderr, no panic, and every phrase in it.
fn assert_one_line(o: &Output, code: i32, phrases: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for p in phrases {
        assert!(err.contains(p), "`{p}` not in: {err}");
    }
}

fn files_in(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Compiles the stand-in driver once (and a library that is no CUDA driver at all); `None`, with
/// a SKIP line, where there is no C compiler.
fn stub(test: &str) -> Option<(PathBuf, PathBuf)> {
    static BUILT: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        // Under cargo's scratch folder for tests (kept out of /tmp); elsewhere (a GPU bundle run
        // on another host) a per-process temporary folder.
        let dir = [
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stub-driver"),
            std::env::temp_dir().join(format!("cumemlab-stub-{}", std::process::id())),
        ]
        .into_iter()
        .find(|d| std::fs::create_dir_all(d).is_ok())?;
        let src = common::repo().join("tests/fixtures/stub-driver/libcuda-stub.c");
        let lib = dir.join("libcuda-stub.so");
        let ok = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&src)
            .status()
            .is_ok_and(|s| s.success());
        let other_src = dir.join("not-cuda.c");
        std::fs::write(&other_src, "int not_cuda(void) { return 1; }\n").ok()?;
        let other = dir.join("libnot-cuda.so");
        let ok2 = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&other)
            .arg(&other_src)
            .status()
            .is_ok_and(|s| s.success());
        (ok && ok2).then_some((lib, other))
    });
    if built.is_none() {
        common::skip(&format!(
            "{test}: no C compiler (cc) to build the stand-in driver"
        ));
    }
    built.clone()
}

/// A machine without a GPU, on any host: the stand-in driver with a failing `cuInit` (a missing
/// `CUMEMLAB_LIBCUDA` would fall back to the host's real libcuda on a GPU host).
fn no_gpu(test: &str) -> Option<[(&'static str, String); 2]> {
    let (lib, _) = stub(test)?;
    Some([
        ("CUMEMLAB_LIBCUDA", lib.to_string_lossy().into_owned()),
        ("STUB_CUINIT_FAIL", "1".to_string()),
    ])
}

// ------------------------------------------------------------------------------ --out targets

#[test]
fn out_refuses_devices_fifos_and_sockets_and_leaves_them_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("p");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let sock = dir.path().join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    for (path, what) in [(&fifo, "a FIFO"), (&sock, "a socket")] {
        let o = common::run(&["cache", "--host-only", "--out", path.to_str().unwrap()]);
        assert_one_line(&o, 2, &[what, "regular file"]);
        let ft = std::fs::symlink_metadata(path).unwrap().file_type();
        assert!(ft.is_fifo() || ft.is_socket(), "{path:?} was replaced");
    }
    // A device node: as root (where the rename could replace one) a private copy of /dev/null's
    // node is made in the temporary folder, so a regression replaces only that.
    if nix::unistd::geteuid().is_root() {
        let node = dir.path().join("null");
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        let o = common::run(&["cache", "--host-only", "--out", node.to_str().unwrap()]);
        assert_one_line(&o, 2, &["a device", "regular file"]);
        let ft = std::fs::symlink_metadata(&node).unwrap().file_type();
        assert!(ft.is_char_device(), "the device node was replaced");
    } else {
        common::skip(
            "out_refuses_devices_fifos_and_sockets_and_leaves_them_in_place: the device-node case needs root",
        );
    }
    // A symlink to a FIFO is refused too (the target is what would be replaced).
    let link = dir.path().join("to-fifo.json");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let o = common::run(&["cache", "--host-only", "--out", link.to_str().unwrap()]);
    assert_one_line(&o, 2, &["a FIFO"]);
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn out_writes_through_a_symlink_and_keeps_the_file_mode() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("real");
    std::fs::create_dir(&sub).unwrap();
    let target = sub.join("cache.json");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink("real/cache.json", &link).unwrap();
    let o = common::run(&["cache", "--host-only", "--out", link.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink was replaced by a file"
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("\"schema\": \"cumemlab\""), "{text}");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the rewritten file kept its mode");
    // The temporary file went next to the target and is gone.
    assert_eq!(files_in(&sub), ["cache.json"]);
    assert_eq!(files_in(dir.path()), ["link.json", "real"]);
    // A dangling symlink: the file it names is created.
    let dangling = dir.path().join("dangling.json");
    std::os::unix::fs::symlink("real/new.json", &dangling).unwrap();
    let o = common::run(&["cache", "--host-only", "--out", dangling.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(sub.join("new.json").is_file());
}

// ------------------------------------------------------------------ failures and exit classes

#[test]
fn a_run_that_fails_before_its_first_row_leaves_the_old_file_intact() {
    let Some((lib, _)) = stub("a_run_that_fails_before_its_first_row_leaves_the_old_file_intact")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.json");
    let previous = "{\"schema\": \"cumemlab\", \"previous\": true}\n";
    let lib = lib.to_str().unwrap();
    for args in [
        vec!["sweep", "--sizes", "64MiB"],
        vec!["probe"],
        vec!["layout", "--preset", "13b-sim"],
        vec!["cache", "effect", "--fill", "1MiB", "--size", "64MiB"],
    ] {
        std::fs::write(&old, previous).unwrap();
        let mut a = args.clone();
        a.extend(["--out", old.to_str().unwrap()]);
        let o = run_env(&a, &[("CUMEMLAB_LIBCUDA", lib)]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("cuDevicePrimaryCtxRetain"), "{args:?}: {err}");
        assert_eq!(
            std::fs::read_to_string(&old).unwrap(),
            previous,
            "{args:?} replaced the old file"
        );
        assert_eq!(files_in(dir.path()), ["old.json"], "{args:?}: temp left");
    }
}

#[test]
fn cuinit_failure_and_a_non_cuda_library_exit_1_with_one_line() {
    let Some((lib, other)) = stub("cuinit_failure_and_a_non_cuda_library_exit_1_with_one_line")
    else {
        return;
    };
    let lib = lib.to_str().unwrap();
    let o = run_env(
        &["probe"],
        &[("CUMEMLAB_LIBCUDA", lib), ("STUB_CUINIT_FAIL", "1")],
    );
    assert_one_line(&o, 1, &["needs a GPU", "cuInit", "CUDA_ERROR_NO_DEVICE"]);
    // A driver that loads but reports no device: the default --device 0 was not bad input.
    for args in [
        vec!["probe"],
        vec!["sweep", "--device", "all"],
        vec!["selftest"],
    ] {
        let o = run_env(&args, &[("CUMEMLAB_LIBCUDA", lib), ("STUB_NO_DEVICE", "1")]);
        assert_one_line(&o, 1, &["no CUDA device found", "needs a GPU"]);
    }
    let o = run_env(&["sweep"], &[("CUMEMLAB_LIBCUDA", other.to_str().unwrap())]);
    assert_one_line(&o, 1, &["is not a CUDA driver library", "no cuInit"]);
    assert!(!stderr(&o).contains("older"), "{}", stderr(&o));
}

#[test]
fn info_names_the_meminfo_file_it_could_not_read() {
    let o = run_env(&["info"], &[("CUMEMLAB_MEMINFO", "/nonexistent/meminfo")]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("/nonexistent/meminfo could not be read"),
        "{text}"
    );
    assert!(!text.contains("/proc/meminfo could not"), "{text}");
}

#[test]
fn plan_context_and_batch_name_one_limit() {
    // The parser (clap's error: one `error:` line, then a hint) and the planner name one limit.
    for c in ["0", "16777217", "99999999999", "100000k"] {
        let o = common::run(&["plan", "--params", "7B", "--context", c]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains("16777216"), "{err}");
        assert!(!err.contains("100000000"), "a second limit: {err}");
    }
    let o = common::run(&["plan", "--params", "7B", "--batch", "1048577"]);
    assert_one_line(&o, 2, &["batch", "1 to 1,048,576"]);
}

// ------------------------------------------------------------------------------ concurrency

/// Starts `n` labs at once with `args`, stdout discarded, stderr kept.
fn spawn_labs(n: usize, args: &[&str], env: &[(&str, String)]) -> Vec<std::process::Child> {
    (0..n)
        .map(|_| {
            Command::new(common::bin())
                .arg("lab")
                .args(args)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

#[test]
fn twenty_concurrent_labs_get_twenty_folders() {
    let Some(env) = no_gpu("twenty_concurrent_labs_get_twenty_folders") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // No GPU (on any host): each lab runs its host steps in well under a second, so 20 overlap.
    let children = spawn_labs(20, &["--out", out, "--quiet", "--skip", "plan"], &env);
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let folders = files_in(dir.path());
    assert_eq!(folders.len(), 20, "{folders:?}");
    for f in &folders {
        assert!(
            dir.path().join(f).join("results.json").is_file(),
            "{f} has no results"
        );
    }
    // With one --name: exactly one wins, the others are refused in one sentence.
    let children = spawn_labs(10, &["--out", out, "--name", "same", "--quiet"], &env);
    let codes: Vec<Option<i32>> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(2)).count(),
        9,
        "{codes:?}"
    );
}

#[test]
fn lab_name_refuses_a_folder_of_the_users_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    let o = common::run(&[
        "lab",
        "--out",
        dir.path().to_str().unwrap(),
        "--name",
        "mine",
        "--quiet",
    ]);
    assert_one_line(&o, 2, &["already exists", "--name"]);
    assert_eq!(files_in(&mine), ["notes.txt"]);
}

// --------------------------------------------------------------------------- standard output

#[test]
fn a_full_stdout_is_one_line_and_exit_1() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        common::skip("a_full_stdout_is_one_line_and_exit_1: no /dev/full");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lab_fixture = common::repo().join("tests/fixtures/results/h200x2-lab");
    let lab_copy = dir.path().join("lab");
    std::fs::create_dir(&lab_copy).unwrap();
    std::fs::copy(
        lab_fixture.join("results.json"),
        lab_copy.join("results.json"),
    )
    .unwrap();
    let results = lab_copy.join("results.json");
    let cases: Vec<Vec<&str>> = vec![
        vec!["info"],
        vec!["plan", "--params", "7B"],
        vec!["cache", "--host-only"],
        vec!["compare", "--json", results.to_str().unwrap()],
        vec!["layout", "--preset", "13b-sim", "--dry-run"],
        vec!["lab", "--from", lab_copy.to_str().unwrap()],
    ];
    for args in cases {
        let o = Command::new(common::bin())
            .args(&args)
            .stdout(full.try_clone().unwrap())
            .output()
            .unwrap();
        assert_one_line(&o, 1, &["cannot write to standard output"]);
    }
}

#[test]
fn a_closed_stdout_is_a_quiet_end() {
    use std::os::unix::process::ExitStatusExt;
    for args in [vec!["plan", "--params", "7B"], vec!["info", "--json"]] {
        let mut child = Command::new(common::bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the first byte is written.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            o.status.signal() == Some(13) || o.status.code() == Some(141),
            "{args:?}: {:?} {err}",
            o.status
        );
        assert!(err.is_empty(), "{args:?}: quiet: {err}");
    }
}

// ----------------------------------------------------------------------------- plan wrapping

#[test]
fn plan_configs_that_would_wrap_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let base = serde_json::json!({
        "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "intermediate_size": 14336
    });
    let cases = [
        (
            serde_json::json!({"num_hidden_layers": 18446744073709551615u64}),
            "num_hidden_layers",
        ),
        (
            serde_json::json!({"num_local_experts": 1u64 << 40, "num_experts_per_tok": 2}),
            "num_local_experts",
        ),
        (
            // heads x head_dim = 2^64.
            serde_json::json!({"num_attention_heads": 1u64 << 32, "num_key_value_heads": 1u64 << 32, "head_dim": 1u64 << 32}),
            "num_attention_heads",
        ),
        (
            // Every field within its limit, the product beyond any model.
            serde_json::json!({"num_hidden_layers": 1u64 << 24, "hidden_size": 1u64 << 20}),
            "num_hidden_layers",
        ),
    ];
    for (i, (over, field)) in cases.iter().enumerate() {
        let mut cfg = base.clone();
        for (k, v) in over.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let path = dir.path().join(format!("c{i}.json"));
        std::fs::write(&path, cfg.to_string()).unwrap();
        let p = path.to_str().unwrap();
        let o = common::run(&["plan", "--config", p, "--precisions", "fp8"]);
        assert_one_line(&o, 2, &[field, "beyond any model"]);
        assert!(o.stdout.is_empty(), "no plan printed for {field}");
        let o = common::run(&["layout", "--config", p, "--dry-run"]);
        assert_one_line(&o, 2, &[field]);
    }
    // A layer count within the planner's limits still makes too many tensors for a layout.
    let mut cfg = base.clone();
    cfg["num_hidden_layers"] = serde_json::json!(10_000_000);
    cfg["hidden_size"] = serde_json::json!(64);
    cfg["num_attention_heads"] = serde_json::json!(1);
    cfg["num_key_value_heads"] = serde_json::json!(1);
    cfg["intermediate_size"] = serde_json::json!(64);
    cfg["vocab_size"] = serde_json::json!(100);
    let path = dir.path().join("layers.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let o = common::run(&["layout", "--config", path.to_str().unwrap(), "--dry-run"]);
    assert_one_line(&o, 2, &["tensors", "num_hidden_layers"]);
}

// --------------------------------------------------------------------------- damaged figures

/// Waits for `child` up to `limit` (a hang detector, not a timing: the work takes well under a
/// second); kills it and fails past that.
fn wait_or_kill(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn damaged_figures_are_refused_promptly_by_compare_and_lab_from() {
    let fixture = common::repo().join("tests/fixtures/results/h200x2-lab/results.json");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let good: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Each damage to the first selftest bandwidth median.
    for (value, phrase) in [
        (serde_json::json!(1e308), "beyond any measurement"),
        (serde_json::json!(-3948.0), "negative"),
        (serde_json::json!(0.0), "not a bandwidth"),
    ] {
        let mut doc = good.clone();
        doc["selftest"][0]["bandwidth"][1]["gbps"]["median"] = value.clone();
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        std::fs::create_dir(&lab).unwrap();
        let file = lab.join("results.json");
        std::fs::write(&file, doc.to_string()).unwrap();
        let out = dir.path().join("cmp");
        for args in [
            vec![
                "compare",
                "--out",
                out.to_str().unwrap(),
                file.to_str().unwrap(),
                fixture.to_str().unwrap(),
            ],
            vec!["lab", "--from", lab.to_str().unwrap()],
        ] {
            let child = Command::new(common::bin())
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let o = wait_or_kill(child, Duration::from_secs(60), &format!("{args:?}"));
            assert_one_line(&o, 2, &["damaged result file", "median", phrase]);
        }
        assert!(!out.exists(), "no comparison written from damaged figures");
        assert_eq!(files_in(&lab), ["results.json"], "no report written");
    }
}

// ------------------------------------------------------------------ arguments and parsers

#[test]
fn non_utf8_paths_are_taken_as_given() {
    let Some(env) = no_gpu("non_utf8_paths_are_taken_as_given") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"r\xff.json");
    let path = dir.path().join(name);
    let o = Command::new(common::bin())
        .args(["cache", "--host-only", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(path.is_file());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let line = doc["command_line"].to_string();
    assert!(line.contains("r\u{fffd}.json"), "{line}");
    // A lab results folder under a non-UTF-8 name.
    let out = dir.path().join(std::ffi::OsStr::from_bytes(b"labs\xfe"));
    let o = Command::new(common::bin())
        .args(["lab", "--quiet", "--out"])
        .arg(&out)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn huge_durations_and_long_fractions_are_refused_in_one_sentence() {
    for hold in ["1e300", "1e20", "99999999999999999999y"] {
        let o = common::run(&["cache", "--fill", "1MiB", "--hold", hold]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(&format!("duration `{hold}`")), "{err}");
    }
    for (flag, value) in [
        ("--sizes", "0.000309485941143919684203296681TiB"),
        ("--headroom", "0.000309485941143919684203296681TiB"),
        ("--sizes", "0.1B"),
    ] {
        let o = common::run(&["sweep", flag, value]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("not a whole number of bytes"), "{err}");
    }
    let o = common::run(&["sweep", "--sizes", "16777216TiB"]);
    assert!(stderr(&o).contains("too large"), "{}", stderr(&o));
}

// ------------------------------------------------------------------------------------ signals

#[test]
fn sigterm_during_a_step_that_then_fails_stops_the_lab() {
    let Some((lib, _)) = stub("sigterm_during_a_step_that_then_fails_stops_the_lab") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .args(["lab", "--out", dir.path().to_str().unwrap(), "--name", "t"])
        .env("CUMEMLAB_LIBCUDA", &lib)
        .env("STUB_CTX_SLEEP_MS", "1500")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first GPU step to start, then signal while its context is being opened.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        seen.push(l.clone());
        if l.contains("selftest on device 0 ...") {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("selftest on device 0")),
        "{seen:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("t/results.json")).unwrap())
            .unwrap();
    assert_eq!(r["interrupted"], true);
    let steps = r["steps"].as_array().unwrap();
    let at = steps
        .iter()
        .position(|s| s["name"] == "selftest")
        .expect("selftest recorded");
    assert!(at + 1 < steps.len(), "steps after selftest are recorded");
    for s in &steps[at + 1..] {
        assert_eq!(s["status"], "skipped", "{s}");
        assert!(
            s["reason"].as_str().unwrap_or("").contains("interrupted"),
            "{s}"
        );
    }
}

#[test]
fn sighup_during_a_held_fill_removes_the_fill_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .args([
            "cache",
            "--fill",
            "4MiB",
            "--dir",
            dir.path().to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let held = lines
        .by_ref()
        .map_while(|l| l.ok())
        .any(|l| l.contains("holding"));
    assert!(held, "the fill was never held");
    assert_eq!(files_in(dir.path()).len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let _rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let status = child.wait().unwrap();
    assert!(status.code().is_some(), "ended by the signal itself");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}
