//! Reading `compare`'s inputs (lab folders, their results.json, a folder of lab folders,
//! sweep or probe result documents) into [`LabResults`], and the columns: one per device of
//! each input, with unique labels.
//!
//! May import: the lab's results and `assemble`, the result sink's readers, compare's model.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::experiments::lab::comparable::{Column, Input};
use crate::experiments::lab::{self, LabResults};
use crate::report::sink::{read_checked_json, read_document};

/// Reads one path: a results file, a lab folder, or a folder of lab folders (every
/// `results.json` one level down, in name order).
pub fn read_inputs(path: &Path) -> Result<Vec<Input>> {
    if path.is_dir() {
        let direct = path.join(lab::RESULTS_FILE);
        if direct.is_file() {
            return Ok(vec![read_file(&direct)?]);
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::usage(format!("cannot read the folder {}: {e}", path.display())))?
            .flatten()
            .map(|e| e.path().join(lab::RESULTS_FILE))
            .filter(|p| p.is_file())
            .collect();
        subs.sort();
        if subs.is_empty() {
            return Err(Error::usage(format!(
                "{} holds no {} (nor do its subfolders): give lab folders, their results.json, or sweep/probe result files",
                path.display(),
                lab::RESULTS_FILE
            )));
        }
        return subs.iter().map(|p| read_file(p)).collect();
    }
    if !path.exists() {
        return Err(Error::usage(format!(
            "{}: no such file or folder",
            path.display()
        )));
    }
    Ok(vec![read_file(path)?])
}

pub fn read_file(path: &Path) -> Result<Input> {
    let v = read_checked_json(path)?;
    let kind = v
        .get("experiment")
        .and_then(|e| e.as_str())
        .unwrap_or("?")
        .to_string();
    let results = match kind.as_str() {
        lab::EXPERIMENT => LabResults::from_checked(path, v)?,
        "sweep" => lab::assemble(None, None, Some(read_document(path)?), None)?,
        "probe" => lab::assemble(None, None, None, Some(read_document(path)?))?,
        other => {
            return Err(Error::usage(format!(
                "{} is a `{other}` result file: compare reads lab results, sweep and probe result files",
                path.display()
            )));
        }
    };
    Ok(Input {
        path: path.to_path_buf(),
        kind,
        results,
    })
}

/// The name that tells an input apart: its folder for a `results.json`, else its file stem.
pub fn input_name(p: &Path) -> String {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    if p.file_name().is_some_and(|n| n == lab::RESULTS_FILE) {
        p.parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| stem(p))
    } else {
        stem(p)
    }
}

/// The columns of the inputs, with labels made unique.
pub fn columns(inputs: &[Input]) -> Vec<(usize, Column)> {
    let mut cols = Vec::new();
    for (i, inp) in inputs.iter().enumerate() {
        let r = &inp.results;
        let host = r.environment.host.hostname.clone();
        let devs = r.devices();
        if devs.is_empty() {
            cols.push((
                i,
                Column {
                    id: String::new(),
                    label: format!("{host} (no GPU)"),
                    path: inp.path.display().to_string(),
                    kind: inp.kind.clone(),
                    host,
                    device: None,
                    device_name: None,
                },
            ));
            continue;
        }
        for d in devs {
            let name = r.device_name(d);
            cols.push((
                i,
                Column {
                    id: String::new(),
                    label: format!("{host} / {name} ({d})"),
                    path: inp.path.display().to_string(),
                    kind: inp.kind.clone(),
                    host: host.clone(),
                    device: Some(d),
                    device_name: Some(name),
                },
            ));
        }
    }
    // Every label names its input (folder or file), then ambiguous ones get a number.
    for (i, c) in cols.iter_mut() {
        c.label = format!("{} [{}]", c.label, input_name(&inputs[*i].path));
    }
    let labels: Vec<String> = cols.iter().map(|c| c.1.label.clone()).collect();
    for (k, c) in cols.iter_mut().enumerate() {
        if labels.iter().filter(|l| **l == c.1.label).count() > 1 {
            c.1.label = format!("{} #{}", c.1.label, k + 1);
        }
        c.1.id = column_id(k);
    }
    cols
}

/// `A`..`Z`, then `AA`, `AB`...
pub fn column_id(k: usize) -> String {
    let letter = |i: usize| char::from(b'A' + (i % 26) as u8);
    if k < 26 {
        letter(k).to_string()
    } else {
        format!("{}{}", letter(k / 26 - 1), letter(k))
    }
}
