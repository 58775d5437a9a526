//! The built-in table of well-known open models, each with its published architecture and the
//! addresses the numbers come from, so `--model llama-3.1-70b` needs no download. Every entry's
//! published parameter count is checked against the count derived from its shape (tests).

use super::PlanError;
use super::arch::Architecture;

/// One row of the table, as published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    /// The name `--model` takes (matched case-insensitively, punctuation ignored).
    pub key: &'static str,
    /// The Hugging Face repository the config comes from.
    pub hf_id: &'static str,
    pub name: &'static str,
    /// Published total parameters (model card or Hugging Face model page).
    pub params_published: f64,
    pub layers: u64,
    pub hidden_size: u64,
    pub attention_heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub vocab_size: u64,
    pub intermediate_size: u64,
    pub experts_total: u64,
    pub experts_active: u64,
    pub tie_word_embeddings: bool,
    pub norms_per_layer: u64,
    pub sliding_window: Option<u64>,
    pub sliding_layers: u64,
    pub max_context: u64,
    /// Where each number comes from.
    pub source: &'static str,
}

/// The table. Shapes are copied from each repository's `config.json`; parameter counts from the
/// model card or the Hugging Face model page, as `source` says.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        key: "llama-3.1-8b",
        hf_id: "meta-llama/Llama-3.1-8B",
        name: "Llama 3.1 8B",
        params_published: 8.03e9,
        layers: 32,
        hidden_size: 4096,
        attention_heads: 32,
        kv_heads: 8,
        head_dim: 128,
        vocab_size: 128_256,
        intermediate_size: 14_336,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 131_072,
        source: "shape: https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json; params 8.03B: https://huggingface.co/meta-llama/Llama-3.1-8B",
    },
    ModelSpec {
        key: "llama-3.1-70b",
        hf_id: "meta-llama/Llama-3.1-70B",
        name: "Llama 3.1 70B",
        params_published: 70.6e9,
        layers: 80,
        hidden_size: 8192,
        attention_heads: 64,
        kv_heads: 8,
        head_dim: 128,
        vocab_size: 128_256,
        intermediate_size: 28_672,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 131_072,
        source: "shape: https://huggingface.co/meta-llama/Llama-3.1-70B/blob/main/config.json; params 70.6B: https://huggingface.co/meta-llama/Llama-3.1-70B",
    },
    ModelSpec {
        key: "llama-3.2-1b",
        hf_id: "meta-llama/Llama-3.2-1B",
        name: "Llama 3.2 1B",
        params_published: 1.24e9,
        layers: 16,
        hidden_size: 2048,
        attention_heads: 32,
        kv_heads: 8,
        head_dim: 64,
        vocab_size: 128_256,
        intermediate_size: 8192,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: true,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 131_072,
        source: "shape: https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json; params 1.24B: https://huggingface.co/meta-llama/Llama-3.2-1B",
    },
    ModelSpec {
        key: "llama-3.2-3b",
        hf_id: "meta-llama/Llama-3.2-3B",
        name: "Llama 3.2 3B",
        params_published: 3.21e9,
        layers: 28,
        hidden_size: 3072,
        attention_heads: 24,
        kv_heads: 8,
        head_dim: 128,
        vocab_size: 128_256,
        intermediate_size: 8192,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: true,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 131_072,
        source: "shape: https://huggingface.co/meta-llama/Llama-3.2-3B/blob/main/config.json; params 3.21B: https://huggingface.co/meta-llama/Llama-3.2-3B",
    },
    ModelSpec {
        key: "mistral-7b",
        hf_id: "mistralai/Mistral-7B-v0.3",
        name: "Mistral 7B v0.3",
        params_published: 7.25e9,
        layers: 32,
        hidden_size: 4096,
        attention_heads: 32,
        kv_heads: 8,
        head_dim: 128,
        vocab_size: 32_768,
        intermediate_size: 14_336,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 32_768,
        source: "shape: https://huggingface.co/mistralai/Mistral-7B-v0.3/blob/main/config.json; params 7.25B: https://huggingface.co/mistralai/Mistral-7B-v0.3",
    },
    ModelSpec {
        key: "mixtral-8x7b",
        hf_id: "mistralai/Mixtral-8x7B-v0.1",
        name: "Mixtral 8x7B",
        params_published: 46.7e9,
        layers: 32,
        hidden_size: 4096,
        attention_heads: 32,
        kv_heads: 8,
        head_dim: 128,
        vocab_size: 32_000,
        intermediate_size: 14_336,
        experts_total: 8,
        experts_active: 2,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 32_768,
        source: "shape: https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json; params 46.7B: https://huggingface.co/mistralai/Mixtral-8x7B-v0.1",
    },
    ModelSpec {
        key: "qwen2.5-7b",
        hf_id: "Qwen/Qwen2.5-7B",
        name: "Qwen2.5 7B",
        params_published: 7.61e9,
        layers: 28,
        hidden_size: 3584,
        attention_heads: 28,
        kv_heads: 4,
        head_dim: 128,
        vocab_size: 152_064,
        intermediate_size: 18_944,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 131_072,
        source: "shape: https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json; params 7.61B: https://huggingface.co/Qwen/Qwen2.5-7B (model card)",
    },
    ModelSpec {
        key: "qwen2.5-32b",
        hf_id: "Qwen/Qwen2.5-32B",
        name: "Qwen2.5 32B",
        params_published: 32.5e9,
        layers: 64,
        hidden_size: 5120,
        attention_heads: 40,
        kv_heads: 8,
        head_dim: 128,
        vocab_size: 152_064,
        intermediate_size: 27_648,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 131_072,
        source: "shape: https://huggingface.co/Qwen/Qwen2.5-32B/blob/main/config.json; params 32.5B: https://huggingface.co/Qwen/Qwen2.5-32B (model card)",
    },
    ModelSpec {
        key: "qwen2.5-72b",
        hf_id: "Qwen/Qwen2.5-72B",
        name: "Qwen2.5 72B",
        params_published: 72.7e9,
        layers: 80,
        hidden_size: 8192,
        attention_heads: 64,
        kv_heads: 8,
        head_dim: 128,
        vocab_size: 152_064,
        intermediate_size: 29_568,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: None,
        sliding_layers: 0,
        max_context: 131_072,
        source: "shape: https://huggingface.co/Qwen/Qwen2.5-72B/blob/main/config.json; params 72.7B: https://huggingface.co/Qwen/Qwen2.5-72B (model card)",
    },
    ModelSpec {
        key: "gemma-2-9b",
        hf_id: "google/gemma-2-9b",
        name: "Gemma 2 9B",
        params_published: 9.24e9,
        layers: 42,
        hidden_size: 3584,
        attention_heads: 16,
        kv_heads: 8,
        head_dim: 256,
        vocab_size: 256_000,
        intermediate_size: 14_336,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: true,
        norms_per_layer: 4,
        sliding_window: Some(4096),
        sliding_layers: 21,
        max_context: 8192,
        source: "shape: https://huggingface.co/google/gemma-2-9b/blob/main/config.json (sliding_window 4096 on even layers, HF Gemma2DecoderLayer); params 9.24B: https://huggingface.co/google/gemma-2-9b",
    },
    ModelSpec {
        key: "gemma-2-27b",
        hf_id: "google/gemma-2-27b",
        name: "Gemma 2 27B",
        params_published: 27.2e9,
        layers: 46,
        hidden_size: 4608,
        attention_heads: 32,
        kv_heads: 16,
        head_dim: 128,
        vocab_size: 256_000,
        intermediate_size: 36_864,
        experts_total: 1,
        experts_active: 1,
        tie_word_embeddings: true,
        norms_per_layer: 4,
        sliding_window: Some(4096),
        sliding_layers: 23,
        max_context: 8192,
        source: "shape: https://huggingface.co/google/gemma-2-27b/blob/main/config.json (sliding_window 4096 on even layers, HF Gemma2DecoderLayer); params 27.2B: https://huggingface.co/google/gemma-2-27b",
    },
    ModelSpec {
        key: "gpt-oss-20b",
        hf_id: "openai/gpt-oss-20b",
        name: "gpt-oss 20B",
        params_published: 20.91e9,
        layers: 24,
        hidden_size: 2880,
        attention_heads: 64,
        kv_heads: 8,
        head_dim: 64,
        vocab_size: 201_088,
        intermediate_size: 2880,
        experts_total: 32,
        experts_active: 4,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: Some(128),
        sliding_layers: 12,
        max_context: 131_072,
        source: "shape: https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json (layer_types alternate sliding_attention/full_attention, sliding_window 128); params 20.91B: https://openai.com/index/gpt-oss-model-card/",
    },
    ModelSpec {
        key: "gpt-oss-120b",
        hf_id: "openai/gpt-oss-120b",
        name: "gpt-oss 120B",
        params_published: 116.83e9,
        layers: 36,
        hidden_size: 2880,
        attention_heads: 64,
        kv_heads: 8,
        head_dim: 64,
        vocab_size: 201_088,
        intermediate_size: 2880,
        experts_total: 128,
        experts_active: 4,
        tie_word_embeddings: false,
        norms_per_layer: 2,
        sliding_window: Some(128),
        sliding_layers: 18,
        max_context: 131_072,
        source: "shape: https://huggingface.co/openai/gpt-oss-120b/blob/main/config.json (layer_types alternate sliding_attention/full_attention, sliding_window 128); params 116.83B: https://openai.com/index/gpt-oss-model-card/",
    },
];

impl ModelSpec {
    /// The architecture this row describes.
    pub fn architecture(&self) -> Architecture {
        Architecture {
            key: self.key.to_string(),
            name: self.name.to_string(),
            source: self.source.to_string(),
            params_published: Some(self.params_published),
            layers: self.layers,
            hidden_size: self.hidden_size,
            attention_heads: self.attention_heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            vocab_size: self.vocab_size,
            intermediate_size: self.intermediate_size,
            experts_total: self.experts_total,
            experts_active: self.experts_active,
            tie_word_embeddings: self.tie_word_embeddings,
            norms_per_layer: self.norms_per_layer,
            sliding_window: self.sliding_window,
            sliding_layers: self.sliding_layers,
            max_context: Some(self.max_context),
        }
    }
}

/// Lower case, letters and digits only, `instruct`/`-it` variants folded onto the base model
/// (same architecture).
fn normalize(name: &str) -> String {
    let tail = name.rsplit('/').next().unwrap_or(name);
    let mut s: String = tail
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    s = s.replace("instruct", "");
    if let Some(stripped) = s.strip_suffix("it")
        && stripped.ends_with('b')
    {
        s = stripped.to_string();
    }
    s
}

/// The known `--model` names.
pub fn model_names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.key).collect()
}

/// Finds a model by its key or Hugging Face id, case-insensitively (`Llama-3.1-8B`,
/// `meta-llama/Llama-3.1-8B-Instruct` and `llama3.1-8b` all find `llama-3.1-8b`).
pub fn find_model(name: &str) -> Result<&'static ModelSpec, PlanError> {
    let want = normalize(name);
    if !want.is_empty() {
        for m in MODELS {
            if normalize(m.key) == want || normalize(m.hf_id) == want {
                return Ok(m);
            }
        }
    }
    Err(PlanError::UnknownModel(format!(
        "unknown model `{name}`: known models are {}; for another model pass --config config.json or --params",
        model_names().join(", ")
    )))
}
