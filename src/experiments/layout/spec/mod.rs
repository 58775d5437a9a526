//! Layout spec files: the tensors to allocate, written by hand. Two formats, chosen by the file's
//! extension (`.toml` or `.json`, any case; anything else is refused):
//!
//! ```toml
//! [[tensor]]
//! name = "embeddings"
//! size = "2GB"          # a string with a unit, read like every size: 512MiB, 2GB, 1.5GiB
//! dtype = "bf16"        # optional: fp32, tf32, fp16, bf16, fp8, fp8-e5m2, int8, int4, nvfp4, mxfp4, nf4
//!
//! [[tensor]]
//! name = "layer"
//! size = "400MiB"
//! count = 40            # optional, default 1: 40 tensors named layer.0 .. layer.39
//! ```
//!
//! ```json
//! {"tensors": [{"name": "embeddings", "size": "2GB", "dtype": "bf16"},
//!              {"name": "layer", "size": "400MiB", "count": 40}]}
//! ```
//!
//! A JSON spec may also be the bare array. Every problem is one sentence naming the file, the
//! tensor (1-based position and name) and the field, and is bad input (exit 2): a missing or
//! unknown field, a size without a unit, zero or negative, a count that is not a positive whole
//! number, an unknown dtype, a repeated name, an empty list, a file that does not parse.

use std::path::Path;

use super::preset::{Layout, TensorSpec};
use crate::plan::Precision;
use crate::units::parse_size;

/// The fields of one tensor entry.
pub const FIELDS: &[&str] = &["name", "size", "count", "dtype"];
/// The most tensors a spec may expand to (counts included).
pub const MAX_TENSORS: u64 = 100_000;

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    Toml,
    Json,
}

impl SpecFormat {
    /// From the extension, or one sentence saying which are read.
    pub fn for_path(path: &Path) -> Result<SpecFormat, String> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("toml") => Ok(SpecFormat::Toml),
            Some("json") => Ok(SpecFormat::Json),
            _ => Err(format!(
                "layout spec `{}` is neither .toml nor .json: name the file with the extension of its format",
                path.display()
            )),
        }
    }
}

/// A field's value, from either format.
#[derive(Debug, Clone, PartialEq)]
enum Raw {
    Str(String),
    Int(i128),
    Float(f64),
    Other(&'static str),
}

impl Raw {
    fn kind(&self) -> &'static str {
        match self {
            Raw::Str(_) => "a string",
            Raw::Int(_) => "a number",
            Raw::Float(_) => "a number",
            Raw::Other(k) => k,
        }
    }
}

/// One entry: its fields in the order written (TOML) or sorted (JSON).
type Entry = Vec<(String, Raw)>;

/// Reads a spec file.
pub fn read_spec(path: &Path) -> Result<Layout, String> {
    let format = SpecFormat::for_path(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read layout spec `{}` ({e}): give the path of a .toml or .json file",
            path.display()
        )
    })?;
    parse_spec(&text, format, &path.display().to_string())
}

/// Parses the text of a spec; `origin` names it in errors.
pub fn parse_spec(text: &str, format: SpecFormat, origin: &str) -> Result<Layout, String> {
    let entries = match format {
        SpecFormat::Toml => toml_entries(text, origin)?,
        SpecFormat::Json => json_entries(text, origin)?,
    };
    if entries.is_empty() {
        return Err(format!(
            "layout spec `{origin}` lists no tensors: add at least one (name and size)"
        ));
    }
    let syntax = match format {
        SpecFormat::Toml => Syntax {
            size: "size = \"512MiB\"",
            name: "name = \"weights\"",
        },
        SpecFormat::Json => Syntax {
            size: "\"size\": \"512MiB\"",
            name: "\"name\": \"weights\"",
        },
    };
    let mut tensors: Vec<TensorSpec> = Vec::new();
    let mut names = std::collections::HashMap::new();
    let mut total: u64 = 0;
    for (i, entry) in entries.iter().enumerate() {
        let expanded = entry_tensors(entry, i + 1, origin, &syntax)?;
        if tensors.len() as u64 + expanded.len() as u64 > MAX_TENSORS {
            return Err(format!(
                "layout spec `{origin}` expands to more than {MAX_TENSORS} tensors (counts included): use fewer, larger tensors"
            ));
        }
        for t in expanded {
            if let Some(first) = names.insert(t.name.clone(), i + 1) {
                return Err(format!(
                    "layout spec `{origin}`, tensor {} `{}`: the name `{}` is already used by tensor {first}: give every tensor its own name",
                    i + 1,
                    t.component,
                    t.name
                ));
            }
            total = total.checked_add(t.bytes).ok_or_else(|| {
                format!(
                    "layout spec `{origin}`: the sizes add up to more than 16 EiB: check the units"
                )
            })?;
            tensors.push(t);
        }
    }
    Ok(Layout {
        source: format!("spec {origin}"),
        notes: vec![format!(
            "spec `{origin}`: {} entries, {} tensors",
            entries.len(),
            tensors.len()
        )],
        tensors,
    })
}

struct Syntax {
    size: &'static str,
    name: &'static str,
}

fn entry_tensors(
    entry: &Entry,
    pos: usize,
    origin: &str,
    syntax: &Syntax,
) -> Result<Vec<TensorSpec>, String> {
    let get = |k: &str| entry.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    // The name first, so that later messages can use it.
    let name = match get("name") {
        None => {
            return Err(format!(
                "layout spec `{origin}`, tensor {pos}: field `name` is missing: add {}",
                syntax.name
            ));
        }
        Some(Raw::Str(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Raw::Str(_)) => {
            return Err(format!(
                "layout spec `{origin}`, tensor {pos}: field `name` is empty: give the tensor a name"
            ));
        }
        Some(v) => {
            return Err(format!(
                "layout spec `{origin}`, tensor {pos}: field `name` is {}, not a string: write {}",
                v.kind(),
                syntax.name
            ));
        }
    };
    let at = format!("layout spec `{origin}`, tensor {pos} `{name}`");
    if let Some((k, _)) = entry.iter().find(|(k, _)| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "{at}: unknown field `{k}`: the fields are {}",
            FIELDS.join(", ")
        ));
    }
    let bytes = match get("size") {
        None => {
            return Err(format!(
                "{at}: field `size` is missing: add {} (a string with a unit)",
                syntax.size
            ));
        }
        Some(Raw::Str(s)) => parse_size(s).map_err(|e| format!("{at}: field `size`: {e}"))?,
        Some(Raw::Int(n)) => {
            return Err(format!(
                "{at}: field `size`: {}",
                number_size_error(&n.to_string())
            ));
        }
        Some(Raw::Float(f)) => {
            return Err(format!(
                "{at}: field `size`: {}",
                number_size_error(&f.to_string())
            ));
        }
        Some(v) => {
            return Err(format!(
                "{at}: field `size` is {}, not a size: write {}",
                v.kind(),
                syntax.size
            ));
        }
    };
    let count = count_of(get("count"), &at)?;
    let dtype = dtype_of(get("dtype"), &at)?;
    let elements = dtype.map(|p| elements_in(bytes, p));
    Ok((0..count)
        .map(|k| TensorSpec {
            name: if count == 1 {
                name.clone()
            } else {
                format!("{name}.{k}")
            },
            component: name.clone(),
            bytes,
            dtype,
            elements,
        })
        .collect())
}

/// The `count` field: 1 when absent, else a whole number from 1 to [`MAX_TENSORS`].
fn count_of(v: Option<&Raw>, at: &str) -> Result<u64, String> {
    Ok(match v {
        None => 1,
        Some(Raw::Int(n)) if *n >= 1 && *n as u64 as i128 == *n && (*n as u64) <= MAX_TENSORS => {
            *n as u64
        }
        Some(Raw::Int(n)) if *n >= 1 => {
            return Err(format!(
                "{at}: field `count` is {n}: a spec may hold at most {MAX_TENSORS} tensors"
            ));
        }
        Some(Raw::Int(n)) => {
            return Err(format!(
                "{at}: field `count` is {n}: give a positive whole number (1 if left out)"
            ));
        }
        Some(Raw::Float(f)) if f.fract() == 0.0 && *f >= 1.0 && *f <= MAX_TENSORS as f64 => {
            *f as u64
        }
        Some(Raw::Float(f)) => {
            return Err(format!(
                "{at}: field `count` is {f}: give a positive whole number (1 if left out)"
            ));
        }
        Some(v) => {
            return Err(format!(
                "{at}: field `count` is {}, not a whole number: write count = 4 (1 if left out)",
                v.kind()
            ));
        }
    })
}

/// The `dtype` field: absent, or a precision name.
fn dtype_of(v: Option<&Raw>, at: &str) -> Result<Option<Precision>, String> {
    Ok(match v {
        None => None,
        Some(Raw::Str(s)) => Some(Precision::parse(s).map_err(|_| {
            format!(
                "{at}: field `dtype` is `{s}`, which is unknown: use one of {} (fp8 means fp8-e4m3), or leave it out",
                Precision::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            )
        })?),
        Some(v) => {
            return Err(format!(
                "{at}: field `dtype` is {}, not a format name: write dtype = \"bf16\" or leave it out",
                v.kind()
            ));
        }
    })
}

/// Whole values of `p` that `bytes` hold.
pub fn elements_in(bytes: u64, p: Precision) -> u64 {
    let bits_x512 = (p.bits_per_param() * 512.0).round() as u128;
    u64::try_from(bytes as u128 * 8 * 512 / bits_x512.max(1)).unwrap_or(u64::MAX)
}

/// The sentence for a size given as a bare number: the same sentences `parse_size` gives.
fn number_size_error(text: &str) -> String {
    let t = text.trim();
    let e = if t.starts_with('-') {
        parse_size(t)
    } else if t.parse::<f64>().is_ok_and(|v| v == 0.0) {
        parse_size(&format!("{t}B"))
    } else {
        parse_size(t)
    };
    match e {
        Err(e) => format!("{e} (sizes are strings such as \"512MiB\")"),
        Ok(_) => format!("size `{t}` has no unit: write it as a string such as \"512MiB\""),
    }
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn toml_raw(v: &toml::Value) -> Raw {
    match v {
        toml::Value::String(s) => Raw::Str(s.clone()),
        toml::Value::Integer(i) => Raw::Int(i128::from(*i)),
        toml::Value::Float(f) => Raw::Float(*f),
        toml::Value::Boolean(_) => Raw::Other("a boolean"),
        toml::Value::Datetime(_) => Raw::Other("a date"),
        toml::Value::Array(_) => Raw::Other("an array"),
        toml::Value::Table(_) => Raw::Other("a table"),
    }
}

fn toml_entries(text: &str, origin: &str) -> Result<Vec<Entry>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                format!(
                    "layout spec `{origin}` is not valid TOML (line {line}, column {col}: {msg}): fix the syntax"
                )
            }
            None => format!("layout spec `{origin}` is not valid TOML ({msg}): fix the syntax"),
        }
    })?;
    if let Some(k) = table.keys().find(|k| k.as_str() != "tensor") {
        return Err(format!(
            "layout spec `{origin}` has an unknown top-level key `{k}`: a TOML spec lists its tensors as [[tensor]] tables"
        ));
    }
    let Some(list) = table.get("tensor") else {
        return Err(format!(
            "layout spec `{origin}` has no [[tensor]] tables: add at least one with a name and a size"
        ));
    };
    let toml::Value::Array(items) = list else {
        return Err(format!(
            "layout spec `{origin}`: `tensor` must be [[tensor]] tables, one per tensor"
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            toml::Value::Table(t) => Ok(t.iter().map(|(k, v)| (k.clone(), toml_raw(v))).collect()),
            _ => Err(format!(
                "layout spec `{origin}`, tensor {}: it is not a table: write each tensor as a [[tensor]] table",
                i + 1
            )),
        })
        .collect()
}

fn json_raw(v: &serde_json::Value) -> Raw {
    use serde_json::Value;
    match v {
        Value::String(s) => Raw::Str(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Raw::Int(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Raw::Int(i128::from(u))
            } else {
                Raw::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::Bool(_) => Raw::Other("a boolean"),
        Value::Null => Raw::Other("null"),
        Value::Array(_) => Raw::Other("an array"),
        Value::Object(_) => Raw::Other("an object"),
    }
}

fn json_entries(text: &str, origin: &str) -> Result<Vec<Entry>, String> {
    use serde_json::Value;
    let root: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "layout spec `{origin}` is not valid JSON (line {}, column {}: {}): fix the syntax",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        )
    })?;
    let items = match &root {
        Value::Array(a) => a,
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| k.as_str() != "tensors") {
                return Err(format!(
                    "layout spec `{origin}` has an unknown top-level key `{k}`: a JSON spec is {{\"tensors\": [...]}} or a bare array"
                ));
            }
            match o.get("tensors") {
                Some(Value::Array(a)) => a,
                Some(_) => {
                    return Err(format!(
                        "layout spec `{origin}`: `tensors` must be an array of objects, one per tensor"
                    ));
                }
                None => {
                    return Err(format!(
                        "layout spec `{origin}` has no `tensors` array: write {{\"tensors\": [{{\"name\": \"w\", \"size\": \"1GiB\"}}]}}"
                    ));
                }
            }
        }
        _ => {
            return Err(format!(
                "layout spec `{origin}` is neither an object nor an array: write {{\"tensors\": [...]}}"
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(o) => Ok(o.iter().map(|(k, v)| (k.clone(), json_raw(v))).collect()),
            _ => Err(format!(
                "layout spec `{origin}`, tensor {}: it is not an object: write each tensor as {{\"name\": ..., \"size\": ...}}",
                i + 1
            )),
        })
        .collect()
}

/// serde_json appends " at line L column C"; the message gives the position itself.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

#[cfg(test)]
mod tests;
