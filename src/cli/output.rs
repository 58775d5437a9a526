//! The output flag group (`--json`, `--csv`, `--out FILE`) and the one function that writes a
//! finished command's result in the chosen form ([`OutputArgs::write_result`]): the file named by
//! `--out` (atomically; CSV for a `.csv` name, else JSON), then JSON or CSV on standard output.
//! Human tables are the command's own (they stream while it runs): [`OutputArgs::tables`] says
//! whether to print them. May import: `report` (the serialisers and the atomic writer), `error`.

use crate::error::Result;
use crate::report::{OutFormat, sink};

/// The output flags every measuring command shares (`selftest`, `sweep`, `probe`, `layout`,
/// `cache`, `cache effect`), flattened into each one's options so they read the same everywhere.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Print the result document as JSON on stdout.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the rows as CSV on stdout.
    #[arg(long)]
    pub csv: bool,
    /// Write results to this file as they finish (.csv for CSV, else JSON), atomically.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

impl OutputArgs {
    /// True when neither `--json` nor `--csv` was given: standard output gets the human tables.
    pub fn tables(&self) -> bool {
        !self.json && !self.csv
    }

    /// Fails (exit 2, one sentence) before anything runs when `--out` cannot be written.
    pub fn check(&self) -> Result<()> {
        match &self.out {
            Some(p) => sink::check_writable(p),
            None => Ok(()),
        }
    }

    /// Writes a finished result: `--out` first (by its extension), then `--json` or `--csv` on
    /// standard output. `json` and `csv` produce the bytes of each form; each runs only when
    /// that form is wanted.
    pub fn write_result(
        &self,
        json: impl Fn() -> Result<Vec<u8>>,
        csv: impl Fn() -> Result<Vec<u8>>,
    ) -> Result<()> {
        if let Some(out) = &self.out {
            let bytes = match OutFormat::for_path(out) {
                OutFormat::Json => json()?,
                OutFormat::Csv => csv()?,
            };
            crate::report::write_atomic(out, &bytes)?;
        }
        if self.json {
            sink::print_stdout(json()?)?;
        } else if self.csv {
            sink::print_stdout(csv()?)?;
        }
        Ok(())
    }

    /// Prints a finished result document on standard output in the chosen form: `--json` the
    /// document, `--csv` its rows, else the human text `text` makes (only then is it rendered).
    /// For commands whose sink already wrote `--out` as rows finished.
    pub fn print<D: serde::Serialize, R: serde::Serialize>(
        &self,
        doc: &D,
        rows: &[R],
        text: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.json {
            sink::print_stdout(sink::to_json(doc)?)
        } else if self.csv {
            sink::print_stdout(sink::to_csv(rows)?)
        } else {
            sink::print_stdout(text())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_out_file_takes_the_form_its_name_says() {
        let d = tempfile::tempdir().unwrap();
        for (name, want) in [("r.json", "J"), ("r.CSV", "C"), ("r", "J")] {
            let o = OutputArgs {
                out: Some(d.path().join(name)),
                ..OutputArgs::default()
            };
            assert!(o.tables());
            o.write_result(|| Ok(b"J".to_vec()), || Ok(b"C".to_vec()))
                .unwrap();
            assert_eq!(std::fs::read_to_string(d.path().join(name)).unwrap(), want);
        }
        let o = OutputArgs {
            json: true,
            ..OutputArgs::default()
        };
        assert!(!o.tables());
        // Only the wanted form is produced: a failing CSV writer is never called for --json.
        let r = o.write_result(
            || Ok(Vec::new()),
            || Err(crate::error::Error::Failed("called".into())),
        );
        assert!(r.is_ok());
    }

    #[test]
    fn an_out_file_in_a_missing_folder_is_refused_before_running() {
        let o = OutputArgs {
            out: Some("/nonexistent-cumemlab-dir/r.json".into()),
            ..OutputArgs::default()
        };
        assert_eq!(o.check().unwrap_err().exit_code(), 2);
    }
}
