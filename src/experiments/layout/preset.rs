//! The tensors a layout allocates: the built-in `13b-sim` preset (the memory lab's simulated 13B
//! model, sizes in GB = 1e9 bytes as the lab gave them), and presets derived from the planner's
//! model table or a `config.json`: one tensor per layer component per layer, the embeddings, the
//! lm head and, unless left out, the KV cache. Pure arithmetic, no GPU; the weights of a model
//! preset add up to the planner's weights figure for the same precision (tests).

use serde::{Deserialize, Serialize};

use crate::plan::{Architecture, Precision};
use crate::units::{GB, fmt_bytes};

/// One tensor to allocate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Unique within the layout (`layer.12.attn.qkv`, `embeddings`, `w.3`).
    pub name: String,
    /// What the tensor is, for grouping in reports: the name without its layer prefix
    /// (`attn.qkv`), or the spec entry's name for `count` copies.
    pub component: String,
    /// Bytes requested.
    pub bytes: u64,
    /// The number format, where known (reported, and used for `elements`).
    pub dtype: Option<Precision>,
    /// Elements (parameters, cache values) the bytes hold, where the format is known.
    pub elements: Option<u64>,
}

/// A set of named tensors and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    /// `preset 13b-sim`, `model llama-3.1-8b at bf16`, `spec layers.toml`.
    pub source: String,
    /// What the layout holds and what it leaves out, one sentence each.
    pub notes: Vec<String>,
    pub tensors: Vec<TensorSpec>,
}

impl Layout {
    /// Sum of the requested bytes (saturating: a spec's total is checked when it is read).
    pub fn total_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.bytes))
    }
}

/// The built-in presets (`--preset`).
pub const PRESETS: &[&str] = &["13b-sim"];

/// The `13b-sim` tensors: (name, GB of 1e9 bytes x 10).
const SIM_13B: &[(&str, u64)] = &[
    ("embeddings", 20),
    ("attention", 80),
    ("feedforward", 100),
    ("layer_norms", 5),
    ("output_head", 10),
    ("activations", 40),
];

/// A built-in preset by name (case-insensitive), or one sentence naming the known ones.
pub fn preset(name: &str) -> Result<Layout, String> {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "13b-sim" | "13bsim" | "13b_sim" => Ok(sim_13b()),
        _ => Err(format!(
            "unknown preset `{name}`: the built-in preset is {}; for a model's tensors use --model (for example --model llama-3.1-8b --precision bf16) or --spec FILE",
            PRESETS.join(", ")
        )),
    }
}

fn sim_13b() -> Layout {
    let tensors = SIM_13B
        .iter()
        .map(|&(name, tenths)| TensorSpec {
            name: name.to_string(),
            component: name.to_string(),
            bytes: tenths * GB / 10,
            dtype: None,
            elements: None,
        })
        .collect();
    Layout {
        source: "preset 13b-sim".to_string(),
        notes: vec![
            "13b-sim: the memory lab's simulated 13B model: embeddings 2 GB, attention 8 GB, feedforward 10 GB, layer norms 0.5 GB, output head 1 GB, activations 4 GB (GB = 1e9 bytes), 25.5 GB in all".to_string(),
        ],
        tensors,
    }
}

/// The KV cache to add to a model preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCache {
    /// Tokens per sequence.
    pub context: u64,
    pub batch: u64,
    pub dtype: Precision,
}

/// Bits of `p` per value times 512: a whole number for every format (nf4's double-quantization
/// scale is 1/512 bit per value), so bytes are computed exactly in integers.
fn bits_x512(p: Precision) -> u128 {
    (p.bits_per_param() * 512.0).round() as u128
}

/// Bytes of `values` stored in `p`, rounded up to a whole byte.
pub fn bytes_of(values: u64, p: Precision) -> u64 {
    let bits = values as u128 * bits_x512(p);
    u64::try_from(bits.div_ceil(8 * 512)).unwrap_or(u64::MAX)
}

/// Which layers attend within the sliding window: the even-numbered ones first (Gemma 2 and
/// gpt-oss alternate, starting with a sliding layer), then odd ones if more slide than half.
fn sliding(arch: &Architecture) -> Vec<bool> {
    let l = arch.layers as usize;
    let mut want = if arch.sliding_window.is_some() {
        arch.sliding_layers.min(arch.layers) as usize
    } else {
        0
    };
    let mut s = vec![false; l];
    for start in [0usize, 1] {
        for i in (start..l).step_by(2) {
            if want == 0 {
                return s;
            }
            s[i] = true;
            want -= 1;
        }
    }
    s
}

/// The norm vectors of one layer, by their usual names (Llama: 2, Gemma 2: 4).
fn norm_names(n: u64) -> Vec<String> {
    match n {
        2 => vec!["input_norm".into(), "post_attention_norm".into()],
        4 => vec![
            "input_norm".into(),
            "post_attention_norm".into(),
            "pre_feedforward_norm".into(),
            "post_feedforward_norm".into(),
        ],
        _ => (0..n).map(|k| format!("norm.{k}")).collect(),
    }
}

/// Where the norms sit in a layer: (before attention, between attention and MLP, after the MLP).
/// Llama: input norm, attention, post-attention norm, MLP. Gemma 2: input norm, attention,
/// post-attention and pre-feedforward norms, MLP, post-feedforward norm. Others: all first.
fn norm_positions(norms: &[String]) -> (&[String], &[String], &[String]) {
    match norms.len() {
        2 => (&norms[..1], &norms[1..], &[]),
        4 => (&norms[..1], &norms[1..3], &norms[3..]),
        _ => (norms, &[], &[]),
    }
}

/// The format a model's norm vectors are stored in at `precision`: the precision itself for the
/// 16- and 32-bit formats, bf16 for the 8- and 4-bit ones. Quantizers replace linear layers only
/// and leave norms in 16-bit: Hugging Face Transformers' NVFP4Config "replaces eligible bias-free
/// torch.nn.Linear modules" (https://huggingface.co/docs/transformers/quantization/nvfp4),
/// llm-compressor NVFP4 recipes target `[Linear]` and ignore `re:.*layernorm.*`
/// (https://huggingface.co/Firworks/Step-Audio-R1-nvfp4/blob/main/recipe.yaml), and QLoRA's
/// bitsandbytes quantizes `Linear4bit` modules only (Dettmers et al. 2023, arXiv:2305.14314).
pub fn norm_dtype(precision: Precision) -> Precision {
    match precision {
        Precision::Fp32 | Precision::Tf32 | Precision::Fp16 | Precision::Bf16 => precision,
        _ => Precision::Bf16,
    }
}

/// A model's tensors at `precision`: per layer the fused q/k/v projection (`attn.qkv`), the
/// output projection (`attn.o`), the fused gate/up projection (`mlp.gate_up`) and `mlp.down` (for
/// a mixture of experts: every expert's in one `mlp.experts.*` tensor, plus `mlp.router`), and
/// the norm vectors; then `final_norm`, `embeddings` and `lm_head` (absent when tied); then, with
/// `kv`, one `kv_cache` tensor per layer (K and V, sliding layers holding only their window).
/// Every parameter is stored at `precision`, as the planner counts them, except the norm vectors
/// of 8- and 4-bit formats, which stay in bf16 ([`norm_dtype`]).
pub fn from_architecture(arch: &Architecture, precision: Precision, kv: Option<KvCache>) -> Layout {
    let h = arch.hidden_size;
    let q = arch.q_width();
    let kvw = arch.kv_heads * arch.head_dim;
    let i = arch.intermediate_size;
    let e = arch.experts_total;
    let mut tensors = Vec::new();
    let mut push = |name: String, component: &str, values: u64, dtype: Precision| {
        tensors.push(TensorSpec {
            name,
            component: component.to_string(),
            bytes: bytes_of(values, dtype),
            dtype: Some(dtype),
            elements: Some(values),
        });
    };
    push(
        "embeddings".into(),
        "embeddings",
        arch.vocab_size * h,
        precision,
    );
    let norms = norm_names(arch.norms_per_layer);
    let nd = norm_dtype(precision);
    for l in 0..arch.layers {
        let mut layer = |component: &str, values: u64| {
            let dtype = if norms.iter().any(|n| n == component) {
                nd
            } else {
                precision
            };
            push(format!("layer.{l}.{component}"), component, values, dtype)
        };
        let (pre, mid, tail) = norm_positions(&norms);
        for n in pre {
            layer(n, h);
        }
        layer("attn.qkv", h * q + 2 * h * kvw);
        layer("attn.o", q * h);
        for n in mid {
            layer(n, h);
        }
        if arch.is_moe() {
            layer("mlp.router", h * e);
            layer("mlp.experts.gate_up", e * 2 * h * i);
            layer("mlp.experts.down", e * i * h);
        } else {
            layer("mlp.gate_up", 2 * h * i);
            layer("mlp.down", i * h);
        }
        for n in tail {
            layer(n, h);
        }
    }
    push("final_norm".into(), "final_norm", h, nd);
    if !arch.tie_word_embeddings {
        push("lm_head".into(), "lm_head", arch.vocab_size * h, precision);
    }
    let weights: u64 = tensors.iter().map(|t| t.bytes).sum();
    let mut notes = vec![format!(
        "{}: {}; weights in {} ({} bits per parameter): {} tensors, {:.2} GB ({})",
        arch.name,
        arch.describe(),
        precision,
        precision.bits_per_param(),
        tensors.len(),
        weights as f64 / GB as f64,
        fmt_bytes(weights)
    )];
    if nd != precision {
        notes.push(format!(
            "layer norms stay in {nd}: {precision} quantizes the linear layers only, as real checkpoints do"
        ));
    }
    if arch.tie_word_embeddings {
        notes.push("tied embeddings: the lm head reuses the embedding matrix, so it has no tensor of its own".to_string());
    }
    if let Some(kv) = kv {
        notes.push(kv_cache_tensors(arch, kv, &mut tensors));
    } else {
        notes.push("no KV cache (--no-kv-cache): weights only".to_string());
    }
    notes.push(
        "activations and framework workspaces are not allocated: their size depends on the engine (see `cumemlab plan` for estimates)".to_string(),
    );
    Layout {
        source: format!("model {} at {}", arch.key, precision),
        notes,
        tensors,
    }
}

/// Appends one KV cache tensor per layer (K and V; sliding-window layers hold at most the
/// window) and returns the note that describes them.
fn kv_cache_tensors(arch: &Architecture, kv: KvCache, tensors: &mut Vec<TensorSpec>) -> String {
    let kvw = arch.kv_heads * arch.head_dim;
    let slide = sliding(arch);
    let per_token = 2 * kvw * kv.batch;
    let mut kv_total = 0u64;
    for (l, &s) in slide.iter().enumerate() {
        let tokens = match (s, arch.sliding_window) {
            (true, Some(w)) => kv.context.min(w),
            _ => kv.context,
        };
        let values = per_token * tokens;
        let b = bytes_of(values, kv.dtype);
        kv_total += b;
        tensors.push(TensorSpec {
            name: format!("layer.{l}.kv_cache"),
            component: "kv_cache".to_string(),
            bytes: b,
            dtype: Some(kv.dtype),
            elements: Some(values),
        });
    }
    format!(
        "KV cache: one tensor per layer (K and V) for {} tokens x batch {} in {}: {:.2} GB ({}){}, allocated after the weights as serving engines do",
        kv.context,
        kv.batch,
        kv.dtype,
        kv_total as f64 / GB as f64,
        fmt_bytes(kv_total),
        if arch.sliding_layers > 0 && arch.sliding_window.is_some() {
            format!(
                "; the {} sliding-window layers hold at most {} tokens",
                arch.sliding_layers,
                arch.sliding_window.unwrap_or(0)
            )
        } else {
            String::new()
        }
    )
}
