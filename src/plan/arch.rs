//! A decoder-only transformer's shape and the counts that follow from it: parameters by part, KV
//! cache per token, sliding-window layers. The shape comes from the built-in table
//! (`models.rs`), from a Hugging Face `config.json`, or, when only a parameter count is given,
//! from a stated Llama-3-style reference shape.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PlanError;

/// The reference shape's vocabulary (Llama 3's tokenizer).
pub const REFERENCE_VOCAB: u64 = 128_256;
/// The reference shape's head dimension.
pub const REFERENCE_HEAD_DIM: u64 = 128;
/// The reference shape's KV heads (grouped-query attention).
pub const REFERENCE_KV_HEADS: u64 = 8;
/// The reference shape's hidden size per layer (hidden = 128 x layers, as Llama 3.1 8B: 4096 / 32).
pub const REFERENCE_HIDDEN_PER_LAYER: u64 = 128;

/// The architecture fields the planner needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Table key (`llama-3.1-8b`), config name, or `reference`.
    pub key: String,
    /// Human name (`Llama 3.1 8B`).
    pub name: String,
    /// Where the numbers come from (URLs for the table, a path for a config file).
    pub source: String,
    /// The published total parameter count, where there is one.
    pub params_published: Option<f64>,
    pub layers: u64,
    pub hidden_size: u64,
    pub attention_heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub vocab_size: u64,
    /// Width of one (expert's) gated MLP: gate and up project hidden -> intermediate, down back.
    pub intermediate_size: u64,
    /// Experts per MoE layer; 1 for a dense model.
    pub experts_total: u64,
    /// Experts each token is routed to; 1 for a dense model.
    pub experts_active: u64,
    pub tie_word_embeddings: bool,
    /// RMSNorm vectors per layer (2 for Llama-style, 4 for Gemma 2).
    pub norms_per_layer: u64,
    /// Sliding-window size in tokens for the layers that use one.
    pub sliding_window: Option<u64>,
    /// How many of `layers` attend within `sliding_window` only.
    pub sliding_layers: u64,
    /// The trained maximum context (`max_position_embeddings`), where known.
    pub max_context: Option<u64>,
}

/// Parameters by part, derived from the shape (biases, attention sinks and rotary tables are
/// left out: each is below 0.1% of the total for every model in the table).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParamBreakdown {
    pub embedding_params: f64,
    pub lm_head_params: f64,
    /// q, k, v, o projections, all layers.
    pub attention_params: f64,
    /// gate, up, down projections of every expert, all layers.
    pub mlp_params: f64,
    /// MoE router, all layers.
    pub router_params: f64,
    /// RMSNorm weights, all layers plus the final norm.
    pub norm_params: f64,
    pub total_params: f64,
    /// Parameters a token passes through (MoE: routed experts only; embeddings and lm head
    /// included, so it exceeds model cards that count one of the two).
    pub active_params: f64,
}

impl ParamBreakdown {
    /// Parameters in linear layers (what weight quantizers such as bitsandbytes NF4 convert).
    pub fn linear_params(&self) -> f64 {
        self.attention_params + self.mlp_params + self.router_params
    }

    /// Parameters kept in 16-bit by QLoRA: embeddings, lm head and norms.
    pub fn unquantized_params(&self) -> f64 {
        self.embedding_params + self.lm_head_params + self.norm_params
    }
}

/// The largest value any shape field may take (2^24): with every field at most this, the
/// products the planner forms in integers (heads x head_dim, layers x context) stay far below
/// 2^64. Real models are below 2^18 in every field.
pub const FIELD_LIMIT: u64 = 1 << 24;

/// The largest parameter count planned (1e15, several thousand times any published model): with
/// it, every weights, gradients and optimizer line fits in 64 bits.
pub const PARAMS_LIMIT: f64 = 1e15;

impl Architecture {
    /// The shape fields with their config.json names and a typical largest value of real models
    /// (used to name the field that makes an impossible total).
    fn fields(&self) -> [(&'static str, u64, u64); 9] {
        [
            ("num_hidden_layers", self.layers, 128),
            ("hidden_size", self.hidden_size, 16_384),
            ("num_attention_heads", self.attention_heads, 128),
            ("num_key_value_heads", self.kv_heads, 128),
            ("head_dim", self.head_dim, 256),
            ("vocab_size", self.vocab_size, 262_144),
            ("intermediate_size", self.intermediate_size, 65_536),
            ("num_local_experts", self.experts_total, 256),
            ("num_experts_per_tok", self.experts_active, 16),
        ]
    }

    /// Refuses a shape no real model has: a field above [`FIELD_LIMIT`], or a parameter count
    /// above [`PARAMS_LIMIT`] (then the field furthest beyond real models is named). One sentence.
    pub fn check_bounds(&self) -> Result<(), String> {
        let fields = self.fields();
        if let Some((name, v, _)) = fields.iter().find(|(_, v, _)| *v > FIELD_LIMIT) {
            return Err(format!(
                "`{name}` = {v} is beyond any model (the limit is {FIELD_LIMIT}): fix the value"
            ));
        }
        let total = self.params_derived();
        if total.is_nan() || total > PARAMS_LIMIT {
            let (name, v, _) = fields
                .iter()
                .max_by(|a, b| (a.1 as f64 / a.2 as f64).total_cmp(&(b.1 as f64 / b.2 as f64)))
                .copied()
                .unwrap_or(("num_hidden_layers", self.layers, 128));
            return Err(format!(
                "the shape has {total:.3e} parameters, beyond any model (the limit is {PARAMS_LIMIT:.0e}): check `{name}` = {v}"
            ));
        }
        Ok(())
    }

    /// Whether the MLP is a mixture of experts.
    pub fn is_moe(&self) -> bool {
        self.experts_total > 1
    }

    /// Attention width `heads x head_dim` (not always the hidden size: Gemma 2 9B has 4096 vs 3584).
    pub fn q_width(&self) -> u64 {
        self.attention_heads * self.head_dim
    }

    /// Parameters by part.
    pub fn param_breakdown(&self) -> ParamBreakdown {
        let h = self.hidden_size as f64;
        let l = self.layers as f64;
        let q = self.q_width() as f64;
        let kv = (self.kv_heads * self.head_dim) as f64;
        let i = self.intermediate_size as f64;
        let e = self.experts_total as f64;
        let v = self.vocab_size as f64;
        let attention = l * (h * q + 2.0 * h * kv + q * h);
        let mlp_one = 3.0 * h * i;
        let mlp = l * e * mlp_one;
        let router = if self.is_moe() { l * h * e } else { 0.0 };
        let norms = l * self.norms_per_layer as f64 * h + h;
        let embedding = v * h;
        let lm_head = if self.tie_word_embeddings { 0.0 } else { v * h };
        let total = embedding + lm_head + attention + mlp + router + norms;
        let active = total - mlp + l * self.experts_active as f64 * mlp_one;
        ParamBreakdown {
            embedding_params: embedding,
            lm_head_params: lm_head,
            attention_params: attention,
            mlp_params: mlp,
            router_params: router,
            norm_params: norms,
            total_params: total,
            active_params: active,
        }
    }

    /// Total parameters derived from the shape.
    pub fn params_derived(&self) -> f64 {
        self.param_breakdown().total_params
    }

    /// Layers that attend over the whole context.
    pub fn full_layers(&self) -> u64 {
        self.layers - self.sliding_layers.min(self.layers)
    }

    /// Tokens of K (or V) held per sequence summed over layers: full layers hold the whole
    /// context, sliding layers hold at most their window (exact for a cache that keeps only the
    /// window on sliding layers).
    pub fn kv_layer_tokens(&self, context: u64) -> u64 {
        let sliding_ctx = match self.sliding_window {
            Some(w) => context.min(w),
            None => context,
        };
        self.full_layers() * context + self.sliding_layers.min(self.layers) * sliding_ctx
    }

    /// KV cache bytes: 2 (K and V) x layer-tokens x kv_heads x head_dim x batch x bytes.
    pub fn kv_cache_bytes(&self, context: u64, batch: u64, bytes_per_value: f64) -> f64 {
        2.0 * self.kv_layer_tokens(context) as f64
            * self.kv_heads as f64
            * self.head_dim as f64
            * batch as f64
            * bytes_per_value
    }

    /// A one-line description of the shape.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} layers, hidden {}, {} attention heads / {} KV heads x {} head_dim, intermediate {}, vocab {}",
            self.layers,
            self.hidden_size,
            self.attention_heads,
            self.kv_heads,
            self.head_dim,
            self.intermediate_size,
            self.vocab_size
        );
        if self.is_moe() {
            s.push_str(&format!(
                ", MoE {} experts ({} active)",
                self.experts_total, self.experts_active
            ));
        }
        if self.tie_word_embeddings {
            s.push_str(", tied embeddings");
        }
        if let (Some(w), n) = (self.sliding_window, self.sliding_layers)
            && n > 0
        {
            s.push_str(&format!(
                ", {n} of {} layers sliding-window {w}",
                self.layers
            ));
        }
        s
    }
}

/// Derived parameters of the reference shape with a (possibly fractional) layer count.
fn reference_params(layers: f64) -> f64 {
    let h = REFERENCE_HIDDEN_PER_LAYER as f64 * layers;
    let kv = (REFERENCE_KV_HEADS * REFERENCE_HEAD_DIM) as f64;
    let i = 3.5 * h;
    let v = REFERENCE_VOCAB as f64;
    layers * (2.0 * h * h + 2.0 * h * kv + 3.0 * h * i + 2.0 * h) + 2.0 * v * h + h
}

/// The Llama-3-style reference shape used when only a parameter count is known: hidden =
/// 128 x layers, head_dim 128 (so heads = layers), 8 KV heads, gated MLP of 3.5 x hidden,
/// vocab 128,256, untied embeddings, no sliding window; the layer count is the whole number
/// whose derived total is nearest `params` (8.03B gives Llama 3.1 8B's 32 layers exactly).
pub fn reference_shape(params: f64) -> Architecture {
    // Bisection on the (monotonic) cubic for a fractional layer count, then round.
    let (mut lo, mut hi) = (0.0f64, 4096.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if reference_params(mid) < params {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let layers = (0.5 * (lo + hi)).round().max(1.0) as u64;
    let hidden = REFERENCE_HIDDEN_PER_LAYER * layers;
    Architecture {
        key: "reference".to_string(),
        name: format!("{:.2}B parameters (Llama-3-style reference shape)", params / 1e9),
        source: "reference shape: hidden = 128 x layers, head_dim 128, 8 KV heads, intermediate 3.5 x hidden, vocab 128256, untied; layers chosen so the derived count is nearest the given one".to_string(),
        params_published: None,
        layers,
        hidden_size: hidden,
        attention_heads: layers,
        kv_heads: REFERENCE_KV_HEADS,
        head_dim: REFERENCE_HEAD_DIM,
        vocab_size: REFERENCE_VOCAB,
        intermediate_size: hidden * 7 / 2,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: None,
    }
}

/// A config file's architecture and what the planner had to assume while reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    pub arch: Architecture,
    /// Defaults applied for absent fields, one sentence each.
    pub notes: Vec<String>,
}

/// Reads a Hugging Face style `config.json` from disk.
pub fn load_config(path: &Path) -> Result<LoadedConfig, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PlanError::Config(format!(
            "cannot read config `{}` ({e}): give the path of a Hugging Face config.json",
            path.display()
        ))
    })?;
    parse_config(&text, &path.display().to_string())
}

/// Whether the lm head shares the embedding matrix (`tie_word_embeddings`, in the language
/// model's part or at the top), with a note when it is assumed.
fn tie_embeddings(cfg: &Value, root: &Value, gemma: bool, notes: &mut Vec<String>) -> bool {
    match cfg
        .get("tie_word_embeddings")
        .or_else(|| root.get("tie_word_embeddings"))
        .and_then(Value::as_bool)
    {
        Some(t) => t,
        // Gemma configs omit it and rely on the class default, True.
        None if gemma => true,
        None => {
            notes.push(
                "config has no tie_word_embeddings: assumed false (a separate lm head, the larger count)"
                    .to_string(),
            );
            false
        }
    }
}

/// The language model's part of a config.json, with the file's name for the error sentences.
struct Cfg<'a> {
    cfg: &'a Value,
    origin: &'a str,
}

impl Cfg<'_> {
    /// A positive whole number, or `None` when absent or null; anything else is refused.
    fn get_u64(&self, key: &str) -> Result<Option<u64>, PlanError> {
        let origin = self.origin;
        match self.cfg.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(0) => Err(PlanError::Config(format!(
                    "config `{origin}` has `{key}` = 0: it must be a positive whole number"
                ))),
                Some(n) => Ok(Some(n)),
                None => Err(PlanError::Config(format!(
                    "config `{origin}` has `{key}` = {v}, not a positive whole number: fix the value"
                ))),
            },
        }
    }

    /// A required positive whole number.
    fn need(&self, key: &str) -> Result<u64, PlanError> {
        let origin = self.origin;
        self.get_u64(key)?.ok_or_else(|| {
            PlanError::Config(format!(
                "config `{origin}` is missing `{key}`: add it (a decoder model's config.json has it) or use --params instead"
            ))
        })
    }

    /// (key/value heads, head dimension), with a note when the key/value heads are assumed.
    fn attention(
        &self,
        hidden: u64,
        heads: u64,
        notes: &mut Vec<String>,
    ) -> Result<(u64, u64), PlanError> {
        let origin = self.origin;
        let kv_heads = match self.get_u64("num_key_value_heads")? {
            Some(n) => n,
            None => {
                notes.push(format!(
                    "config has no num_key_value_heads: assumed {heads} (multi-head attention, as Hugging Face does)"
                ));
                heads
            }
        };
        let head_dim = match self.get_u64("head_dim")? {
            Some(d) => d,
            None => {
                if !hidden.is_multiple_of(heads) {
                    return Err(PlanError::Config(format!(
                        "config `{origin}` has no `head_dim` and hidden_size {hidden} is not divisible by num_attention_heads {heads}: add head_dim"
                    )));
                }
                hidden / heads
            }
        };
        Ok((kv_heads, head_dim))
    }

    /// (experts in total, experts per token, the intermediate size of one expert's MLP); one
    /// expert and the dense MLP for a dense model.
    fn experts(&self) -> Result<(u64, u64, u64), PlanError> {
        let origin = self.origin;
        let experts_total = match self.get_u64("num_local_experts")? {
            Some(n) => n,
            None => self.get_u64("num_experts")?.unwrap_or(1),
        };
        if experts_total <= 1 {
            return Ok((1, 1, self.need("intermediate_size")?));
        }
        let experts_active = match self.get_u64("num_experts_per_tok")? {
            Some(n) => n,
            None => self.get_u64("experts_per_token")?.ok_or_else(|| {
                PlanError::Config(format!(
                    "config `{origin}` has {experts_total} experts but no `num_experts_per_tok`: add it"
                ))
            })?,
        };
        let intermediate = match self.get_u64("moe_intermediate_size")? {
            Some(n) => n,
            None => self.need("intermediate_size")?,
        };
        Ok((experts_total, experts_active, intermediate))
    }

    /// How many of `layers` attend within the sliding `window`.
    fn sliding_layers(&self, window: Option<u64>, gemma: bool, layers: u64) -> u64 {
        let use_sliding = self
            .cfg
            .get("use_sliding_window")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        match (
            window,
            self.cfg.get("layer_types").and_then(Value::as_array),
        ) {
            (None, _) => 0,
            (Some(_), Some(types)) => types
                .iter()
                .filter(|t| t.as_str() == Some("sliding_attention"))
                .count() as u64,
            // Gemma 2: even-numbered layers are local (HF Gemma2DecoderLayer: is_sliding = not
            // layer_idx % 2).
            (Some(_), None) if gemma => layers.div_ceil(2),
            // Mistral-style: every layer slides, unless the config turns it off (Qwen2).
            (Some(_), None) if use_sliding => layers,
            (Some(_), None) => 0,
        }
    }
}

/// Reads the text of a Hugging Face style `config.json`; `origin` names it in errors.
pub fn parse_config(text: &str, origin: &str) -> Result<LoadedConfig, PlanError> {
    let mut notes = Vec::new();
    let root: Value = serde_json::from_str(text).map_err(|e| {
        PlanError::Config(format!(
            "config `{origin}` is not valid JSON ({e}): give a Hugging Face config.json"
        ))
    })?;
    if !root.is_object() {
        return Err(PlanError::Config(format!(
            "config `{origin}` is not a JSON object: give a Hugging Face config.json"
        )));
    }
    // Multimodal configs keep the language model under `text_config`.
    let cfg = if root.get("hidden_size").is_none() {
        match root.get("text_config") {
            Some(t) if t.is_object() => t,
            _ => &root,
        }
    } else {
        &root
    };
    let c = Cfg { cfg, origin };
    let get_u64 = |key: &str| c.get_u64(key);
    let need = |key: &str| c.need(key);
    let hidden = need("hidden_size")?;
    let layers = need("num_hidden_layers")?;
    let heads = need("num_attention_heads")?;
    let vocab = need("vocab_size")?;
    let (kv_heads, head_dim) = c.attention(hidden, heads, &mut notes)?;
    let (experts_total, experts_active, intermediate) = c.experts()?;
    if kv_heads > heads || heads % kv_heads != 0 {
        return Err(PlanError::Config(format!(
            "config `{origin}` has num_key_value_heads {kv_heads}, which does not divide num_attention_heads {heads}: fix one of them"
        )));
    }
    if experts_active > experts_total {
        return Err(PlanError::Config(format!(
            "config `{origin}` routes {experts_active} experts per token but has only {experts_total}: fix num_experts_per_tok"
        )));
    }
    let model_type = cfg
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let gemma = model_type.starts_with("gemma2") || model_type.starts_with("gemma3");
    let tie = tie_embeddings(cfg, &root, gemma, &mut notes);
    let window = get_u64("sliding_window")?;
    let sliding_layers = c.sliding_layers(window, gemma, layers);
    let name = root
        .get("_name_or_path")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| origin.to_string());
    if experts_total > 1 && cfg.get("shared_expert_intermediate_size").is_some() {
        notes.push(
            "config has shared experts, which this planner does not count: the totals are low by their size"
                .to_string(),
        );
    }
    let arch = Architecture {
        key: name.clone(),
        name,
        source: origin.to_string(),
        params_published: None,
        layers,
        hidden_size: hidden,
        attention_heads: heads,
        kv_heads,
        head_dim,
        vocab_size: vocab,
        intermediate_size: intermediate,
        experts_total,
        experts_active,
        tie_word_embeddings: tie,
        norms_per_layer: if gemma { 4 } else { 2 },
        sliding_window: if sliding_layers > 0 { window } else { None },
        sliding_layers: sliding_layers.min(layers),
        max_context: get_u64("max_position_embeddings")?,
    };
    arch.check_bounds()
        .map_err(|e| PlanError::Config(format!("config `{origin}`: {e}")))?;
    Ok(LoadedConfig { arch, notes })
}
