//! The result envelope: the fields that open every command's JSON document, so any file says what
//! wrote it and how to read it: `schema` ("cumemlab"), `schema_version`, `tool_version`,
//! `experiment` (the subcommand), `command_line`, `started_at`, `finished_at`, `complete`,
//! `interrupted`. [`crate::report::Document`] (sweep, probe, layout, cache), the lab's
//! `results.json` and `compare --json` carry these same fields by these names; `info --json` and
//! `selftest --json` carry them through [`Enveloped`] (named change of issue 13: before, they
//! printed the bare report, and the bare array of per-device reports).
//!
//! Readers accept both shapes: an enveloped `info` document still deserialises as the bare
//! `InfoReport` (the envelope's fields are extra keys), and [`read_list`] takes the `selftest`
//! array bare or enveloped. May import: `report::sink`, `error`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::sink::{SCHEMA, SCHEMA_VERSION, command_line, now_rfc3339};

/// The opening fields of every result document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema: String,
    pub schema_version: u32,
    pub tool_version: String,
    /// The subcommand that produced it (`info`, `selftest`, `sweep`...).
    pub experiment: String,
    /// The command line, for reproduction.
    pub command_line: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// False while running and when interrupted.
    pub complete: bool,
    pub interrupted: bool,
}

impl Envelope {
    /// The envelope of a run of `experiment` starting now (not yet complete).
    pub fn start(experiment: &str) -> Envelope {
        Envelope {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            experiment: experiment.into(),
            command_line: command_line(),
            started_at: now_rfc3339(),
            finished_at: None,
            complete: false,
            interrupted: false,
        }
    }

    /// Marks the run finished now, complete unless `interrupted`.
    pub fn finish(mut self, interrupted: bool) -> Envelope {
        self.finished_at = Some(now_rfc3339());
        self.complete = !interrupted;
        self.interrupted = interrupted;
        self
    }
}

/// A document: the envelope's fields, then the body's (an object: its fields join the top level).
#[derive(Debug, Clone, Serialize)]
pub struct Enveloped<'a, T: Serialize> {
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(flatten)]
    pub body: &'a T,
}

/// The body of a document whose result is a list (`selftest`: one report per device).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reports<T> {
    pub reports: Vec<T>,
}

/// Pretty JSON (with a final newline) of `body` under `envelope`.
pub fn to_json<T: Serialize>(envelope: Envelope, body: &T) -> Result<Vec<u8>> {
    crate::report::sink::to_json(&Enveloped { envelope, body })
}

/// A list read from a document of either shape: the bare JSON array older versions wrote, or an
/// enveloped document holding it under `reports`.
pub fn read_list<T: DeserializeOwned>(text: &str) -> Result<Vec<T>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Bare(Vec<T>),
        Enveloped(Reports<T>),
    }
    serde_json::from_str::<Either<T>>(text)
        .map(|e| match e {
            Either::Bare(v) | Either::Enveloped(Reports { reports: v }) => v,
        })
        .map_err(|e| Error::usage(format!("not a list of reports, bare or enveloped: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Body {
        figure: f64,
    }

    #[test]
    fn the_envelope_opens_the_document_and_the_body_follows() {
        let env = Envelope::start("info").finish(false);
        let bytes = to_json(env.clone(), &Body { figure: 1.5 }).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        // The keys in the order written (serde_json's Value would sort them).
        let text = String::from_utf8(bytes.clone()).unwrap();
        let mut keys: Vec<(usize, &str)> = v
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (text.find(&format!("\"{k}\":")).unwrap(), k.as_str()))
            .collect();
        keys.sort();
        let keys: Vec<&str> = keys.into_iter().map(|(_, k)| k).collect();
        assert_eq!(
            keys,
            [
                "schema",
                "schema_version",
                "tool_version",
                "experiment",
                "command_line",
                "started_at",
                "finished_at",
                "complete",
                "interrupted",
                "figure"
            ]
        );
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["experiment"], "info");
        assert_eq!(v["complete"], true);
        // The body alone still reads from the enveloped document, and so does the envelope.
        assert_eq!(
            serde_json::from_slice::<Body>(&bytes).unwrap(),
            Body { figure: 1.5 }
        );
        assert_eq!(serde_json::from_slice::<Envelope>(&bytes).unwrap(), env);
    }

    #[test]
    fn a_list_reads_bare_and_enveloped() {
        let bare = "[{\"figure\": 1.0}, {\"figure\": 2.0}]";
        let want = vec![Body { figure: 1.0 }, Body { figure: 2.0 }];
        assert_eq!(read_list::<Body>(bare).unwrap(), want);
        let wrapped = to_json(
            Envelope::start("selftest").finish(true),
            &Reports { reports: want },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&wrapped).unwrap();
        assert_eq!(
            (v["complete"].clone(), v["interrupted"].clone()),
            (false.into(), true.into())
        );
        let got = read_list::<Body>(std::str::from_utf8(&wrapped).unwrap()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(read_list::<Body>("{\"x\": 1}").unwrap_err().exit_code(), 2);
    }
}
