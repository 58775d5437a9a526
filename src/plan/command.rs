//! `cumemlab plan` on the command line: typed options, the default target (this machine's GPU
//! when there is one, from the same estimate `info` prints; else the `gb10` profile), and output.

use std::path::PathBuf;

use super::{
    PlanOptions, Precision, Target, Workload, capacity_matrix, plan, render_capacity_text,
    render_text,
};
use crate::error::{Error, Result};

/// `cumemlab plan` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab plan --model llama-3.1-70b --precision fp8 --target gb10\n  cumemlab plan --model llama-3.1-70b --precision fp8 --context 128k --workload inference -v\n  cumemlab plan --params 8B --workload qlora --lora-rank 64 --target h100-80gb\n  cumemlab plan --config ./config.json --precision fp8,nvfp4 --context 32768 --json\n  cumemlab plan --capacity --target h200\n\nModels: llama-3.1-8b, llama-3.1-70b, llama-3.2-1b, llama-3.2-3b, mistral-7b, mixtral-8x7b, qwen2.5-7b,\nqwen2.5-32b, qwen2.5-72b, gemma-2-9b, gemma-2-27b, gpt-oss-20b, gpt-oss-120b.\nTargets: gb10, h100-80gb, h200, rtx4090, rtx5090, or a size such as 96GiB. GB = 1e9 bytes throughout.\nThe answer is the verdict and one summary table; -v (--verbose) adds the model's shape, every\nline with its formula, the capacity matrix and the assumptions."
)]
pub struct PlanArgs {
    /// Parameter count, e.g. 70B or 7.6e9.
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["model", "config"])]
    pub params: Option<String>,
    /// A model from the built-in table (see below).
    #[arg(long, conflicts_with = "config")]
    pub model: Option<String>,
    /// A Hugging Face style config.json.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Weight precision, or several comma-separated: fp32 (f32, float32), tf32, fp16 (f16, half), bf16, fp8-e4m3 (fp8, e4m3), fp8-e5m2 (e5m2), int8, int4, nvfp4, mxfp4, nf4, or all. Default: all.
    #[arg(long = "precision", visible_alias = "precisions", value_parser = parse_precisions)]
    pub precisions: Option<crate::cli::List<Precision>>,
    /// inference, full-finetune (full), lora, qlora or all.
    #[arg(long, default_value = "all", value_parser = parse_workload)]
    pub workload: Workload,
    /// Context length in tokens: 8192, or with k = 1024 tokens as model cards count them (128k = 131,072), M = 1024k.
    #[arg(long, default_value_t = super::DEFAULT_CONTEXT, value_parser = parse_context)]
    pub context: u64,
    /// Sequences per batch.
    #[arg(long, default_value_t = super::DEFAULT_BATCH, value_parser = clap::value_parser!(u64))]
    pub batch: u64,
    /// KV-cache precision (same names as --precision).
    #[arg(long, default_value = "fp16", value_parser = parse_precision)]
    pub kv_dtype: Precision,
    /// LoRA/QLoRA adapter rank.
    #[arg(long, default_value_t = super::DEFAULT_LORA_RANK, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub lora_rank: u32,
    /// Training with (true) or without (false) gradient checkpointing; both when not given.
    #[arg(long)]
    pub gradient_checkpointing: Option<bool>,
    /// gb10, h100-80gb, h200, rtx4090, rtx5090, or a size. Default: this machine's GPU (as `info` estimates it), else gb10.
    #[arg(long, value_parser = parse_target)]
    pub target: Option<Target>,
    /// Only the capacity matrix (largest model per workload and precision) for the target.
    #[arg(long)]
    pub capacity: bool,
    /// The long form (same as -v): shape, formulas line by line, capacity matrix, assumptions.
    #[arg(long)]
    pub explain: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The largest context `--context` accepts, in tokens: the planner's own limit (one limit, named
/// the same by the parser and by `plan::plan`).
pub const MAX_CONTEXT: u64 = super::CONTEXT_SEARCH_CAP;

/// `--context`: a whole number of tokens, optionally with `k` (x1024) or `M` (x1024^2), as model
/// cards write "128k" for 131,072 tokens.
pub fn parse_context(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().replace(['_', ','], "");
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1024u64),
        Some((i, 'm' | 'M')) => (&t[..i], 1024 * 1024),
        _ => (t.as_str(), 1),
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!(
            "`{s}` is not a token count: give a whole number such as 8192 or 128k (k = 1024 tokens)"
        )
    })?;
    match n.checked_mul(mult) {
        Some(v) if (1..=MAX_CONTEXT).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}` is outside 1..={MAX_CONTEXT} tokens: give for example 8192 or 128k"
        )),
    }
}

fn parse_precisions(s: &str) -> std::result::Result<crate::cli::List<Precision>, String> {
    Precision::parse_list(s)
        .map(crate::cli::List)
        .map_err(|e| e.to_string())
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).map_err(|e| e.to_string())
}

fn parse_workload(s: &str) -> std::result::Result<Workload, String> {
    Workload::parse(s).map_err(|e| e.to_string())
}

fn parse_target(s: &str) -> std::result::Result<Target, String> {
    Target::parse(s).map_err(|e| e.to_string())
}

/// This machine's GPU 0 as a target, from the same estimate `info` shows; `None` without a GPU.
pub fn device_target() -> Option<Target> {
    let env = crate::env::Environment::collect(Some(&[0]));
    let d = env.devices.first()?;
    Some(Target {
        name: format!("device 0 ({})", d.name),
        bytes: d.usable.estimate_bytes,
        unified: d.architecture.is_unified(),
    })
}

/// Runs `plan` from the command line.
pub fn main(args: PlanArgs, verbose: bool) -> Result<()> {
    let verbose = verbose || args.explain;
    let mut notes = Vec::new();
    let target = match args.target {
        Some(t) => t,
        None => match device_target() {
            Some(t) => t,
            None => {
                notes.push(
                    "no GPU here: planning against the gb10 profile (use --target to choose)"
                        .to_string(),
                );
                Target::named(super::DEFAULT_TARGET)
                    .ok_or_else(|| Error::Failed("the gb10 profile is missing".into()))?
            }
        },
    };
    if args.capacity {
        let c = capacity_matrix(&target);
        if args.json {
            crate::report::sink::print_stdout(crate::report::sink::to_json(&c)?)?;
        } else {
            crate::report::sink::print_stdout(render_capacity_text(&c))?;
        }
        return Ok(());
    }
    if args.params.is_none() && args.model.is_none() && args.config.is_none() {
        return Err(Error::usage(
            "plan needs a model: give --params 70B, --model llama-3.1-70b or --config config.json (or --capacity for the capacity matrix)",
        ));
    }
    let opts = PlanOptions {
        params: args.params,
        model: args.model,
        config: args.config,
        precisions: args.precisions.map(|l| l.0).unwrap_or_default(),
        workload: args.workload,
        context: args.context,
        batch: args.batch,
        kv_dtype: args.kv_dtype,
        lora_rank: args.lora_rank,
        gradient_checkpointing: args.gradient_checkpointing,
        target,
    };
    let mut report = plan(&opts).map_err(|e| Error::usage(e.to_string()))?;
    report.notes.extend(notes);
    if args.json {
        crate::report::sink::print_stdout(crate::report::sink::to_json(&report)?)?;
    } else {
        crate::report::sink::print_stdout(render_text(&report, verbose))?;
    }
    Ok(())
}
