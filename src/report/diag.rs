//! The one diagnostics channel: warnings and notes for the person running the command, always on
//! standard error, never in the results. While a progress bar is drawn, a line goes above it
//! (through the bar, so the bar is redrawn below it); otherwise straight to stderr. A hidden bar
//! (`--quiet`, or stderr not a terminal) prints nothing through `println`, which is how `--force`
//! warnings used to be lost: everything that must be seen comes here instead.
//!
//! [`warn`] always prints, `--quiet` or not; [`note`] is for informative lines, which the caller
//! leaves out under `--quiet`. A closed stderr loses the line without a panic (`eprintln!` would
//! panic). May import nothing of the crate.

use std::io::Write;
use std::sync::Mutex;

/// The bar drawn now, if any ([`crate::report::Progress`] registers a visible bar while it lives).
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Lines routed to a test's capture instead of stderr (see [`capture`]).
static CAPTURE: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Registers the visible progress bar (`None` when it is finished or hidden).
pub fn set_bar(bar: Option<indicatif::ProgressBar>) {
    if let Ok(mut b) = BAR.lock() {
        *b = bar;
    }
}

fn emit(line: &str) {
    if let Ok(mut c) = CAPTURE.lock()
        && let Some(v) = c.as_mut()
    {
        v.push(line.to_string());
        return;
    }
    let bar = BAR.lock().ok().and_then(|b| b.clone());
    match bar {
        Some(b) if !b.is_finished() && !b.is_hidden() => b.println(line),
        _ => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

/// A warning (what `--force` lifted, a release that failed): always reaches stderr, bar or not,
/// `--quiet` or not. The line is printed as given.
pub fn warn(line: &str) {
    emit(line);
}

/// A note (what the command is doing, where a held file is): stderr, above a bar when one is
/// drawn. Callers leave notes out under `--quiet`.
pub fn note(line: &str) {
    emit(line);
}

/// Runs `f` with every diagnostic line collected instead of printed, and returns them: for tests
/// of what a command says. Not reentrant; lines from other threads meanwhile are collected too.
pub fn capture(f: impl FnOnce()) -> Vec<String> {
    if let Ok(mut c) = CAPTURE.lock() {
        *c = Some(Vec::new());
    }
    f();
    CAPTURE
        .lock()
        .ok()
        .and_then(|mut c| c.take())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_reach_the_channel_with_a_hidden_bar() {
        let got = capture(|| {
            // A quiet progress bar (hidden): its own println would print nothing.
            let p = crate::report::Progress::new(3, true);
            p.println("progress only");
            p.warn("WARNING: --force: lifted");
            note("a note");
        });
        assert_eq!(got, ["WARNING: --force: lifted", "a note"]);
    }
}
