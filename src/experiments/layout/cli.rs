//! `cumemlab layout` on the command line: the clap options, the layout they name (preset,
//! model, config.json or spec file; pure, no GPU), `--dry-run`, and the run with its output
//! (table, `--json`, `--csv`, `--out`).

use std::path::PathBuf;
use std::time::Instant;

use super::{
    FreePattern, KvCache, Layout, LayoutOptions, findings, from_architecture, preflight, preset,
    read_spec, render, render_layout, run, spec,
};
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::{Gpu, interrupted, require_driver};
use crate::memory::{AllocOptions, Strategy};
use crate::plan::{BATCH_SEARCH_CAP, CONTEXT_SEARCH_CAP, Precision};
use crate::report::ResultSink;
use crate::units::{GB, parse_size};

/// `cumemlab layout` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab layout --preset 13b-sim\n  cumemlab layout --model llama-3.1-8b --precision bf16 --context 8192 --out layout.json\n  cumemlab layout --spec tensors.toml --strategy vmm --free random:42\n  cumemlab layout --model qwen2.5-7b --precision fp8 --strategy managed --touch --free largest\n  cumemlab layout --model llama-3.1-70b --precision nvfp4 --dry-run\n\nSpec files (.toml or .json): TOML lists [[tensor]] tables; JSON is {\"tensors\": [...]}\nor a bare array. Each tensor has a name, a size (a string with a unit: \"512MiB\", \"2GB\"),\nan optional count (copies named NAME.0, NAME.1, ...) and an optional dtype (fp32, tf32,\nfp16, bf16, fp8, fp8-e5m2, int8, int4, nvfp4, mxfp4, nf4). GB = 1e9 bytes, GiB = 2^30 bytes."
)]
pub struct LayoutArgs {
    /// A built-in layout: 13b-sim (embeddings 2 GB, attention 8 GB, feedforward 10 GB, layer norms 0.5 GB, output head 1 GB, activations 4 GB; GB = 1e9 bytes).
    #[arg(long, conflicts_with_all = ["model", "config", "spec"])]
    pub preset: Option<String>,
    /// A model from the planner's table (as `plan --model`): one tensor per layer component per layer (attn.qkv, attn.o, mlp.gate_up, mlp.down, norms), embeddings, lm head, and a KV cache per layer.
    #[arg(long, conflicts_with_all = ["config", "spec"])]
    pub model: Option<String>,
    /// A Hugging Face config.json (as `plan --config`), laid out like --model.
    #[arg(long, conflicts_with = "spec")]
    pub config: Option<PathBuf>,
    /// A spec file (.toml or .json) listing the tensors (see below).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// --model/--config: weight precision (fp32, tf32, fp16, bf16, fp8, fp8-e5m2, int8, int4, nvfp4, mxfp4, nf4). Default bf16.
    #[arg(long, value_parser = parse_precision)]
    pub precision: Option<Precision>,
    /// --model/--config: KV cache tokens per sequence. Default 8192.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=CONTEXT_SEARCH_CAP))]
    pub context: Option<u64>,
    /// --model/--config: sequences the KV cache holds. Default 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=BATCH_SEARCH_CAP))]
    pub batch: Option<u64>,
    /// --model/--config: KV cache precision. Default fp16.
    #[arg(long, value_parser = parse_precision)]
    pub kv_dtype: Option<Precision>,
    /// --model/--config: weights only, no KV cache.
    #[arg(long, conflicts_with_all = ["context", "batch", "kv_dtype"])]
    pub no_kv_cache: bool,
    /// The allocation strategy (one key: device, managed, managed+prefetch, managed+advise, pinned, registered, pageable, pool, vmm).
    #[arg(long, default_value = "device", value_parser = Strategy::parse)]
    pub strategy: Strategy,
    /// Which tensors the fragmentation test frees: every-other (odd positions), largest, random:SEED (a seeded random half), or none (no test).
    #[arg(long, default_value = "every-other", value_parser = FreePattern::parse)]
    pub free: FreePattern,
    /// Resolution of the largest-allocation search.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub resolution: u64,
    /// Run the GPU touch kernel over each tensor after allocating it (managed memory takes memory only when touched).
    #[arg(long)]
    pub touch: bool,
    /// Device ordinal.
    // One device, not the shared `--device N|all`: a layout is one model's tensors in one
    // device's memory, and its fragmentation figures are that device's.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    pub device: i32,
    #[command(flatten)]
    pub safety: crate::cli::SafetyArgs,
    /// Print the tensors and their total, then stop (no GPU needed).
    #[arg(long, conflicts_with = "out")]
    pub dry_run: bool,
    /// --json, --csv and --out (with --dry-run, --json and --csv print the tensors).
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).map_err(|e| e.to_string())
}

/// The layout the arguments name (pure: no GPU), or one sentence saying what is wrong.
pub fn layout_from_args(args: &LayoutArgs) -> Result<Layout> {
    let model_only: Vec<&str> = [
        args.precision.map(|_| "--precision"),
        args.context.map(|_| "--context"),
        args.batch.map(|_| "--batch"),
        args.kv_dtype.map(|_| "--kv-dtype"),
        args.no_kv_cache.then_some("--no-kv-cache"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let from_model = args.model.is_some() || args.config.is_some();
    if !from_model && !model_only.is_empty() {
        return Err(Error::usage(format!(
            "{} appl{} to --model and --config only: a preset or spec file gives its own sizes",
            model_only.join(" and "),
            if model_only.len() == 1 { "ies" } else { "y" }
        )));
    }
    let kv = (!args.no_kv_cache).then(|| KvCache {
        context: args.context.unwrap_or(crate::plan::DEFAULT_CONTEXT),
        batch: args.batch.unwrap_or(crate::plan::DEFAULT_BATCH),
        dtype: args.kv_dtype.unwrap_or(crate::plan::DEFAULT_KV_DTYPE),
    });
    let precision = args.precision.unwrap_or(Precision::Bf16);
    if let Some(p) = &args.preset {
        return preset(p).map_err(Error::usage);
    }
    if let Some(m) = &args.model {
        let spec = crate::plan::find_model(m).map_err(|e| Error::usage(e.to_string()))?;
        return Ok(from_architecture(&spec.architecture(), precision, kv));
    }
    if let Some(path) = &args.config {
        let loaded = crate::plan::load_config(path).map_err(|e| Error::usage(e.to_string()))?;
        // The same cap as a spec file, checked before any tensor is listed: per layer at most
        // the norms, four or five projections and a KV cache tensor; plus four model-wide.
        let a = &loaded.arch;
        let per_layer = a.norms_per_layer + 6;
        if a.layers.saturating_mul(per_layer).saturating_add(4) > spec::MAX_TENSORS {
            return Err(Error::usage(format!(
                "--config {}: {} layers make up to {} tensors, and a layout holds at most {}: check num_hidden_layers",
                path.display(),
                a.layers,
                a.layers.saturating_mul(per_layer),
                spec::MAX_TENSORS
            )));
        }
        let mut l = from_architecture(&loaded.arch, precision, kv);
        l.source = format!("config {} at {precision}", path.display());
        l.notes.extend(loaded.notes);
        return Ok(l);
    }
    if let Some(path) = &args.spec {
        return read_spec(path).map_err(Error::usage);
    }
    Err(Error::usage(
        "layout needs tensors: give --preset 13b-sim, --model llama-3.1-8b (with --precision), --config config.json or --spec FILE",
    ))
}

/// Runs `layout` from the command line.
pub fn main(args: LayoutArgs) -> Result<()> {
    let layout = layout_from_args(&args)?;
    if args.dry_run {
        return args
            .output
            .print(&layout, &layout.tensors, || render_layout(&layout));
    }
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    let drv = require_driver()?;
    let gpu = Gpu::open(&drv, args.device)?;
    let opts = LayoutOptions {
        layout,
        strategy: args.strategy,
        free_pattern: args.free,
        resolution: args.resolution,
        touch: args.touch,
        headroom: args.safety.headroom,
        force: args.safety.force,
        alloc: AllocOptions::default(),
        quiet: args.quiet || args.output.json || args.output.csv,
    };
    // Refuse an oversized layout before any file is written.
    if args.strategy.supported(&gpu.attrs).is_ok() {
        preflight(&gpu, &opts)?;
    }
    let env = Environment::collect(Some(&[args.device]));
    let mut sink = ResultSink::new("layout", env, args.output.out.as_deref())?;
    sink.doc.notes.push(format!(
        "{}: {} tensors, {:.3} GB (1e9), strategy {}, free pattern {}",
        opts.layout.source,
        opts.layout.tensors.len(),
        opts.layout.total_bytes() as f64 / GB as f64,
        opts.strategy,
        opts.free_pattern.name()
    ));
    sink.doc.notes.extend(opts.layout.notes.iter().cloned());
    let t = Instant::now();
    let result = run(&gpu, &opts, &mut sink);
    let was_interrupted = matches!(result, Err(Error::Interrupted)) || interrupted();
    let f = findings(&sink.doc.rows);
    sink.doc.notes.extend(f);
    sink.finish_run(&result, was_interrupted)?;
    args.output.print(&sink.doc, &sink.doc.rows, || {
        format!(
            "{}layout took {:.1} s\n",
            render(&sink.doc),
            t.elapsed().as_secs_f64()
        )
    })?;
    if was_interrupted {
        return Err(Error::Interrupted);
    }
    result
}
