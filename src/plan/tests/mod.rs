//! Tests of the planner: every expected figure below is worked out by hand (in the comments)
//! from the published shapes, not read back from the code under test. This file: the inputs
//! (parameter counts, precisions, models, configs, options); `estimates`: targets, verdicts, the
//! workloads' figures, the capacity matrix and the report.

use std::path::PathBuf;

use super::estimate::{Kind, Scenario, largest};
use super::*;
use crate::units::{GB, GIB};

mod estimates;

fn fixture(name: &str) -> PathBuf {
    crate::test_support::fixture(&format!("plan/{name}"))
}

fn arch(key: &str) -> Architecture {
    find_model(key).unwrap().architecture()
}

fn opts_model(model: &str, target: &str) -> PlanOptions {
    PlanOptions {
        model: Some(model.to_string()),
        target: Target::named(target).unwrap(),
        ..PlanOptions::default()
    }
}

fn line<'a>(e: &'a Estimate, prefix: &str) -> &'a Line {
    e.lines
        .iter()
        .find(|l| l.label.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}` in {}", e.label))
}

fn one_sentence(msg: &str) {
    assert!(!msg.is_empty());
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    assert!(!msg.contains(". "), "more than one sentence: {msg}");
}

// ---------------------------------------------------------------- parameter counts

#[test]
fn param_counts_parse() {
    assert_eq!(parse_param_count("70B"), Ok(70e9));
    assert_eq!(parse_param_count("8b"), Ok(8e9));
    assert_eq!(parse_param_count("1.5T"), Ok(1.5e12));
    assert_eq!(parse_param_count("350M"), Ok(350e6));
    assert_eq!(parse_param_count("7.6e9"), Ok(7.6e9));
    assert_eq!(parse_param_count(" 7_000_000_000 "), Ok(7e9));
    assert_eq!(parse_param_count("70 B"), Ok(70e9));
}

#[test]
fn param_counts_refused() {
    for (bad, why) in [
        ("", "empty"),
        ("70G", "unknown suffix `G`"),
        ("70GB", "size in bytes"),
        ("16GiB", "size in bytes"),
        ("abc", "unknown suffix `c`"),
        ("B", "not a number"),
        ("-5B", "negative"),
        ("0B", "zero"),
        ("70", "add a suffix, for example 70B"),
        ("5000T", "beyond 1,000T"),
    ] {
        let e = parse_param_count(bad).unwrap_err();
        assert!(e.contains(why), "`{bad}` gave `{e}`, wanted `{why}`");
        one_sentence(&e);
    }
}

// ---------------------------------------------------------------- precisions

#[test]
fn bytes_per_param_include_scales() {
    assert_eq!(Precision::Fp32.bytes_per_param(), 4.0);
    assert_eq!(Precision::Tf32.bytes_per_param(), 4.0);
    assert_eq!(Precision::Fp16.bytes_per_param(), 2.0);
    assert_eq!(Precision::Bf16.bytes_per_param(), 2.0);
    assert_eq!(Precision::Fp8E4m3.bytes_per_param(), 1.0);
    assert_eq!(Precision::Fp8E5m2.bytes_per_param(), 1.0);
    assert_eq!(Precision::Int8.bytes_per_param(), 1.0);
    assert_eq!(Precision::Int4.bytes_per_param(), 0.5);
    // 0.5 B + 1 B / 16 values.
    assert_eq!(Precision::Nvfp4.bytes_per_param(), 0.5625);
    // 0.5 B + 1 B / 32 values.
    assert_eq!(Precision::Mxfp4.bytes_per_param(), 0.53125);
    // (4 + 8/64 + 32/16384) bits = 2113/512 bits = 2113/4096 B.
    assert_eq!(Precision::Nf4.bytes_per_param(), 2113.0 / 4096.0);
}

#[test]
fn precision_names_round_trip() {
    for p in Precision::ALL {
        assert_eq!(Precision::parse(p.name()), Ok(p));
        assert_eq!(Precision::parse(&p.name().to_uppercase()), Ok(p));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{}\"", p.name()));
        assert_eq!(serde_json::from_str::<Precision>(&json).unwrap(), p);
    }
    assert_eq!(Precision::parse("fp8"), Ok(Precision::Fp8E4m3));
    assert_eq!(Precision::parse("BF16"), Ok(Precision::Bf16));
    assert_eq!(Precision::parse("fp8_e5m2"), Ok(Precision::Fp8E5m2));
    assert_eq!(
        Precision::parse_list("fp16, nvfp4,fp16"),
        Ok(vec![Precision::Fp16, Precision::Nvfp4])
    );
    assert_eq!(Precision::parse_list("all"), Ok(vec![]));
}

#[test]
fn bad_precision_is_one_sentence() {
    let e = Precision::parse("fp7").unwrap_err().to_string();
    assert!(e.starts_with("unknown precision `fp7`"), "{e}");
    assert!(e.contains("nvfp4") && e.contains("bf16"), "{e}");
    one_sentence(&e);
    assert!(Precision::parse_list("fp16,int3").is_err());
}

// ---------------------------------------------------------------- the 70B worked example

#[test]
fn seventy_b_weights_worked_example() {
    let r = plan(&PlanOptions {
        params: Some("70B".into()),
        ..PlanOptions::default()
    })
    .unwrap();
    assert_eq!(r.model.params, 70e9);
    let w = |p: Precision| {
        r.precisions
            .iter()
            .find(|row| row.precision == p)
            .unwrap()
            .weights_bytes
    };
    assert_eq!(w(Precision::Fp32), 280_000_000_000);
    assert_eq!(w(Precision::Fp16), 140_000_000_000);
    assert_eq!(w(Precision::Bf16), 140_000_000_000);
    assert_eq!(w(Precision::Int8), 70_000_000_000);
    assert_eq!(w(Precision::Int4), 35_000_000_000);
    assert_eq!(w(Precision::Nvfp4), 39_375_000_000);
    assert_eq!(w(Precision::Mxfp4), 37_187_500_000);
    // The same figure on the inference estimate's weights line, with its formula.
    let e = r
        .estimates
        .iter()
        .find(|e| e.workload == Workload::Inference && e.precision == Precision::Nvfp4)
        .unwrap();
    let l = line(e, "weights");
    assert_eq!(l.bytes, 39_375_000_000);
    assert_eq!(l.gb, 39.375);
    assert_eq!(
        l.formula,
        "70,000,000,000 params x 0.5625 B (nvfp4) = 39.375 GB"
    );
}

#[test]
fn reference_shape_matches_llama_8b() {
    // 8.03B with the reference shape is Llama 3.1 8B's 32 layers x 4096 hidden, 14336 MLP.
    let r = reference_shape(8.03e9);
    assert_eq!(r.layers, 32);
    assert_eq!(r.hidden_size, 4096);
    assert_eq!(r.intermediate_size, 14336);
    assert_eq!(r.params_derived(), arch("llama-3.1-8b").params_derived());
    // 70B: the nearest whole layer count; hidden stays 128 x layers.
    let r70 = reference_shape(70e9);
    assert_eq!(r70.hidden_size, 128 * r70.layers);
    assert!((r70.params_derived() - 70e9).abs() / 70e9 < 0.05);
}

// ---------------------------------------------------------------- KV cache

#[test]
fn kv_cache_llama_8b_at_8k_by_hand() {
    // 2 x 32 layers x 8 kv_heads x 128 head_dim x 8192 ctx x 1 batch x 2 B = 1,073,741,824 B.
    let a = arch("llama-3.1-8b");
    assert_eq!(a.kv_cache_bytes(8192, 1, 2.0), 1_073_741_824.0);
    let r = plan(&PlanOptions {
        model: Some("llama-3.1-8b".into()),
        precisions: vec![Precision::Bf16],
        workload: Workload::Inference,
        ..PlanOptions::default()
    })
    .unwrap();
    let kv = line(&r.estimates[0], "KV cache");
    assert_eq!(kv.bytes, 1_073_741_824);
    assert_eq!(kv.gib, 1.0);
    assert_eq!(
        kv.formula,
        "2 (K,V) x 32 layers x 8 kv_heads x 128 head_dim x 8192 ctx x 1 batch x 2 B (fp16) = 1.074 GB"
    );
    // fp8 KV halves it, batch 4 quadruples it.
    assert_eq!(a.kv_cache_bytes(8192, 4, 1.0), 2.0 * 1_073_741_824.0);
}

#[test]
fn kv_cache_sliding_window_layers() {
    // Gemma 2 9B: 21 full layers x 8192 + 21 sliding layers x 4096 = 258,048 layer-tokens;
    // x 2 x 8 kv_heads x 256 head_dim x 2 B = 2,113,929,216 B.
    let g = arch("gemma-2-9b");
    assert_eq!(g.kv_layer_tokens(8192), 258_048);
    assert_eq!(g.kv_cache_bytes(8192, 1, 2.0), 2_113_929_216.0);
    // Below the window every layer holds the whole context: 42 x 2048 x 2 x 8 x 256 x 2.
    assert_eq!(g.kv_cache_bytes(2048, 1, 2.0), 42.0 * 2048.0 * 8192.0);
    // gpt-oss 20B: 12 x 8192 + 12 x 128 = 99,840; x 2 x 8 x 64 x 2 B = 204,472,320 B.
    let o = arch("gpt-oss-20b");
    assert_eq!(o.kv_cache_bytes(8192, 1, 2.0), 204_472_320.0);
    // The formula names both kinds of layer.
    let s = Scenario {
        arch: &o,
        params: o.params_derived(),
        kind: Kind::Inference {
            weights: Precision::Mxfp4,
            kv: Precision::Fp16,
        },
        lora_rank: 16,
    };
    assert_eq!(
        s.kv_line(Precision::Fp16, 8192, 1).formula,
        "2 (K,V) x (12 full layers x 8192 ctx + 12 sliding layers x 128 ctx (window 128)) x 8 kv_heads x 64 head_dim x 1 batch x 2 B (fp16) = 0.204 GB"
    );
}

// ---------------------------------------------------------------- the model table

#[test]
fn table_counts_agree_with_architecture_within_2_percent() {
    assert!(MODELS.len() >= 13);
    for m in MODELS {
        let derived = m.architecture().params_derived();
        let rel = (derived - m.params_published).abs() / m.params_published;
        assert!(
            rel < 0.02,
            "{}: derived {derived} vs published {} ({:.2}%)",
            m.key,
            m.params_published,
            rel * 100.0
        );
        assert!(
            m.source.contains("https://huggingface.co/") && m.source.contains("config.json"),
            "{} cites no config.json",
            m.key
        );
        assert_eq!(m.attention_heads % m.kv_heads, 0, "{}", m.key);
        assert!(m.sliding_layers <= m.layers);
        assert!(m.experts_active <= m.experts_total);
    }
    for key in [
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.2-1b",
        "llama-3.2-3b",
        "mistral-7b",
        "mixtral-8x7b",
        "qwen2.5-7b",
        "qwen2.5-32b",
        "qwen2.5-72b",
        "gemma-2-9b",
        "gemma-2-27b",
        "gpt-oss-20b",
        "gpt-oss-120b",
    ] {
        assert!(find_model(key).is_ok(), "{key} missing");
    }
}

#[test]
fn derived_counts_match_known_exact_totals() {
    // Hugging Face safetensors totals of these checkpoints (no biases in these models).
    // Llama 3.1 8B: 2 x 128256 x 4096 + 32 x (41,943,040 attn + 176,160,768 mlp + 8192 norms)
    // + 4096 = 8,030,261,248.
    assert_eq!(arch("llama-3.1-8b").params_derived(), 8_030_261_248.0);
    // Llama 3.1 70B: 2 x 128256 x 8192 + 80 x 855,654,400 + 8192 = 70,553,706,496.
    assert_eq!(arch("llama-3.1-70b").params_derived(), 70_553_706_496.0);
    // Mixtral: 2 x 32000 x 4096 + 32 x (41,943,040 + 8 x 176,160,768 + 32,768 router + 8192)
    // + 4096 = 46,702,792,704.
    assert_eq!(arch("mixtral-8x7b").params_derived(), 46_702_792_704.0);
    // Llama 3.2 1B ties its embeddings: 128256 x 2048 + 16 x 60,821,504 + 2048 = 1,235,814,400.
    assert_eq!(arch("llama-3.2-1b").params_derived(), 1_235_814_400.0);
    // Mixtral routes 2 of 8 experts: active = total - 32 x 6 x 176,160,768 = 12,879,925,248.
    let pb = arch("mixtral-8x7b").param_breakdown();
    assert_eq!(pb.active_params, 12_879_925_248.0);
}

#[test]
fn model_names_match_loosely() {
    for name in [
        "Llama-3.1-8B",
        "LLAMA-3.1-8b",
        "llama3.1-8b",
        "meta-llama/Llama-3.1-8B-Instruct",
    ] {
        assert_eq!(find_model(name).unwrap().key, "llama-3.1-8b", "{name}");
    }
    assert_eq!(find_model("gemma-2-9b-it").unwrap().key, "gemma-2-9b");
    assert_eq!(
        find_model("mistralai/Mistral-7B-Instruct-v0.3")
            .unwrap()
            .key,
        "mistral-7b"
    );
    assert_eq!(find_model("Qwen2.5-72B").unwrap().key, "qwen2.5-72b");
    assert_eq!(
        find_model("openai/gpt-oss-120b").unwrap().key,
        "gpt-oss-120b"
    );
}

#[test]
fn unknown_model_lists_known_names() {
    let e = find_model("llama-9").unwrap_err().to_string();
    assert!(e.starts_with("unknown model `llama-9`"), "{e}");
    for m in MODELS {
        assert!(e.contains(m.key), "{e} lacks {}", m.key);
    }
    one_sentence(&e);
    let via_plan = plan(&opts_model("llama-9", "gb10")).unwrap_err();
    assert!(matches!(via_plan, PlanError::UnknownModel(_)));
}

// ---------------------------------------------------------------- config.json

#[test]
fn config_round_trip_llama_8b() {
    let loaded = load_config(&fixture("llama-3.1-8b.config.json")).unwrap();
    let table = arch("llama-3.1-8b");
    let c = &loaded.arch;
    assert_eq!(
        (
            c.layers,
            c.hidden_size,
            c.attention_heads,
            c.kv_heads,
            c.head_dim,
            c.vocab_size,
            c.intermediate_size
        ),
        (32, 4096, 32, 8, 128, 128_256, 14_336)
    );
    // Every shape field equal to the table's; only the identity fields differ.
    let mut same = c.clone();
    same.key = table.key.clone();
    same.name = table.name.clone();
    same.source = table.source.clone();
    same.params_published = table.params_published;
    assert_eq!(same, table);
    assert!(c.source.ends_with("llama-3.1-8b.config.json"));
    assert_eq!(c.params_derived(), 8_030_261_248.0);
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);

    // And the plan from the config equals the plan from the table, line for line.
    let from_cfg = plan(&PlanOptions {
        config: Some(fixture("llama-3.1-8b.config.json")),
        workload: Workload::Inference,
        precisions: vec![Precision::Bf16],
        ..PlanOptions::default()
    })
    .unwrap();
    let from_table = plan(&PlanOptions {
        model: Some("llama-3.1-8b".into()),
        workload: Workload::Inference,
        precisions: vec![Precision::Bf16],
        ..PlanOptions::default()
    })
    .unwrap();
    assert_eq!(from_cfg.estimates[0].lines, from_table.estimates[0].lines);
}

#[test]
fn config_round_trip_sliding_and_moe() {
    // gpt-oss: layer_types alternate sliding/full; MoE fields.
    let o = load_config(&fixture("gpt-oss-20b.config.json"))
        .unwrap()
        .arch;
    let t = arch("gpt-oss-20b");
    assert_eq!((o.sliding_layers, o.sliding_window), (12, Some(128)));
    assert_eq!((o.experts_total, o.experts_active), (32, 4));
    assert_eq!(o.params_derived(), t.params_derived());
    assert_eq!(o.kv_layer_tokens(8192), t.kv_layer_tokens(8192));
    // Gemma 2: no layer_types, even layers slide; four norms per layer; tied by default.
    let g = load_config(&fixture("gemma-2-9b.config.json"))
        .unwrap()
        .arch;
    let t = arch("gemma-2-9b");
    assert_eq!((g.sliding_layers, g.sliding_window), (21, Some(4096)));
    assert_eq!(g.norms_per_layer, 4);
    assert!(g.tie_word_embeddings);
    assert_eq!(g.params_derived(), t.params_derived());
}

#[test]
fn config_defaults_and_text_config() {
    // No head_dim, no num_key_value_heads, no tie_word_embeddings, nested under text_config.
    let text = r#"{"model_type": "x", "text_config": {"hidden_size": 1024, "num_hidden_layers": 4,
        "num_attention_heads": 8, "intermediate_size": 4096, "vocab_size": 1000}}"#;
    let l = parse_config(text, "inline").unwrap();
    assert_eq!(l.arch.head_dim, 128);
    assert_eq!(l.arch.kv_heads, 8);
    assert!(!l.arch.tie_word_embeddings);
    assert_eq!(l.notes.len(), 2, "{:?}", l.notes);
    // Qwen2 style: a sliding_window that is switched off.
    let q = r#"{"hidden_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 8,
        "intermediate_size": 4096, "vocab_size": 1000, "sliding_window": 131072,
        "use_sliding_window": false, "tie_word_embeddings": true}"#;
    assert_eq!(parse_config(q, "q").unwrap().arch.sliding_layers, 0);
    // Mistral v0.1 style: every layer slides.
    let m = r#"{"hidden_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 8,
        "intermediate_size": 4096, "vocab_size": 1000, "sliding_window": 4096,
        "tie_word_embeddings": false}"#;
    assert_eq!(parse_config(m, "m").unwrap().arch.sliding_layers, 4);
}

#[test]
fn bad_configs_are_one_sentence() {
    let missing = load_config(&fixture("missing-layers.config.json"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("is missing `num_hidden_layers`"),
        "{missing}"
    );
    one_sentence(&missing);

    let unreadable = load_config(&fixture("no-such-file.json"))
        .unwrap_err()
        .to_string();
    assert!(unreadable.starts_with("cannot read config"), "{unreadable}");
    assert!(unreadable.contains("no-such-file.json"), "{unreadable}");
    one_sentence(&unreadable);

    let not_json = load_config(&fixture("not-json.config.json"))
        .unwrap_err()
        .to_string();
    assert!(not_json.contains("is not valid JSON"), "{not_json}");
    one_sentence(&not_json);

    let bad_value = parse_config(
        r#"{"hidden_size": "big", "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 8, "vocab_size": 8}"#,
        "inline",
    )
    .unwrap_err()
    .to_string();
    assert!(bad_value.contains("`hidden_size`"), "{bad_value}");
    one_sentence(&bad_value);

    let bad_kv = parse_config(
        r#"{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
            "num_key_value_heads": 3, "intermediate_size": 8, "vocab_size": 8}"#,
        "inline",
    )
    .unwrap_err()
    .to_string();
    assert!(bad_kv.contains("does not divide"), "{bad_kv}");
}

// ---------------------------------------------------------------- options and errors

#[test]
fn option_errors_are_one_sentence() {
    let none = plan(&PlanOptions::default()).unwrap_err();
    assert!(none.to_string().starts_with("no model given"), "{none}");
    let two = plan(&PlanOptions {
        params: Some("8B".into()),
        model: Some("llama-3.1-8b".into()),
        ..PlanOptions::default()
    })
    .unwrap_err();
    assert_eq!(
        two.to_string(),
        "--params and --model were all given: pass only one of --params, --model or --config"
    );
    let bad_params = plan(&PlanOptions {
        params: Some("70G".into()),
        ..PlanOptions::default()
    })
    .unwrap_err();
    assert!(matches!(bad_params, PlanError::Params(_)));
    let zero_ctx = plan(&PlanOptions {
        context: 0,
        ..opts_model("llama-3.1-8b", "gb10")
    })
    .unwrap_err();
    assert!(
        zero_ctx
            .to_string()
            .starts_with("--context 0 is out of range")
    );
    let zero_rank = plan(&PlanOptions {
        lora_rank: 0,
        ..opts_model("llama-3.1-8b", "gb10")
    })
    .unwrap_err();
    assert!(zero_rank.to_string().contains("rank"));
    let ft_int4 = plan(&PlanOptions {
        workload: Workload::FullFinetune,
        precisions: vec![Precision::Int4],
        ..opts_model("llama-3.1-8b", "gb10")
    })
    .unwrap_err();
    assert!(ft_int4.to_string().contains("training precision"));
    for e in [none, two, bad_params, zero_ctx, zero_rank, ft_int4] {
        one_sentence(&e.to_string());
    }
}

#[test]
fn workloads_parse() {
    assert_eq!(Workload::parse("inference"), Ok(Workload::Inference));
    assert_eq!(Workload::parse("Full-Finetune"), Ok(Workload::FullFinetune));
    assert_eq!(Workload::parse("full_finetune"), Ok(Workload::FullFinetune));
    assert_eq!(Workload::parse("qlora"), Ok(Workload::Qlora));
    assert_eq!(Workload::parse("all"), Ok(Workload::All));
    let e = Workload::parse("pretrain").unwrap_err().to_string();
    assert!(e.starts_with("unknown workload `pretrain`"));
    one_sentence(&e);
}
