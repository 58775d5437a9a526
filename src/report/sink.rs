//! Result documents and where they go. A [`ResultSink`] keeps the document in memory and, when an
//! `--out` file was given, rewrites it atomically (temporary file in the same folder, then rename)
//! after every row: the file on disk is always a complete, parseable document holding the rows
//! finished so far, marked `complete: false` until the run ends.

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
    pub schema: String,
    pub schema_version: u32,
    pub tool_version: String,
    /// The subcommand that produced it (`sweep`, `probe`...).
    pub experiment: String,
    /// The command line, for reproduction.
    pub command_line: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// False while running and when interrupted.
    pub complete: bool,
    pub interrupted: bool,
    pub environment: E,
    pub rows: Vec<R>,
    /// `strategy@size: reason` for every combination that was not run.
    pub skipped: Vec<String>,
    /// Findings and warnings written from the numbers.
    pub notes: Vec<String>,
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
                schema: SCHEMA.into(),
                schema_version: SCHEMA_VERSION,
                tool_version: env!("CARGO_PKG_VERSION").into(),
                experiment: experiment.into(),
                command_line: std::env::args().collect(),
                started_at: now_rfc3339(),
                finished_at: None,
                complete: false,
                interrupted: false,
                environment,
                rows: Vec::new(),
                skipped: Vec::new(),
                notes: Vec::new(),
            },
            out: out.map(|p| (p.to_path_buf(), OutFormat::for_path(p))),
        };
        sink.flush()?;
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

    /// Marks the document finished (or interrupted) and writes it a last time.
    pub fn finish(&mut self, interrupted: bool) -> Result<()> {
        self.doc.finished_at = Some(now_rfc3339());
        self.doc.complete = !interrupted;
        self.doc.interrupted = interrupted;
        self.flush()
    }

    fn flush(&self) -> Result<()> {
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

/// Refuses a path whose folder is missing or not writable, and a path that is a folder.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::usage(format!(
            "--out {} is a directory: give a file name",
            path.display()
        )));
    }
    let dir = parent_dir(path);
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

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".cumemlab-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io(tmp.path().to_path_buf(), e))?;
    // Temporary files are created 0600; a result file gets the mode of any file the user writes
    // (0666 less the umask), so a fleet's shared --out is readable as its umask intends.
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o666 & !umask()))
            .map_err(|e| Error::io(tmp.path().to_path_buf(), e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path().to_path_buf(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
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
    Ok(v)
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
        let first: Document<R, String> = read_document(&path).unwrap();
        assert!(first.rows.is_empty() && !first.complete);
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
        assert!(done.complete && done.finished_at.is_some());
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
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
