//! The command-line layer below the experiments: the flag groups every subcommand flattens into
//! its options (output: [`OutputArgs`]; device selection: [`DeviceSel`]; safety: [`SafetyArgs`]),
//! the value parsers for lists, and the one function that writes a command's result in the chosen
//! form ([`OutputArgs::write_result`]). Values are parsed into sizes, strategies and devices by clap
//! value parsers, so bad input fails before anything runs, with exit code 2.
//!
//! The enum of subcommands is not here: it names every experiment, and the experiments import
//! these flag groups, so it lives in `src/main.rs`, the only place that needs it (no import
//! cycle). May import: `report` (the writers), `memory`, `units`, `error`; never `experiments`.

pub mod device;
pub mod output;
pub mod safety;

pub use device::{DeviceArgs, DeviceSel};
pub use output::OutputArgs;
pub use safety::SafetyArgs;

/// A comma-separated list as one option value. (clap's derive reads `Option<Vec<T>>` as a
/// repeatable option; a list typed as one value needs this wrapper.)
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

/// `--sizes` lists.
pub fn size_list(s: &str) -> std::result::Result<List<u64>, String> {
    crate::units::parse_size_list(s).map(List).map_err(|e| e.0)
}

/// `--strategies` lists.
pub fn strategy_list(s: &str) -> std::result::Result<List<crate::memory::Strategy>, String> {
    crate::memory::Strategy::parse_list(s).map(List)
}
