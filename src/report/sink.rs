//! Result documents and where they go. A [`ResultSink`] keeps the document in memory and, when an
//! `--out` file was given, rewrites it atomically (temporary file in the same folder, then rename)
//! after every row: the file on disk is always a complete, parseable document holding the rows
//! finished so far, marked `complete: false` until the run ends.
//!
//! The file is first written when the first row is measured, so a run that fails or is stopped
//! before that leaves a previous file of the same name untouched; a run that fails later records
//! `complete: false` and the error. `--out` must be a regular file or a new name: a symlink is
//! written through (the temporary file goes next to its target), and a device node, FIFO or socket
//! is refused before anything runs, because the atomic rename would replace it with a plain file.
//! A rewritten file keeps its permissions.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The schema name written in every document.
pub const SCHEMA: &str = "cumemlab";
/// Bumped when a field changes meaning; readers refuse newer versions with a clear error.
pub const SCHEMA_VERSION: u32 = 1;

/// A result document: the environment, the rows, what was skipped and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Document<R, E> {
    /// `schema`, `schema_version`, `tool_version`, `experiment`, `command_line`, `started_at`,
    /// `finished_at`, `complete`, `interrupted`: the top-level fields of every result document.
    #[serde(flatten)]
    pub envelope: crate::report::envelope::Envelope,
    pub environment: E,
    pub rows: Vec<R>,
    /// `strategy@size: reason` for every combination that was not run.
    pub skipped: Vec<String>,
    /// Findings and warnings written from the numbers.
    pub notes: Vec<String>,
    /// Why the run stopped early, when it failed (absent when it finished or was interrupted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `--out` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    Json,
    Csv,
}

impl OutFormat {
    /// From the file name: `.csv` is CSV, everything else JSON.
    pub fn for_path(p: &Path) -> OutFormat {
        if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            OutFormat::Csv
        } else {
            OutFormat::Json
        }
    }
}

/// Streams rows into a document and, optionally, a file.
pub struct ResultSink<R: Serialize + Clone, E: Serialize + Clone> {
    pub doc: Document<R, E>,
    out: Option<(PathBuf, OutFormat)>,
}

/// This process's command line for a result document, read lossily: a path argument that is not
/// UTF-8 must not stop the run (`std::env::args` panics on one).
pub fn command_line() -> Vec<String> {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The current UTC time, RFC 3339, seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl<R: Serialize + Clone, E: Serialize + Clone> ResultSink<R, E> {
    /// Checks that `out` can be written (its folder exists and is writable) before any
    /// measurement starts, so a bad path fails in one sentence and nothing runs.
    pub fn new(experiment: &str, environment: E, out: Option<&Path>) -> Result<Self> {
        if let Some(p) = out {
            check_writable(p)?;
        }
        let sink = ResultSink {
            doc: Document {
                envelope: crate::report::envelope::Envelope::start(experiment),
                environment,
                rows: Vec::new(),
                skipped: Vec::new(),
                notes: Vec::new(),
                error: None,
            },
            out: out.map(|p| (p.to_path_buf(), OutFormat::for_path(p))),
        };
        Ok(sink)
    }

    /// Adds a finished row and rewrites the file.
    pub fn push(&mut self, row: R) -> Result<()> {
        self.doc.rows.push(row);
        self.flush()
    }

    pub fn skip(&mut self, what: String) -> Result<()> {
        self.doc.skipped.push(what);
        self.flush()
    }

    /// After a run that returned without error: when nothing was measured and everything asked
    /// for was skipped (refused by the safety ceiling, unsupported), the request cannot be met
    /// here, which is exit 2 with one sentence rather than a success with no rows.
    pub fn require_rows(&self) -> Result<()> {
        match (self.doc.rows.is_empty(), self.doc.skipped.first()) {
            (true, Some(first)) => Err(Error::usage(format!(
                "nothing was measured: all {} requested combination{} could not run here (first: {first}); ask for what this machine can hold",
                self.doc.skipped.len(),
                if self.doc.skipped.len() == 1 { "" } else { "s" }
            ))),
            _ => Ok(()),
        }
    }

    /// Marks the document finished (or interrupted) and writes it a last time.
    pub fn finish(&mut self, interrupted: bool) -> Result<()> {
        self.doc.envelope.finished_at = Some(now_rfc3339());
        self.doc.envelope.complete = !interrupted;
        self.doc.envelope.interrupted = interrupted;
        self.flush_final()
    }

    /// Marks the document with how the run ended and writes it a last time: complete only when
    /// `result` is `Ok` and the run was not `interrupted` (as the command counts it); a failure
    /// is recorded in `error`. A run that measured nothing and did not finish leaves any earlier
    /// file untouched.
    pub fn finish_run<T>(&mut self, result: &Result<T>, interrupted: bool) -> Result<()> {
        let interrupted = interrupted || matches!(result, Err(Error::Interrupted));
        self.doc.envelope.finished_at = Some(now_rfc3339());
        self.doc.envelope.interrupted = interrupted;
        self.doc.error = match result {
            Err(e) if !matches!(e, Error::Interrupted) => Some(e.to_string()),
            _ => None,
        };
        self.doc.envelope.complete = !interrupted && self.doc.error.is_none();
        self.flush_final()
    }

    /// The last write: a finished document is always written; an unfinished one only when it
    /// holds rows.
    fn flush_final(&self) -> Result<()> {
        if self.doc.envelope.complete {
            self.write()
        } else {
            self.flush()
        }
    }

    /// Rewrites the file once something was measured (never an empty document over an old one).
    fn flush(&self) -> Result<()> {
        if self.doc.rows.is_empty() {
            return Ok(());
        }
        self.write()
    }

    fn write(&self) -> Result<()> {
        let Some((path, fmt)) = &self.out else {
            return Ok(());
        };
        let bytes = match fmt {
            OutFormat::Json => to_json(&self.doc)?,
            OutFormat::Csv => to_csv(&self.doc.rows)?,
        };
        write_atomic(path, &bytes)
    }
}

/// Writes command output to standard output and reports a failure instead of panicking as
/// `print!` does: a full disk or a broken device is an error (one line, exit 1), a reader that
/// closed the pipe is [`Error::OutputClosed`] (a quiet exit). Every command prints through this.
pub fn print_stdout(text: impl AsRef<[u8]>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_ref()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Error::OutputClosed),
        Err(e) => Err(Error::Failed(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// Pretty JSON of any document.
pub fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut b = serde_json::to_vec_pretty(v)
        .map_err(|e| Error::Failed(format!("cannot serialise results: {e}")))?;
    b.push(b'\n');
    Ok(b)
}

thread_local! {
    static WRITING_CSV: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// For `#[serde(skip_serializing_if = "crate::report::sink::in_csv")]`: true while [`to_csv`]
/// writes, so a field that CSV cannot hold (a sample array) stays in JSON and is left out of CSV.
pub fn in_csv<T>(_: &T) -> bool {
    WRITING_CSV.with(|c| c.get())
}

/// CSV of rows (header from the row type's field names; fields marked with [`in_csv`] left out).
pub fn to_csv<R: Serialize>(rows: &[R]) -> Result<Vec<u8>> {
    WRITING_CSV.with(|c| c.set(true));
    let written = (|| {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in rows {
            w.serialize(r)
                .map_err(|e| Error::Failed(format!("cannot write CSV: {e}")))?;
        }
        w.into_inner()
            .map_err(|e| Error::Failed(format!("cannot write CSV: {e}")))
    })();
    WRITING_CSV.with(|c| c.set(false));
    written
}

/// Refuses a path whose folder is missing or not writable, a path that is a folder, and a device
/// node, FIFO or socket (the rename would replace it with a plain file; writing through it would
/// stream the document once per row into it). A symlink is followed to its target.
pub fn check_writable(path: &Path) -> Result<()> {
    let target = resolve_out(path)?;
    if target.is_dir() {
        return Err(Error::usage(format!(
            "--out {} is a directory: give a file name",
            path.display()
        )));
    }
    let dir = parent_dir(&target);
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "--out {}: the folder {} does not exist; create it first",
            path.display(),
            dir.display()
        )));
    }
    // Probe with a temporary file in that folder (the same way the real write works).
    match tempfile::Builder::new()
        .prefix(".cumemlab-probe")
        .tempfile_in(&dir)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::usage(format!(
            "--out {}: cannot write in {} ({e})",
            path.display(),
            dir.display()
        ))),
    }
}

/// The file an `--out` path names: symlinks followed (a dangling one to the file it would
/// create), and refused when it is a device node, FIFO or socket.
fn resolve_out(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(Error::io(&p, e)),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let link = std::fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
            p = if link.is_absolute() {
                link
            } else {
                parent_dir(&p).join(link)
            };
            continue;
        }
        if ft.is_file() || ft.is_dir() {
            return Ok(p);
        }
        use std::os::unix::fs::FileTypeExt;
        let what = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(Error::usage(format!(
            "--out {} is {what}: give a regular file name (use --json to write to standard output)",
            path.display()
        )));
    }
    Err(Error::usage(format!(
        "--out {}: too many levels of symbolic links",
        path.display()
    )))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename. A
/// symlink is written through (the temporary file goes next to its target); a device node, FIFO or
/// socket is refused; an existing file keeps its permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = resolve_out(path)?;
    let dir = parent_dir(&target);
    let mut tmp = tempfile::Builder::new()
        .prefix(".cumemlab-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io(tmp.path().to_path_buf(), e))?;
    // Temporary files are created 0600; a new result file gets the mode of any file the user
    // writes (0666 less the umask), so a fleet's shared --out is readable as its umask intends;
    // a file being rewritten keeps the mode it had.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(&target) {
            Ok(m) => m.permissions().mode() & 0o777,
            Err(_) => 0o666 & !umask(),
        };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(tmp.path().to_path_buf(), e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path().to_path_buf(), e))?;
    tmp.persist(&target).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// This process's umask, from /proc/self/status (reading it there changes nothing; the umask(2)
/// call would have to set it); 022 where the kernel does not say.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Reads a result document, refusing a newer schema or a corrupt file with one sentence each.
pub fn read_document<R: for<'de> Deserialize<'de>, E: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Document<R, E>> {
    let v = read_checked_json(path)?;
    serde_json::from_value(v)
        .map_err(|e| Error::usage(format!("{} is a damaged result file: {e}", path.display())))
}

/// Reads any cumemlab result file as JSON after the checks every reader shares: readable, valid
/// JSON, `"schema": "cumemlab"`, and a schema version no newer than this build's (each refusal is
/// one sentence, exit 2). Callers then look at `experiment` and deserialize the type they expect.
pub fn read_checked_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!(
            "{} is not a cumemlab result file (invalid JSON: {e})",
            path.display()
        ))
    })?;
    if v.get("schema").and_then(|s| s.as_str()) != Some(SCHEMA) {
        return Err(Error::usage(format!(
            "{} is not a cumemlab result file (no \"schema\": \"{SCHEMA}\")",
            path.display()
        )));
    }
    let ver = v
        .get("schema_version")
        .and_then(|s| s.as_u64())
        .unwrap_or(0);
    if ver > u64::from(SCHEMA_VERSION) {
        return Err(Error::usage(format!(
            "{} uses result schema version {ver}, newer than this cumemlab understands ({SCHEMA_VERSION}): upgrade cumemlab",
            path.display()
        )));
    }
    check_figures(&v, "", "").map_err(|e| {
        Error::usage(format!(
            "{} is a damaged result file: {e}; rerun the measurement",
            path.display()
        ))
    })?;
    Ok(v)
}

/// The largest bandwidth a results file may hold, GB/s: 1e6 (a petabyte per second), two
/// hundred times an H200's HBM3e.
const MAX_GBPS: f64 = 1e6;

/// Refuses figures no measurement gives, so that they are never plotted or compared: any
/// number beyond 2^64 (a 1e308 hangs a log axis), a negative time, bandwidth, count or size, and
/// a bandwidth of zero or beyond [`MAX_GBPS`]. Keys are judged by their words (`alloc_ms`, `gbps`, `bytes`) and those
/// of the object they sit in (`gbps: {median, ...}`); changes (`delta_*`, `overhead_*`, `*_growth_*`: a page cache can shrink while a file loads) may be
/// negative.
fn check_figures(
    v: &serde_json::Value,
    key: &str,
    parent: &str,
) -> std::result::Result<(), String> {
    use serde_json::Value;
    match v {
        Value::Object(m) => m.iter().try_for_each(|(k, x)| check_figures(x, k, key)),
        Value::Array(a) => a.iter().try_for_each(|x| check_figures(x, key, parent)),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let words: Vec<&str> = key.split('_').chain(parent.split('_')).collect();
            let has = |w: &[&str]| words.iter().any(|t| w.contains(t));
            let signed = has(&["delta", "overhead", "change", "diff", "signed", "growth"]);
            let quantity = has(&[
                "ms", "gbps", "us", "seconds", "percent", "runs", "bytes", "pages", "threads",
            ]);
            let bandwidth = has(&["gbps"]) && !has(&["cv", "runs"]);
            if !x.is_finite() || x.abs() > u64::MAX as f64 {
                Err(format!("`{key}` = {n} is beyond any measurement"))
            } else if quantity && !signed && x < 0.0 {
                Err(format!("`{key}` = {n} is negative"))
            } else if bandwidth && x == 0.0 {
                Err(format!("`{key}` = 0 is not a bandwidth"))
            } else if bandwidth && x > MAX_GBPS {
                Err(format!(
                    "`{key}` = {n} GB/s is beyond any memory (the limit is {MAX_GBPS:.0e})"
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct R {
        name: String,
        bytes: u64,
        gbps: Option<f64>,
    }

    #[test]
    fn streams_rows_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let mut s: ResultSink<R, String> =
            ResultSink::new("test", "env".into(), Some(&path)).unwrap();
        // Nothing is written before the first row.
        assert!(!path.exists());
        s.push(R {
            name: "a".into(),
            bytes: 1,
            gbps: Some(2.5),
        })
        .unwrap();
        let mid: Document<R, String> = read_document(&path).unwrap();
        assert_eq!(mid.rows.len(), 1);
        s.finish(false).unwrap();
        let done: Document<R, String> = read_document(&path).unwrap();
        assert!(done.envelope.complete && done.envelope.finished_at.is_some());
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_failed_run_records_its_error_and_an_empty_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "previous").unwrap();
        let row = || R {
            name: "a".into(),
            bytes: 1,
            gbps: None,
        };
        // Fails before the first row: the old file stays.
        let mut s: ResultSink<R, String> =
            ResultSink::new("test", "env".into(), Some(&path)).unwrap();
        s.skip("x@1: refused".into()).unwrap();
        s.finish_run::<()>(&Err(Error::Failed("module load failed".into())), false)
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous");
        // Fails after a row: written, not complete, with the error.
        let mut s: ResultSink<R, String> =
            ResultSink::new("test", "env".into(), Some(&path)).unwrap();
        s.push(row()).unwrap();
        s.finish_run::<()>(&Err(Error::Failed("cuMemAlloc failed".into())), false)
            .unwrap();
        let d: Document<R, String> = read_document(&path).unwrap();
        assert!(!d.envelope.complete && !d.envelope.interrupted);
        assert_eq!(d.error.as_deref(), Some("cuMemAlloc failed"));
        // Interrupted after a row: not complete, no error.
        let mut s: ResultSink<R, String> =
            ResultSink::new("test", "env".into(), Some(&path)).unwrap();
        s.push(row()).unwrap();
        s.finish_run::<()>(&Ok(()), true).unwrap();
        let d: Document<R, String> = read_document(&path).unwrap();
        assert!(!d.envelope.complete && d.envelope.interrupted && d.error.is_none());
        // Everything skipped, nothing measured: the request cannot be met (exit 2).
        let mut s: ResultSink<R, String> = ResultSink::new("test", "env".into(), None).unwrap();
        s.skip("managed@200 GB: refused by the safety ceiling".into())
            .unwrap();
        let e = s.require_rows().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("nothing was measured"), "{e}");
        s.push(row()).unwrap();
        assert!(s.require_rows().is_ok());
    }

    #[test]
    fn damaged_figures_are_refused_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.json");
        for (body, want) in [
            (r#"{"gbps": {"median": 1e308}}"#, "beyond any measurement"),
            (r#"{"rows": [{"alloc_ms": -1.5}]}"#, "negative"),
            (r#"{"rows": [{"gbps": 0}]}"#, "not a bandwidth"),
            (r#"{"rows": [{"gbps_traffic": 1e17}]}"#, "beyond any memory"),
        ] {
            std::fs::write(
                &f,
                format!(r#"{{"schema":"cumemlab","schema_version":1,"x":{body}}}"#),
            )
            .unwrap();
            let e = read_checked_json(&f).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{e}");
        }
        // Changes may be negative; a zero coefficient of variation is a real figure.
        std::fs::write(
            &f,
            r#"{"schema":"cumemlab","schema_version":1,"rows":[{"delta_device_free_bytes":-4096,"overhead_pct":-0.1,"cache_growth_bytes":-331776,"gbps":{"median":5.0,"cv":0.0}}]}"#,
        )
        .unwrap();
        assert!(read_checked_json(&f).is_ok());
    }

    #[test]
    fn csv_from_the_same_rows() {
        let rows = vec![R {
            name: "x".into(),
            bytes: 7,
            gbps: None,
        }];
        let text = String::from_utf8(to_csv(&rows).unwrap()).unwrap();
        assert_eq!(text, "name,bytes,gbps\nx,7,\n");
    }

    #[test]
    fn refuses_bad_paths_and_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/out.json");
        let e = check_writable(&missing).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert!(
            check_writable(dir.path())
                .unwrap_err()
                .to_string()
                .contains("directory")
        );
        let f = dir.path().join("future.json");
        std::fs::write(&f, r#"{"schema":"cumemlab","schema_version":99}"#).unwrap();
        let e = read_document::<R, String>(&f).unwrap_err().to_string();
        assert!(e.contains("newer") && e.contains("upgrade"), "{e}");
        std::fs::write(&f, "{not json").unwrap();
        assert!(
            read_document::<R, String>(&f)
                .unwrap_err()
                .to_string()
                .contains("invalid JSON")
        );
    }
}
