//! `cumemlab load`'s options (clap derive), parsed into typed values before anything runs.
//! Imports: the shared output flags and the size parser only.

use std::path::PathBuf;

use crate::cli::OutputArgs;

/// `cumemlab load [FILE]`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  cumemlab load                                   1 GiB llama-3.1-8b-shaped file, every path, cold and warm
  cumemlab load --size 16GiB --paths mmap-copy,pinned-staging --repeat 5
  cumemlab load model.safetensors --states warm   a real file, page cache warm
  cumemlab load --copies                          the host<->device copy matrix
  cumemlab load --dry-run --size 4GiB             write, checksum and remove the file; no GPU needed
  sudo cumemlab load --drop-caches                cold runs drop the whole page cache first")]
pub struct LoadArgs {
    /// A .safetensors file to load; without it a synthetic file is written (and removed after).
    pub file: Option<PathBuf>,
    /// The model whose tensor sizes the synthetic file has (the planner's models: llama-3.1-8b, ...).
    #[arg(long, default_value = "llama-3.1-8b")]
    pub preset: String,
    /// Size of the synthetic file (its tensors scaled to it), e.g. 1GiB, 16GiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size_arg)]
    pub size: u64,
    /// Folder for the synthetic file (default: $TMPDIR unless it is tmpfs, else the current folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Load paths to run, comma-separated, or `all` (see the list in the README).
    #[arg(long, default_value = "all")]
    pub paths: String,
    /// Page-cache states: cold, warm or both (`cold,warm`).
    #[arg(long, default_value = "cold,warm")]
    pub states: String,
    /// Runs of each path and state (medians with min-max are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Cold runs drop the whole page cache first (root only), besides evicting the file's pages.
    #[arg(long)]
    pub drop_caches: bool,
    /// Run the host<->device copy matrix instead of loading a file.
    #[arg(long)]
    pub copies: bool,
    /// Largest size of the copy matrix (default 1GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size_arg)]
    pub copies_max: u64,
    /// Write the file (or read FILE's header), compute its checksum on the CPU, remove it; no GPU.
    #[arg(long)]
    pub dry_run: bool,
    /// The device to load onto.
    // Local, not the shared flag groups: one device (a model is loaded onto one), and `--headroom`
    // / `--force` say what they guard here (pinned buffers and managed memory).
    #[arg(long, default_value_t = 0)]
    pub device: i32,
    /// Bytes the host must keep available (pinned buffers and managed memory are checked against it).
    #[arg(long, default_value = "8GiB", value_parser = parse_size_arg)]
    pub headroom: u64,
    /// Allow requests past the safety ceiling (printed warning; never managed memory past free).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_size_arg(s: &str) -> std::result::Result<u64, String> {
    crate::units::parse_size(s).map_err(|e| e.0)
}

/// A page-cache state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheState {
    Cold,
    Warm,
}

impl CacheState {
    pub fn key(self) -> &'static str {
        match self {
            CacheState::Cold => "cold",
            CacheState::Warm => "warm",
        }
    }

    /// `cold`, `warm`, `cold,warm`; one sentence on anything else.
    pub fn parse_list(s: &str) -> std::result::Result<Vec<CacheState>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let st = match part.to_ascii_lowercase().as_str() {
                "cold" => CacheState::Cold,
                "warm" => CacheState::Warm,
                _ => {
                    return Err(format!(
                        "--states: unknown state `{part}`; give cold, warm or cold,warm"
                    ));
                }
            };
            if !out.contains(&st) {
                out.push(st);
            }
        }
        if out.is_empty() {
            return Err("--states is empty; give cold, warm or cold,warm".into());
        }
        Ok(out)
    }
}
