//! `cumemlab load` on the host, through the binary: `--help` with examples; a real safetensors
//! file (tests/fixtures/load/tiny.safetensors, written by the safetensors Python package with
//! make_fixture.py) is parsed and its checksum equals the library's over the data section; a
//! truncated or malformed file is refused with exit 2 and one sentence; the synthetic file is
//! removed after a run and after Ctrl-C; without a GPU `load` says so in one line (exit 1).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fixture() -> PathBuf {
    common::repo().join("tests/fixtures/load/tiny.safetensors")
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Asserts exit 2 and one line of stderr containing `phrase`.
fn refused(args: &[&str], phrase: &str) {
    let o = common::run(args);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line: {err}"
    );
    assert!(err.contains(phrase), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_lists_examples_and_paths() {
    let out = common::run_ok(&["load", "--help"]);
    for want in [
        "Examples:",
        "cumemlab load --copies",
        "--dry-run",
        "--drop-caches",
        "--repeat",
        "--preset",
    ] {
        assert!(out.contains(want), "missing {want}: {out}");
    }
}

#[test]
fn a_real_header_is_parsed_and_checksummed() {
    let path = fixture();
    let out = common::run_ok(&["load", "--dry-run", path.to_str().unwrap()]);
    // Independently of the tool's parser: 8-byte length, JSON header, then the data.
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["model.norm.weight"]["dtype"], "F32");
    let data = &bytes[8 + n..];
    assert_eq!(data.len(), 144);
    let sum = cumemlab::driver::load_kernels::host_checksum(data, 0);
    assert!(out.contains("3 tensors"), "{out}");
    assert!(out.contains(&format!("offset {}", 8 + n)), "{out}");
    assert!(out.contains(&format!("checksum {sum:#018x}")), "{out}");
    // The library's parser gives the names, dtypes and shapes the Python writer wrote.
    let m = cumemlab::experiments::load::ModelFile::open(&path).unwrap();
    let names: Vec<_> = m
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype.as_str(), t.shape.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("model.norm.weight", "F32", vec![8]),
            ("lm_head.weight", "F16", vec![3, 8]),
            ("model.embed_tokens.weight", "U16", vec![4, 8]),
        ]
    );
}

#[test]
fn truncated_malformed_and_missing_files_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture()).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let garbage = dir.path().join("garbage.safetensors");
    let mut g = 20u64.to_le_bytes().to_vec();
    g.extend_from_slice(b"{\"a\": not json at all");
    std::fs::write(&garbage, &g).unwrap();
    let huge = dir.path().join("huge-header.safetensors");
    std::fs::write(&huge, u64::MAX.to_le_bytes()).unwrap();
    let tiny = dir.path().join("tiny.safetensors");
    std::fs::write(&tiny, b"abc").unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    refused(&["load", "--dry-run", &s(&truncated)], "truncated");
    refused(
        &["load", "--dry-run", &s(&garbage)],
        "not the JSON the format expects",
    );
    refused(&["load", "--dry-run", &s(&huge)], "header length");
    refused(
        &["load", "--dry-run", &s(&tiny)],
        "shorter than the 8-byte header length",
    );
    refused(
        &["load", "--dry-run", "/no/such/model.safetensors"],
        "cannot read it",
    );
    // The same refusals without --dry-run come before any GPU is needed.
    refused(
        &["load", &s(&truncated), "--paths", "mmap-copy"],
        "truncated",
    );
}

#[test]
fn bad_options_are_refused_with_exit_2() {
    refused(&["load", "--paths", "teleport"], "unknown path `teleport`");
    refused(
        &["load", "--states", "lukewarm"],
        "unknown state `lukewarm`",
    );
    refused(
        &["load", "--dry-run", "--preset", "no-such-model"],
        "unknown model",
    );
    // clap's own refusal adds a usage hint line; it is still exit 2 naming the input.
    let o = common::run(&["load", "--size", "4G"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("ambiguous"),
        "{}",
        common::stderr(&o)
    );
    if Path::new("/dev/shm").is_dir() {
        refused(
            &["load", "--dry-run", "--size", "1MiB", "--dir", "/dev/shm"],
            "tmpfs",
        );
    }
}

#[test]
fn the_synthetic_file_is_removed_after_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = common::run_ok(&["load", "--dry-run", "--size", "16MiB", "--dir", d]);
    assert!(out.contains("removed"), "{out}");
    assert!(out.contains("MiB of data"), "about 16 MiB of data: {out}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn the_synthetic_file_is_removed_after_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .args([
            "load",
            "--dry-run",
            "--size",
            "1GiB",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the file to appear, then interrupt while it is written or checksummed.
    let t = Instant::now();
    while files_in(dir.path()).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no synthetic file appeared"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen = files_in(dir.path());
    assert!(
        seen.iter()
            .all(|f| f.starts_with(cumemlab::experiments::load::PREFIX)),
        "{seen:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn without_a_gpu_load_says_so_in_one_line_and_leaves_nothing() {
    if cumemlab::driver::Driver::load().is_ok_and(|d| d.device_count().is_ok_and(|n| n > 0)) {
        common::skip("without_a_gpu_load_says_so_in_one_line_and_leaves_nothing: a GPU is present");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["load", "--size", "16MiB", "--dir", d],
        vec!["load", "--copies"],
    ] {
        let o = common::run(&args);
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains("needs a GPU"), "{err}");
    }
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}
