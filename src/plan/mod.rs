//! The model-memory planner: pure arithmetic, no GPU. Given a model (a parameter count, a
//! well-known name, or a Hugging Face `config.json`), a workload (inference, full fine-tuning,
//! LoRA, QLoRA) and a target, it says how many bytes each part takes, with every formula
//! written out, whether it fits, the largest context and batch that do, and the largest model
//! per workload the target can hold. Sizes are reported in GB (1e9 B) with GiB (2^30 B) beside
//! them; the two are never mixed.
//!
//! Layout: `precision` (formats and bytes per parameter), `params` (parameter-count parser),
//! `arch` (shapes, derived counts, config files), `models` (built-in table), `target` (memory
//! profiles), `estimate` (the formulas and the fit), `capacity` (largest model per workload),
//! `render` (text tables).

mod arch;
mod capacity;
pub mod command;
mod estimate;
mod models;
mod params;
mod precision;
mod render;
mod target;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use arch::{
    Architecture, LoadedConfig, ParamBreakdown, load_config, parse_config, reference_shape,
};
pub use capacity::{
    CAPACITY_BATCH, CAPACITY_CONTEXT, CAPACITY_LORA_RANK, CapacityMatrix, CapacityRow,
    capacity_matrix,
};
pub use estimate::{
    BATCH_SEARCH_CAP, CONTEXT_SEARCH_CAP, Estimate, LargestFit, Limit, Line, RUNTIME_RESERVE_BYTES,
    TIGHT_FRACTION, Verdict,
};
pub use models::{MODELS, ModelSpec, find_model, model_names};
pub use params::parse_param_count;
pub use precision::Precision;
pub use render::{render_capacity_text, render_text};
pub use target::{Target, UNIFIED_HOST_HEADROOM_BYTES};

use crate::units::{GB, GIB};
use estimate::{Kind, Scenario, fmt_count, fmt_gb};

/// Default context length in tokens.
pub const DEFAULT_CONTEXT: u64 = 8192;
/// Default batch size.
pub const DEFAULT_BATCH: u64 = 1;
/// Default KV cache format.
pub const DEFAULT_KV_DTYPE: Precision = Precision::Fp16;
/// Default LoRA rank.
pub const DEFAULT_LORA_RANK: u32 = 16;
/// Default target profile (the tool's home platform).
pub const DEFAULT_TARGET: &str = "gb10";

/// Why a plan could not be made; `Display` is one sentence naming the bad input and the fix.
/// Every variant is bad input (the caller maps it to exit code 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// Missing or conflicting options, or an out-of-range number.
    Input(String),
    /// `--params` did not parse.
    Params(String),
    /// `--model` is not in the table.
    UnknownModel(String),
    /// `--config` could not be read or lacks a field.
    Config(String),
    /// A precision name did not parse.
    Precision(String),
    /// A target is neither a profile nor a size.
    Target(String),
    /// A workload name did not parse.
    Workload(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Input(m)
            | PlanError::Params(m)
            | PlanError::UnknownModel(m)
            | PlanError::Config(m)
            | PlanError::Precision(m)
            | PlanError::Target(m)
            | PlanError::Workload(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for PlanError {}

/// What to plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    Inference,
    FullFinetune,
    Lora,
    Qlora,
    /// All four.
    All,
}

impl Workload {
    /// Reads `inference`, `full-finetune` (also `full`, `finetune`), `lora`, `qlora`, `all`.
    pub fn parse(input: &str) -> Result<Workload, PlanError> {
        let s = input.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        Ok(match s.as_str() {
            "inference" | "infer" | "serve" => Workload::Inference,
            "full-finetune" | "full-fine-tune" | "full-fine-tuning" | "full" | "finetune"
            | "fine-tune" | "full-ft" | "ft" => Workload::FullFinetune,
            "lora" => Workload::Lora,
            "qlora" => Workload::Qlora,
            "all" => Workload::All,
            _ => {
                return Err(PlanError::Workload(format!(
                    "unknown workload `{input}`: use inference, full-finetune, lora, qlora or all"
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Inference => "inference",
            Workload::FullFinetune => "full-finetune",
            Workload::Lora => "lora",
            Workload::Qlora => "qlora",
            Workload::All => "all",
        }
    }

    fn includes(self, w: Workload) -> bool {
        self == Workload::All || self == w
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The planner's options, typed (the CLI parses into this).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// A parameter count (`70B`, `7.6e9`); exactly one of `params`, `model`, `config`.
    pub params: Option<String>,
    /// A name from the built-in table.
    pub model: Option<String>,
    /// A Hugging Face `config.json`.
    pub config: Option<PathBuf>,
    /// Weight formats for inference (and, among fp32/tf32/fp16/bf16, for full fine-tuning);
    /// empty means all.
    pub precisions: Vec<Precision>,
    pub workload: Workload,
    /// Tokens per sequence.
    pub context: u64,
    pub batch: u64,
    pub kv_dtype: Precision,
    pub lora_rank: u32,
    /// Training: Some(true) or Some(false) plans one mode; None shows both.
    pub gradient_checkpointing: Option<bool>,
    pub target: Target,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            params: None,
            model: None,
            config: None,
            precisions: Vec::new(),
            workload: Workload::All,
            context: DEFAULT_CONTEXT,
            batch: DEFAULT_BATCH,
            kv_dtype: DEFAULT_KV_DTYPE,
            lora_rank: DEFAULT_LORA_RANK,
            gradient_checkpointing: None,
            target: Target::named(DEFAULT_TARGET).unwrap_or(Target {
                name: DEFAULT_TARGET.to_string(),
                bytes: 119 * GIB,
                unified: true,
            }),
        }
    }
}

/// The model a plan is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub name: String,
    /// How it was given: `--params 70B`, `--model llama-3.1-8b`, `--config path`.
    pub input: String,
    pub source: String,
    /// Parameters the weights are counted from: the given count with `--params`, else the count
    /// derived from the shape.
    pub params: f64,
    /// Derived from the shape (for `--params`: the reference shape's count).
    pub params_derived: f64,
    /// The published count (built-in table only).
    pub params_published: Option<f64>,
    /// Parameters each token passes through (MoE: the routed experts only).
    pub active_params: f64,
    /// True when the shape is the reference shape (only a count was given).
    pub reference_shape: bool,
    pub architecture: Architecture,
    pub param_breakdown: ParamBreakdown,
}

/// The target and the budget planned against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub target: Target,
    pub gb: f64,
    pub gib: f64,
    pub host_headroom_bytes: u64,
    /// `target.bytes` less the host headroom.
    pub budget_bytes: u64,
    pub budget_gb: f64,
    pub budget_gib: f64,
    /// What a profile's figure means.
    pub note: Option<String>,
}

impl TargetSummary {
    fn new(t: &Target) -> TargetSummary {
        let budget = t.budget_bytes();
        TargetSummary {
            target: t.clone(),
            gb: t.bytes as f64 / GB as f64,
            gib: t.bytes as f64 / GIB as f64,
            host_headroom_bytes: t.host_headroom_bytes(),
            budget_bytes: budget,
            budget_gb: budget as f64 / GB as f64,
            budget_gib: budget as f64 / GIB as f64,
            note: t.profile_note().map(str::to_string),
        }
    }
}

/// One format's bytes per parameter and what the weights take in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRow {
    pub precision: Precision,
    pub bits_per_param: f64,
    /// Scale overhead included.
    pub bytes_per_param: f64,
    pub layout: String,
    pub weights_bytes: u64,
    pub weights_gb: f64,
    pub weights_gib: f64,
}

/// The settings a plan was made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSettings {
    pub workload: Workload,
    pub context: u64,
    pub batch: u64,
    pub kv_dtype: Precision,
    pub lora_rank: u32,
    pub gradient_checkpointing: Option<bool>,
}

/// Everything a plan found; serialize it for JSON, `render_text` for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    pub model: ModelSummary,
    pub target: TargetSummary,
    pub settings: PlanSettings,
    pub precisions: Vec<PrecisionRow>,
    pub estimates: Vec<Estimate>,
    pub capacity: CapacityMatrix,
    /// About this model and these settings.
    pub notes: Vec<String>,
    /// The formulas and thresholds behind every figure.
    pub assumptions: Vec<String>,
}

/// The model, its shape, the parameter count weights are counted from, and notes.
fn resolve_model(opts: &PlanOptions) -> Result<(ModelSummary, Vec<String>), PlanError> {
    let given: Vec<&str> = [
        opts.params.as_ref().map(|_| "--params"),
        opts.model.as_ref().map(|_| "--model"),
        opts.config.as_ref().map(|_| "--config"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(PlanError::Input(format!(
            "{} were all given: pass only one of --params, --model or --config",
            given.join(" and ")
        )));
    }
    let mut notes = Vec::new();
    let (arch, params, input, reference) = if let Some(p) = &opts.params {
        let params = parse_param_count(p).map_err(PlanError::Params)?;
        let arch = reference_shape(params);
        notes.push(format!(
            "only a parameter count was given: weights are exact, but the KV cache, activations and LoRA adapters use the reference shape ({}); pass --model or --config for exact figures",
            arch.describe()
        ));
        (arch, params, format!("--params {p}"), true)
    } else if let Some(m) = &opts.model {
        let spec = find_model(m)?;
        let arch = spec.architecture();
        let params = arch.params_derived();
        notes.push(format!(
            "weights are counted from the {} parameters derived from the shape (published: {}); biases and attention sinks (under 0.1%) are not counted",
            fmt_count(params),
            fmt_count(spec.params_published)
        ));
        (arch, params, format!("--model {}", spec.key), false)
    } else if let Some(path) = &opts.config {
        let loaded = load_config(path)?;
        notes.extend(loaded.notes);
        let params = loaded.arch.params_derived();
        notes.push(format!(
            "weights are counted from the {} parameters derived from the config; biases are not counted",
            fmt_count(params)
        ));
        (
            loaded.arch,
            params,
            format!("--config {}", path.display()),
            false,
        )
    } else {
        return Err(PlanError::Input(
            "no model given: pass --params (for example 70B), --model (for example llama-3.1-8b) or --config config.json".to_string(),
        ));
    };
    let pb = arch.param_breakdown();
    let active = if reference { params } else { pb.active_params };
    Ok((
        ModelSummary {
            name: arch.name.clone(),
            input,
            source: arch.source.clone(),
            params,
            params_derived: pb.total_params,
            params_published: arch.params_published,
            active_params: active,
            reference_shape: reference,
            architecture: arch,
            param_breakdown: pb,
        },
        notes,
    ))
}

/// The formulas and thresholds, one sentence each.
fn assumptions() -> Vec<String> {
    vec![
        "units: GB = 1e9 bytes and GiB = 2^30 bytes; every line also gives its exact bytes".to_string(),
        "weights: parameters x bytes per parameter of the format, scale overhead included; every parameter (embeddings and lm head too) is counted at the chosen format, though quantized checkpoints often keep those two in 16-bit".to_string(),
        "KV cache: 2 (K and V) x layers x kv_heads x head_dim x context x batch x bytes of the KV format; sliding-window layers hold min(context, window) tokens".to_string(),
        format!(
            "runtime reserve: a fixed {} GB for the CUDA context, cuBLAS/cuDNN workspaces and allocator fragmentation, in every workload",
            fmt_gb(RUNTIME_RESERVE_BYTES)
        ),
        "inference activation workspace: context x batch x (2 x hidden + 2 x active experts x intermediate) x 2 B (the residual stream and the gated MLP's widest tensors during a one-pass prefill with FlashAttention; 4 B for fp32/tf32) + batch x vocab x 4 B for last-token fp32 logits; engines with chunked prefill need less".to_string(),
        "full fine-tuning states (Rajbhandari et al. 2020, ZeRO, arXiv:1910.02054): 16-bit mixed precision is 2 B weights + 2 B gradients + 4 B fp32 master copy + 8 B AdamW (m, v) = 16 B/param; fp32 and tf32 are 4 + 4 + 8 = 16 B/param".to_string(),
        "training activations per layer, 16-bit: context x batch x (17 x hidden + 8 x active experts x intermediate) B; from Korthikanti et al. 2022, 'Reducing Activation Recomputation in Large Transformer Models' (arXiv:2205.05198), eq. 1, s·b·h·(34 + 5·a·s/h): its attention and norm terms 15·s·b·h are kept, its 5·a·s²·b attention-score term is dropped (FlashAttention recomputes scores), and its 19·s·b·h GeLU MLP is replaced by a gated MLP: 2·s·b·h input + 8·s·b·i (gate, up, activation and product, 2 B each) per active expert; fp32 doubles it".to_string(),
        "without checkpointing activations are layers x the per-layer figure; with gradient checkpointing they are 2 B x context x batch x hidden x layers (each layer's input) plus one layer recomputed during backward".to_string(),
        "training logits: context x batch x vocab x (2 B logits + 4 B fp32 copy for the cross-entropy loss)".to_string(),
        "LoRA: adapters of rank r on q, k, v, o, gate, up, down (of every expert in a MoE), r x (in + out) parameters each, kept in fp32: weights 4 B + gradients 4 B + AdamW 8 B = 16 B per adapter parameter; frozen base in bf16".to_string(),
        "QLoRA (Dettmers et al. 2023, arXiv:2305.14314): frozen linear layers in NF4 with double quantization, 4 bits + 8-bit scale per 64 + fp32 scale per 64 x 256 = 4.127 bits (0.5159 B) per parameter; embeddings, lm head and norms stay in bf16 (as bitsandbytes does); adapters as for LoRA".to_string(),
        format!(
            "verdict: fits when the total is at most {:.0}% of the budget, tight above that up to 100%, does not fit above the budget; the budget is the target's memory, less {} GiB host headroom on unified-memory targets (gb10)",
            TIGHT_FRACTION * 100.0,
            UNIFIED_HOST_HEADROOM_BYTES / GIB
        ),
        format!(
            "largest context and batch: the largest value whose total stays within the budget (fits or tight), searched up to the model's maximum context (else {} tokens) and batch {}",
            fmt_count(CONTEXT_SEARCH_CAP as f64),
            fmt_count(BATCH_SEARCH_CAP as f64)
        ),
    ]
}

/// Plans memory for `opts`.
pub fn plan(opts: &PlanOptions) -> Result<PlanReport, PlanError> {
    check_options(opts)?;
    let (model, mut notes) = resolve_model(opts)?;
    let arch = &model.architecture;
    let budget = opts.target.budget_bytes();

    let inference_precisions: Vec<Precision> = if opts.precisions.is_empty() {
        Precision::ALL.to_vec()
    } else {
        opts.precisions.clone()
    };
    let training_precisions: Vec<Precision> = if opts.precisions.is_empty() {
        vec![Precision::Fp32, Precision::Bf16]
    } else {
        opts.precisions
            .iter()
            .copied()
            .filter(|p| p.is_training())
            .collect()
    };
    if opts.workload == Workload::FullFinetune && training_precisions.is_empty() {
        return Err(PlanError::Precision(
            "full fine-tuning needs a training precision: add fp32, tf32, fp16 or bf16 to the precisions".to_string(),
        ));
    }
    let kinds = scenario_kinds(
        opts,
        &inference_precisions,
        &training_precisions,
        &mut notes,
    );
    let estimates: Vec<Estimate> = kinds
        .into_iter()
        .map(|kind| {
            Scenario {
                arch,
                params: model.params,
                kind,
                lora_rank: opts.lora_rank,
            }
            .estimate(opts.context, opts.batch, budget)
        })
        .collect();

    notes.extend(shape_notes(opts, &model));

    let precisions = inference_precisions
        .iter()
        .map(|&p| {
            let bytes = (model.params * p.bytes_per_param()).round() as u64;
            PrecisionRow {
                precision: p,
                bits_per_param: p.bits_per_param(),
                bytes_per_param: p.bytes_per_param(),
                layout: p.layout().to_string(),
                weights_bytes: bytes,
                weights_gb: bytes as f64 / GB as f64,
                weights_gib: bytes as f64 / GIB as f64,
            }
        })
        .collect();

    Ok(PlanReport {
        target: TargetSummary::new(&opts.target),
        settings: PlanSettings {
            workload: opts.workload,
            context: opts.context,
            batch: opts.batch,
            kv_dtype: opts.kv_dtype,
            lora_rank: opts.lora_rank,
            gradient_checkpointing: opts.gradient_checkpointing,
        },
        precisions,
        estimates,
        capacity: capacity_matrix(&opts.target),
        notes,
        assumptions: assumptions(),
        model,
    })
}

/// The options' ranges, checked before anything is computed: one sentence each.
fn check_options(opts: &PlanOptions) -> Result<(), PlanError> {
    if opts.context == 0 || opts.context > CONTEXT_SEARCH_CAP {
        return Err(PlanError::Input(format!(
            "--context {} is out of range: give 1 to {} tokens",
            opts.context,
            fmt_count(CONTEXT_SEARCH_CAP as f64)
        )));
    }
    if opts.batch == 0 || opts.batch > BATCH_SEARCH_CAP {
        return Err(PlanError::Input(format!(
            "--batch {} is out of range: give 1 to {}",
            opts.batch,
            fmt_count(BATCH_SEARCH_CAP as f64)
        )));
    }
    if opts.lora_rank == 0 {
        return Err(PlanError::Input(
            "LoRA rank 0 has no adapters: give a rank of at least 1 (commonly 8 to 64)".to_string(),
        ));
    }
    if opts.target.bytes == 0 {
        return Err(PlanError::Target(format!(
            "target `{}` has 0 bytes: give a profile or a positive size like 80GB",
            opts.target.name
        )));
    }
    if opts.target.budget_bytes() == 0 {
        return Err(PlanError::Target(format!(
            "target `{}` leaves nothing after the {} GiB host headroom of a unified-memory target: give a larger size",
            opts.target.name,
            UNIFIED_HOST_HEADROOM_BYTES / GIB
        )));
    }
    Ok(())
}

/// The scenarios to estimate: inference per format, full fine-tuning per training format, LoRA
/// and QLoRA, each with and without gradient checkpointing unless one was asked for.
fn scenario_kinds(
    opts: &PlanOptions,
    inference_precisions: &[Precision],
    training_precisions: &[Precision],
    notes: &mut Vec<String>,
) -> Vec<Kind> {
    let checkpointing: Vec<bool> = match opts.gradient_checkpointing {
        Some(c) => vec![c],
        None => vec![true, false],
    };

    let mut kinds = Vec::new();
    if opts.workload.includes(Workload::Inference) {
        kinds.extend(inference_precisions.iter().map(|&weights| Kind::Inference {
            weights,
            kv: opts.kv_dtype,
        }));
    }
    if opts.workload.includes(Workload::FullFinetune) {
        if training_precisions.is_empty() {
            notes.push(
                "full fine-tuning skipped: none of the requested precisions is a training format (fp32, tf32, fp16, bf16)".to_string(),
            );
        }
        for &precision in training_precisions {
            for &c in &checkpointing {
                kinds.push(Kind::FullFinetune {
                    precision,
                    checkpointing: c,
                });
            }
        }
    }
    if opts.workload.includes(Workload::Lora) {
        kinds.extend(
            checkpointing
                .iter()
                .map(|&c| Kind::Lora { checkpointing: c }),
        );
    }
    if opts.workload.includes(Workload::Qlora) {
        kinds.extend(
            checkpointing
                .iter()
                .map(|&c| Kind::Qlora { checkpointing: c }),
        );
    }
    kinds
}

/// What the model's shape means for the figures: past its trained context, sliding-window
/// layers, mixture of experts.
fn shape_notes(opts: &PlanOptions, model: &ModelSummary) -> Vec<String> {
    let arch = &model.architecture;
    let mut notes = Vec::new();
    if let Some(max) = arch.max_context
        && opts.context > max
    {
        notes.push(format!(
            "context {} is beyond {}'s trained maximum of {max} tokens: the memory figures hold, the model's quality there does not",
            opts.context, arch.name
        ));
    }
    if let Some(w) = arch.sliding_window
        && arch.sliding_layers > 0
    {
        let full = 2.0
            * (arch.layers * opts.context) as f64
            * (arch.kv_heads * arch.head_dim) as f64
            * opts.batch as f64
            * opts.kv_dtype.bytes_per_param();
        notes.push(format!(
            "{} of {}'s {} layers attend within a {w}-token sliding window: the KV cache counts min(context, {w}) tokens on those layers, which is exact for caches that keep only the window (Hugging Face HybridCache, vLLM's hybrid KV cache manager); an engine that keeps the full context on every layer needs {} GB of KV cache here",
            arch.sliding_layers,
            arch.name,
            arch.layers,
            fmt_gb(full.round() as u64)
        ));
    }
    if arch.is_moe() {
        notes.push(format!(
            "mixture of experts: all {} experts per layer are resident; activations and the inference workspace count the {} experts each token is routed to ({} active parameters)",
            arch.experts_total,
            arch.experts_active,
            fmt_count(model.active_params)
        ));
    }
    notes
}
