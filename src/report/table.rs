//! Human output helpers: tables (comfy-table, Markdown style so they paste into reports and
//! READMEs unchanged) with units in their headers, and a progress bar on
//! stderr (indicatif) that hides itself when stderr is not a terminal or with `--quiet`.

use std::io::IsTerminal;

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{ContentArrangement, Table};

/// A table in the tool's style with the given header.
pub fn new_table<S: ToString>(header: &[S]) -> Table {
    let mut t = Table::new();
    t.load_style(ASCII_MARKDOWN)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    t
}

/// `title:` followed by one `- item` line per item; nothing when there are no items (the
/// "Skipped:" list of every experiment's text output).
pub fn bullet_section(title: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut out = format!("{title}:\n");
    for i in items {
        out.push_str(&format!("- {i}\n"));
    }
    out
}

/// A progress bar over a known number of steps.
///
/// A hidden one (quiet, or stderr not a terminal) prints nothing, not even through `println`: its
/// warnings go through [`crate::report::diag`], which finds the drawn bar, if any.
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A bar of `total` steps; hidden when `quiet` or when stderr is not a terminal.
    pub fn new(total: u64, quiet: bool) -> Progress {
        let visible = !quiet && std::io::stderr().is_terminal();
        if !visible {
            return Progress {
                bar: indicatif::ProgressBar::hidden(),
            };
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        crate::report::diag::register_bar(&bar);
        Progress { bar }
    }

    pub fn message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    pub fn inc(&self) {
        self.bar.inc(1);
    }

    /// Prints a progress line above the bar; nothing when the bar is hidden (`--quiet`, or
    /// stderr not a terminal): progress is for people watching. Warnings use [`Progress::warn`].
    pub fn println(&self, line: impl AsRef<str>) {
        self.bar.println(line.as_ref());
    }

    /// A warning (such as what `--force` lifted): always reaches stderr, bar or not, quiet or
    /// not, through the one diagnostics channel ([`crate::report::diag::warn`]).
    pub fn warn(&self, line: impl AsRef<str>) {
        crate::report::diag::warn(line.as_ref());
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
