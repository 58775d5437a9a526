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

/// The visible bars, newest last ([`crate::report::Progress`] registers each one it draws). Weak
/// references: a bar ends when its owner drops it, as if it had never been registered.
static BARS: Mutex<Vec<indicatif::WeakProgressBar>> = Mutex::new(Vec::new());

/// Lines routed to a test's capture instead of stderr (see [`capture`]).
static CAPTURE: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Registers a visible progress bar: lines go above the newest one still drawn.
pub fn register_bar(bar: &indicatif::ProgressBar) {
    if let Ok(mut bars) = BARS.lock() {
        bars.retain(|b| b.upgrade().is_some_and(|b| !b.is_finished()));
        bars.push(bar.downgrade());
    }
}

/// The newest registered bar that is still drawn.
fn drawn_bar() -> Option<indicatif::ProgressBar> {
    let bars = BARS.lock().ok()?;
    bars.iter()
        .rev()
        .filter_map(|b| b.upgrade())
        .find(|b| !b.is_finished() && !b.is_hidden())
}

fn emit(line: &str) {
    if let Ok(mut c) = CAPTURE.lock()
        && let Some(v) = c.as_mut()
    {
        v.push(line.to_string());
        return;
    }
    match drawn_bar() {
        Some(b) => b.println(line),
        None => {
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
        // (Lines of other tests running meanwhile may be captured too: look for ours.)
        let at = |l: &str| got.iter().position(|g| g == l);
        let (w, n) = (at("WARNING: --force: lifted"), at("a note"));
        assert!(w.is_some() && n.is_some() && w < n, "{got:?}");
        assert_eq!(
            at("progress only"),
            None,
            "a hidden bar's progress line printed"
        );
    }
}
