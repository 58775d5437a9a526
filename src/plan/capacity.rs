//! The capacity matrix: the largest dense model (in billions of parameters) that each common
//! workload fits on a target, for the stated reference shape and context. It answers "what can
//! I run on this box?" without naming a model first.

use serde::{Deserialize, Serialize};

use super::Workload;
use super::arch::reference_shape;
use super::estimate::{Kind, Scenario, Verdict};
use super::precision::Precision;
use super::target::Target;
use crate::units::{GB, GIB};

/// Context the capacity matrix plans for.
pub const CAPACITY_CONTEXT: u64 = 8192;
/// Batch the capacity matrix plans for.
pub const CAPACITY_BATCH: u64 = 1;
/// LoRA rank the capacity matrix plans QLoRA with.
pub const CAPACITY_LORA_RANK: u32 = 16;

/// One workload's largest model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityRow {
    pub workload: Workload,
    pub precision: Precision,
    pub label: String,
    /// The largest total parameter count whose plan fits the budget (0 when none does).
    pub max_params: f64,
    /// `max_params` / 1e9.
    pub max_params_billions: f64,
    /// The plan's total at `max_params`.
    pub total_bytes: u64,
    /// The reference shape's layer count at `max_params`.
    pub layers: u64,
}

/// The largest model per workload for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityMatrix {
    pub target: Target,
    pub budget_bytes: u64,
    pub budget_gb: f64,
    pub budget_gib: f64,
    pub context: u64,
    pub batch: u64,
    /// What the rows assume, in words.
    pub assumptions: Vec<String>,
    pub rows: Vec<CapacityRow>,
}

/// The five workloads of the matrix.
fn kinds() -> [Kind; 5] {
    [
        Kind::FullFinetune {
            precision: Precision::Bf16,
            checkpointing: true,
        },
        Kind::Qlora {
            checkpointing: true,
        },
        Kind::Inference {
            weights: Precision::Fp16,
            kv: Precision::Fp16,
        },
        Kind::Inference {
            weights: Precision::Fp8E4m3,
            kv: Precision::Fp16,
        },
        Kind::Inference {
            weights: Precision::Nvfp4,
            kv: Precision::Fp16,
        },
    ]
}

/// The plan's total for a dense reference model of `params` parameters.
fn total_for(kind: Kind, params: f64) -> u64 {
    let arch = reference_shape(params);
    Scenario {
        arch: &arch,
        params,
        kind,
        lora_rank: CAPACITY_LORA_RANK,
    }
    .total_bytes(CAPACITY_CONTEXT, CAPACITY_BATCH)
}

/// The largest model per workload on `target`: bisection over the parameter count (the totals
/// grow with it), to 0.01B.
pub fn capacity_matrix(target: &Target) -> CapacityMatrix {
    let budget = target.budget_bytes();
    let rows = kinds()
        .into_iter()
        .map(|kind| {
            let fits = |p: f64| Verdict::of(total_for(kind, p), budget) != Verdict::DoesNotFit;
            let (mut lo, mut hi) = (0.0f64, 1e13f64);
            if fits(hi) {
                lo = hi;
            } else {
                while hi - lo > 1e6 {
                    let mid = 0.5 * (lo + hi);
                    if fits(mid) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
            }
            // Report to 0.01B, rounded down so the figure itself fits.
            let max_params = (lo / 1e7).floor() * 1e7;
            let max_params = if max_params > 0.0 && fits(max_params) {
                max_params
            } else {
                0.0
            };
            CapacityRow {
                workload: kind.workload(),
                precision: kind.precision(),
                label: kind.label(),
                max_params,
                max_params_billions: max_params / 1e9,
                total_bytes: if max_params > 0.0 {
                    total_for(kind, max_params)
                } else {
                    0
                },
                layers: if max_params > 0.0 {
                    reference_shape(max_params).layers
                } else {
                    0
                },
            }
        })
        .collect();
    CapacityMatrix {
        target: target.clone(),
        budget_bytes: budget,
        budget_gb: budget as f64 / GB as f64,
        budget_gib: budget as f64 / GIB as f64,
        context: CAPACITY_CONTEXT,
        batch: CAPACITY_BATCH,
        assumptions: vec![
            format!(
                "dense Llama-3-style reference shape (hidden = 128 x layers, head_dim 128, 8 KV heads, intermediate 3.5 x hidden, vocab 128256, untied), context {CAPACITY_CONTEXT}, batch {CAPACITY_BATCH}"
            ),
            "inference rows: weights in the named format, KV cache fp16, plus the fixed runtime reserve and the prefill workspace".to_string(),
            format!(
                "full fine-tuning: bf16 weights and gradients, fp32 master copy, AdamW (16 B/param), gradient checkpointing; QLoRA: nf4 base, rank {CAPACITY_LORA_RANK} fp32 adapters on every projection, gradient checkpointing"
            ),
            "the figures are for dense models; plan a mixture-of-experts model (all experts resident) with --model or --config".to_string(),
        ],
        rows,
    }
}
