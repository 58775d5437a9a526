//! The memory formulas: one function per workload turns a shape, a parameter count, a context
//! and a batch into lines of bytes, each with its formula written out with the numbers
//! substituted, so a reader can check every figure by hand. The fit verdict and the searches for
//! the largest context and batch live here too, since they only re-run the same formulas.

use serde::{Deserialize, Serialize};

use super::Workload;
use super::arch::Architecture;
use super::precision::Precision;
use crate::units::{GB, GIB};

/// Fixed reserve for the CUDA context, cuBLAS/cuDNN workspaces and allocator fragmentation,
/// added to every workload.
pub const RUNTIME_RESERVE_BYTES: u64 = 2 * GB;
/// A plan using more than this fraction of the budget (and at most all of it) is "tight".
pub const TIGHT_FRACTION: f64 = 0.9;
/// The largest context the search tries when the model states no maximum.
pub const CONTEXT_SEARCH_CAP: u64 = 1 << 24;
/// The largest batch the search tries.
pub const BATCH_SEARCH_CAP: u64 = 1 << 20;
/// AdamW keeps two fp32 moments (m and v) per trained parameter.
pub const ADAMW_BYTES_PER_PARAM: f64 = 8.0;
/// Mixed-precision training keeps an fp32 master copy of 16-bit weights.
pub const MASTER_COPY_BYTES_PER_PARAM: f64 = 4.0;
/// LoRA adapters are kept in fp32 (weights 4 B, gradients 4 B).
pub const ADAPTER_BYTES_PER_PARAM: f64 = 4.0;
/// The cross-entropy loss keeps an fp32 copy of the logits.
pub const LOSS_LOGITS_FP32_BYTES: f64 = 4.0;

/// One line of a memory account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub label: String,
    pub bytes: u64,
    /// `bytes` / 1e9.
    pub gb: f64,
    /// `bytes` / 2^30.
    pub gib: f64,
    /// How `bytes` was computed, with the numbers substituted.
    pub formula: String,
}

impl Line {
    fn new(label: impl Into<String>, bytes_f: f64, formula: String) -> Line {
        let bytes = bytes_f.max(0.0).round() as u64;
        Line {
            label: label.into(),
            bytes,
            gb: bytes as f64 / GB as f64,
            gib: bytes as f64 / GIB as f64,
            formula: format!("{formula} = {} GB", fmt_gb(bytes)),
        }
    }
}

/// How a total compares with the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At most `TIGHT_FRACTION` of the budget.
    Fits,
    /// Above `TIGHT_FRACTION` of the budget, at most all of it.
    Tight,
    /// Above the budget.
    DoesNotFit,
}

impl Verdict {
    /// The verdict for `total` against `budget`.
    pub fn of(total: u64, budget: u64) -> Verdict {
        if total > budget {
            Verdict::DoesNotFit
        } else if total as f64 > TIGHT_FRACTION * budget as f64 {
            Verdict::Tight
        } else {
            Verdict::Fits
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Fits => "fits",
            Verdict::Tight => "tight",
            Verdict::DoesNotFit => "does not fit",
        }
    }
}

/// What stopped a search for the largest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The next value up would not fit in the budget.
    Memory,
    /// The model's trained maximum context was reached.
    ModelMaximum,
    /// The search cap was reached (`CONTEXT_SEARCH_CAP` or `BATCH_SEARCH_CAP`).
    SearchCap,
}

/// The largest context or batch whose total fits the budget (verdict fits or tight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargestFit {
    pub value: u64,
    pub limited_by: Limit,
}

/// One workload at one precision: its lines, total and fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub workload: Workload,
    /// Weights (inference), training precision (full fine-tuning), frozen base (LoRA, QLoRA).
    pub precision: Precision,
    /// KV cache format (inference only).
    pub kv_dtype: Option<Precision>,
    /// Training only: whether activations are checkpointed.
    pub gradient_checkpointing: Option<bool>,
    pub label: String,
    pub context: u64,
    pub batch: u64,
    pub lines: Vec<Line>,
    pub total_bytes: u64,
    pub total_gb: f64,
    pub total_gib: f64,
    pub budget_bytes: u64,
    /// total / budget x 100.
    pub budget_percent: f64,
    pub verdict: Verdict,
    /// None when not even one token fits.
    pub largest_context: Option<LargestFit>,
    /// None when not even a batch of one fits at this context.
    pub largest_batch: Option<LargestFit>,
}

/// What to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Inference {
        weights: Precision,
        kv: Precision,
    },
    FullFinetune {
        precision: Precision,
        checkpointing: bool,
    },
    Lora {
        checkpointing: bool,
    },
    Qlora {
        checkpointing: bool,
    },
}

impl Kind {
    pub fn workload(self) -> Workload {
        match self {
            Kind::Inference { .. } => Workload::Inference,
            Kind::FullFinetune { .. } => Workload::FullFinetune,
            Kind::Lora { .. } => Workload::Lora,
            Kind::Qlora { .. } => Workload::Qlora,
        }
    }

    pub fn precision(self) -> Precision {
        match self {
            Kind::Inference { weights, .. } => weights,
            Kind::FullFinetune { precision, .. } => precision,
            Kind::Lora { .. } => Precision::Bf16,
            Kind::Qlora { .. } => Precision::Nf4,
        }
    }

    pub fn checkpointing(self) -> Option<bool> {
        match self {
            Kind::Inference { .. } => None,
            Kind::FullFinetune { checkpointing, .. }
            | Kind::Lora { checkpointing }
            | Kind::Qlora { checkpointing } => Some(checkpointing),
        }
    }

    pub fn label(self) -> String {
        let ck = |on: bool| {
            if on {
                "gradient checkpointing"
            } else {
                "no checkpointing"
            }
        };
        match self {
            Kind::Inference { weights, kv } => {
                format!("inference, {weights} weights, {kv} KV cache")
            }
            Kind::FullFinetune {
                precision,
                checkpointing,
            } => {
                let mode = if precision.is_16_bit() {
                    format!("{precision} mixed precision")
                } else {
                    precision.to_string()
                };
                format!("full fine-tuning, {mode}, AdamW, {}", ck(checkpointing))
            }
            Kind::Lora { checkpointing } => {
                format!("LoRA, bf16 frozen base, AdamW, {}", ck(checkpointing))
            }
            Kind::Qlora { checkpointing } => {
                format!("QLoRA, nf4 frozen base, AdamW, {}", ck(checkpointing))
            }
        }
    }
}

/// A workload on a model: everything but the context and batch.
#[derive(Debug, Clone)]
pub struct Scenario<'a> {
    pub arch: &'a Architecture,
    /// Total parameters the weights are counted from (the given count with `--params`, the
    /// derived count for a known shape).
    pub params: f64,
    pub kind: Kind,
    pub lora_rank: u32,
}

impl Scenario<'_> {
    /// The lines of the account at this context and batch.
    pub fn lines(&self, context: u64, batch: u64) -> Vec<Line> {
        match self.kind {
            Kind::Inference { weights, kv } => self.inference(weights, kv, context, batch),
            Kind::FullFinetune {
                precision,
                checkpointing,
            } => self.full_finetune(precision, checkpointing, context, batch),
            Kind::Lora { checkpointing } => self.lora(false, checkpointing, context, batch),
            Kind::Qlora { checkpointing } => self.lora(true, checkpointing, context, batch),
        }
    }

    /// The total bytes at this context and batch.
    pub fn total_bytes(&self, context: u64, batch: u64) -> u64 {
        sum_bytes(&self.lines(context, batch))
    }

    /// The full estimate with its verdict and largest context and batch against `budget_bytes`.
    pub fn estimate(&self, context: u64, batch: u64, budget_bytes: u64) -> Estimate {
        let lines = self.lines(context, batch);
        let total = sum_bytes(&lines);
        let (ctx_cap, ctx_cap_limit) = match self.arch.max_context {
            Some(m) if m <= CONTEXT_SEARCH_CAP => (m, Limit::ModelMaximum),
            Some(_) => (CONTEXT_SEARCH_CAP, Limit::SearchCap),
            None => (CONTEXT_SEARCH_CAP, Limit::SearchCap),
        };
        let largest_context = largest(ctx_cap, ctx_cap_limit, |c| {
            self.total_bytes(c, batch) <= budget_bytes
        });
        let largest_batch = largest(BATCH_SEARCH_CAP, Limit::SearchCap, |b| {
            self.total_bytes(context, b) <= budget_bytes
        });
        Estimate {
            workload: self.kind.workload(),
            precision: self.kind.precision(),
            kv_dtype: match self.kind {
                Kind::Inference { kv, .. } => Some(kv),
                _ => None,
            },
            gradient_checkpointing: self.kind.checkpointing(),
            label: self.kind.label(),
            context,
            batch,
            lines,
            total_bytes: total,
            total_gb: total as f64 / GB as f64,
            total_gib: total as f64 / GIB as f64,
            budget_bytes,
            budget_percent: if budget_bytes == 0 {
                f64::INFINITY
            } else {
                100.0 * total as f64 / budget_bytes as f64
            },
            verdict: Verdict::of(total, budget_bytes),
            largest_context,
            largest_batch,
        }
    }

    fn weights_line(&self, label: &str, p: Precision) -> Line {
        Line::new(
            format!("{label} ({p})"),
            self.params * p.bytes_per_param(),
            format!(
                "{} params x {} B ({p})",
                fmt_count(self.params),
                fmt_num(p.bytes_per_param())
            ),
        )
    }

    fn reserve_line(&self) -> Line {
        Line::new(
            "CUDA context and runtime reserve (fixed)",
            RUNTIME_RESERVE_BYTES as f64,
            "fixed reserve for the CUDA context, cuBLAS/cuDNN workspaces and allocator fragmentation: 2 x 1e9 B".to_string(),
        )
    }

    /// KV cache: 2 (K and V) x layers x kv_heads x head_dim x context x batch x bytes.
    pub fn kv_line(&self, kv: Precision, context: u64, batch: u64) -> Line {
        let a = self.arch;
        let bytes = a.kv_cache_bytes(context, batch, kv.bytes_per_param());
        let layers_ctx = match a.sliding_window {
            Some(w) if a.sliding_layers > 0 => format!(
                "({} full layers x {context} ctx + {} sliding layers x {} ctx (window {w}))",
                a.full_layers(),
                a.sliding_layers,
                context.min(w)
            ),
            _ => format!("{} layers x {context} ctx", a.layers),
        };
        let formula = match a.sliding_window {
            Some(_) if a.sliding_layers > 0 => format!(
                "2 (K,V) x {layers_ctx} x {} kv_heads x {} head_dim x {batch} batch x {} B ({kv})",
                a.kv_heads,
                a.head_dim,
                fmt_num(kv.bytes_per_param())
            ),
            _ => format!(
                "2 (K,V) x {} layers x {} kv_heads x {} head_dim x {context} ctx x {batch} batch x {} B ({kv})",
                a.layers,
                a.kv_heads,
                a.head_dim,
                fmt_num(kv.bytes_per_param())
            ),
        };
        Line::new(format!("KV cache ({kv})"), bytes, formula)
    }

    fn inference(&self, weights: Precision, kv: Precision, context: u64, batch: u64) -> Vec<Line> {
        let a = self.arch;
        let act = activation_bytes(weights);
        let width = 2 * a.hidden_size + 2 * a.experts_active * a.intermediate_size;
        let tokens = context as f64 * batch as f64;
        let workspace = tokens * width as f64 * act + batch as f64 * a.vocab_size as f64 * 4.0;
        vec![
            self.weights_line("weights", weights),
            self.kv_line(kv, context, batch),
            Line::new(
                "activation workspace (prefill)",
                workspace,
                format!(
                    "{context} ctx x {batch} batch x (2 x {} hidden + 2 x {}) x {} B + {batch} batch x {} vocab x 4 B (last-token fp32 logits)",
                    a.hidden_size,
                    mlp_term(a),
                    fmt_num(act),
                    a.vocab_size
                ),
            ),
            self.reserve_line(),
        ]
    }

    /// Training activations (Korthikanti et al. 2022, adapted; see `activation_lines`).
    fn activation_line(&self, act: f64, checkpointing: bool, context: u64, batch: u64) -> Line {
        let a = self.arch;
        let s = context as f64;
        let b = batch as f64;
        let h = a.hidden_size as f64;
        let l = a.layers as f64;
        let per_token = 17.0 * h + 8.0 * a.experts_active as f64 * a.intermediate_size as f64;
        let per_layer = s * b * per_token * (act / 2.0);
        let scale = if act == 2.0 {
            String::new()
        } else {
            format!(
                " x {} ({}-byte activations)",
                fmt_num(act / 2.0),
                fmt_num(act)
            )
        };
        let layer_expr = format!(
            "{context} ctx x {batch} batch x (17 x {} hidden + 8 x {}) B{scale}",
            a.hidden_size,
            mlp_term(a)
        );
        if checkpointing {
            let inputs = act * s * b * h * l;
            Line::new(
                "activations (gradient checkpointing)",
                inputs + per_layer,
                format!(
                    "{} B x {context} ctx x {batch} batch x {} hidden x {} layers (checkpointed layer inputs) + {layer_expr} (one layer recomputed)",
                    fmt_num(act),
                    a.hidden_size,
                    a.layers
                ),
            )
        } else {
            Line::new(
                "activations (no checkpointing)",
                l * per_layer,
                format!("{} layers x {layer_expr}", a.layers),
            )
        }
    }

    fn logits_line(&self, act: f64, context: u64, batch: u64) -> Line {
        let a = self.arch;
        let bytes =
            context as f64 * batch as f64 * a.vocab_size as f64 * (act + LOSS_LOGITS_FP32_BYTES);
        Line::new(
            "logits for the loss",
            bytes,
            format!(
                "{context} ctx x {batch} batch x {} vocab x ({} B logits + 4 B fp32 copy for the cross-entropy)",
                a.vocab_size,
                fmt_num(act)
            ),
        )
    }

    fn full_finetune(
        &self,
        p: Precision,
        checkpointing: bool,
        context: u64,
        batch: u64,
    ) -> Vec<Line> {
        let act = activation_bytes(p);
        let mut lines = vec![self.weights_line("weights", p)];
        if p.is_16_bit() {
            lines.push(Line::new(
                "fp32 master weights",
                self.params * MASTER_COPY_BYTES_PER_PARAM,
                format!(
                    "{} params x 4 B (fp32 master copy for mixed precision)",
                    fmt_count(self.params)
                ),
            ));
        }
        lines.push(self.weights_line("gradients", p));
        lines.push(Line::new(
            "AdamW states (m and v, fp32)",
            self.params * ADAMW_BYTES_PER_PARAM,
            format!("{} params x 2 x 4 B (fp32 m and v)", fmt_count(self.params)),
        ));
        lines.push(self.activation_line(act, checkpointing, context, batch));
        lines.push(self.logits_line(act, context, batch));
        lines.push(self.reserve_line());
        lines
    }

    /// LoRA adapter parameters: rank x (in + out) for q, k, v, o and (per expert) gate, up, down.
    pub fn lora_params(&self) -> (f64, u64) {
        let a = self.arch;
        let h = a.hidden_size;
        let q = a.q_width();
        let kv = a.kv_heads * a.head_dim;
        let attn = (h + q) + 2 * (h + kv) + (q + h);
        let mlp = a.experts_total * 3 * (h + a.intermediate_size);
        let per_layer = attn + mlp;
        (
            self.lora_rank as f64 * per_layer as f64 * a.layers as f64,
            per_layer,
        )
    }

    fn lora(&self, quantized: bool, checkpointing: bool, context: u64, batch: u64) -> Vec<Line> {
        let a = self.arch;
        let act = 2.0;
        let mut lines = Vec::new();
        if quantized {
            let pb = a.param_breakdown();
            let unq = pb.unquantized_params().min(self.params);
            let linear = (self.params - unq).max(0.0);
            let nf4 = Precision::Nf4;
            lines.push(Line::new(
                "frozen base linear layers (nf4, double-quantized)",
                linear * nf4.bytes_per_param(),
                format!(
                    "{} params x {} B (nf4: 4 bits + 8-bit scale per 64 + fp32 scale per 64x256)",
                    fmt_count(linear),
                    fmt_num(nf4.bytes_per_param())
                ),
            ));
            lines.push(Line::new(
                "embeddings, lm head, norms (bf16, not quantized)",
                unq * 2.0,
                format!("{} params x 2 B (bf16)", fmt_count(unq)),
            ));
        } else {
            lines.push(self.weights_line("frozen base weights", Precision::Bf16));
        }
        let (adapter, per_layer) = self.lora_params();
        let what = if a.is_moe() {
            format!(
                "q,k,v,o + gate,up,down of each of {} experts",
                a.experts_total
            )
        } else {
            "q,k,v,o,gate,up,down".to_string()
        };
        let count = format!(
            "{} adapter params ({} rank x {} (in+out) per layer x {} layers, on {what})",
            fmt_count(adapter),
            self.lora_rank,
            fmt_count(per_layer as f64),
            a.layers
        );
        lines.push(Line::new(
            format!("LoRA adapters, rank {} (fp32)", self.lora_rank),
            adapter * ADAPTER_BYTES_PER_PARAM,
            format!("{count} x 4 B"),
        ));
        lines.push(Line::new(
            "adapter gradients (fp32)",
            adapter * ADAPTER_BYTES_PER_PARAM,
            format!("{} adapter params x 4 B", fmt_count(adapter)),
        ));
        lines.push(Line::new(
            "adapter AdamW states (m and v, fp32)",
            adapter * ADAMW_BYTES_PER_PARAM,
            format!("{} adapter params x 2 x 4 B", fmt_count(adapter)),
        ));
        lines.push(self.activation_line(act, checkpointing, context, batch));
        lines.push(self.logits_line(act, context, batch));
        lines.push(self.reserve_line());
        lines
    }
}

/// Bytes per activation value: 4 when computing in fp32/tf32, else 2 (16-bit compute; 8- and
/// 4-bit weight formats dequantize into 16-bit activations).
/// The total of the lines, saturating: a context and batch whose bytes pass 2^64 (each line
/// already saturates there) is "does not fit", never a wrapped small number.
fn sum_bytes(lines: &[Line]) -> u64 {
    lines.iter().fold(0u64, |t, l| t.saturating_add(l.bytes))
}

fn activation_bytes(p: Precision) -> f64 {
    match p {
        Precision::Fp32 | Precision::Tf32 => 4.0,
        _ => 2.0,
    }
}

/// The largest `v` in 1..=cap with `fits(v)`, for `fits` monotone (true then false); None when
/// `fits(1)` is false.
pub fn largest(cap: u64, cap_limit: Limit, fits: impl Fn(u64) -> bool) -> Option<LargestFit> {
    if cap == 0 || !fits(1) {
        return None;
    }
    if fits(cap) {
        return Some(LargestFit {
            value: cap,
            limited_by: cap_limit,
        });
    }
    // Invariant: fits(lo), !fits(hi).
    let (mut lo, mut hi) = (1u64, cap);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(LargestFit {
        value: lo,
        limited_by: Limit::Memory,
    })
}

/// Bytes as GB (1e9) with three decimals.
pub fn fmt_gb(bytes: u64) -> String {
    crate::units::fmt_gb_dp(bytes, 3)
}

/// Bytes as GiB (2^30) with three decimals.
pub fn fmt_gib(bytes: u64) -> String {
    crate::units::fmt_gib_dp(bytes, 3)
}

/// A count with thousands separators (`70,553,706,496`), rounded to a whole number.
pub fn fmt_count(v: f64) -> String {
    let n = v.max(0.0).round() as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A short number: whole numbers without decimals, fractions in their shortest exact form.
pub fn fmt_num(v: f64) -> String {
    format!("{v}")
}

/// The MLP width in a formula: "28672 intermediate" for a dense model, "4 active experts x 14336
/// intermediate" for a mixture of experts (never "1 active experts").
fn mlp_term(a: &Architecture) -> String {
    if a.is_moe() {
        format!(
            "{} active experts x {} intermediate",
            a.experts_active, a.intermediate_size
        )
    } else {
        format!("{} intermediate", a.intermediate_size)
    }
}
