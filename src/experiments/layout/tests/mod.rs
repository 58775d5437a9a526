//! Unit tests of the layout's pure parts: preset arithmetic against the planner, the free
//! patterns, the bisection, the totals, and the tables and findings from synthetic rows.

use super::*;
use crate::error::Error;
use crate::plan::Precision;
use crate::plan::{MODELS, PlanOptions, Workload, find_model, plan};
use crate::units::{GB, GIB, KIB, MIB};

fn kv(context: u64) -> Option<KvCache> {
    Some(KvCache {
        context,
        batch: 1,
        dtype: Precision::Fp16,
    })
}

fn weights(l: &Layout) -> u64 {
    l.tensors
        .iter()
        .filter(|t| t.component != "kv_cache")
        .map(|t| t.bytes)
        .sum()
}

#[test]
fn preset_13b_sim_is_the_labs_sizes_in_gb() {
    let l = preset("13b-sim").unwrap();
    let got: Vec<(&str, u64)> = l
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.bytes))
        .collect();
    assert_eq!(
        got,
        [
            ("embeddings", 2 * GB),
            ("attention", 8 * GB),
            ("feedforward", 10 * GB),
            ("layer_norms", GB / 2),
            ("output_head", GB),
            ("activations", 4 * GB),
        ]
    );
    assert_eq!(l.total_bytes(), 25_500_000_000);
    assert_eq!(preset("13B-SIM").unwrap(), l);
    let e = preset("7b-sim").unwrap_err();
    assert!(
        e.contains("unknown preset `7b-sim`") && e.contains("13b-sim") && e.contains("--model"),
        "{e}"
    );
}

#[test]
fn model_presets_add_up_to_the_planner() {
    for m in MODELS {
        let arch = m.architecture();
        for p in [
            Precision::Bf16,
            Precision::Fp8E4m3,
            Precision::Nvfp4,
            Precision::Nf4,
        ] {
            let l = from_architecture(&arch, p, kv(8192));
            // Weights: the planner's figure for this precision, rounded up per tensor only.
            let opts = PlanOptions {
                model: Some(m.key.to_string()),
                precisions: vec![p],
                workload: Workload::Inference,
                ..Default::default()
            };
            // Norm vectors stay in bf16 for 8- and 4-bit formats (the planner counts them at p).
            let norm_values = (arch.layers * arch.norms_per_layer + 1) * arch.hidden_size;
            let nd = super::preset::norm_dtype(p);
            let planned = plan(&opts).unwrap().precisions[0].weights_bytes
                + super::preset::bytes_of(norm_values, nd)
                - super::preset::bytes_of(norm_values, p);
            let w = weights(&l);
            let n = l.tensors.len() as u64;
            assert!(
                w + n >= planned && w <= planned + n,
                "{} {p}: layout weights {w} vs planned {planned}",
                m.key
            );
            if p == Precision::Bf16 {
                assert_eq!(w as f64, arch.params_derived() * 2.0, "{} bf16", m.key);
            } else {
                let norm = l.tensors.iter().find(|t| t.name == "final_norm");
                assert_eq!(
                    norm.and_then(|t| t.dtype),
                    Some(Precision::Bf16),
                    "{} {p}",
                    m.key
                );
            }
            // KV cache: the planner's formula, sliding-window layers included.
            let kv_bytes: u64 = l
                .tensors
                .iter()
                .filter(|t| t.component == "kv_cache")
                .map(|t| t.bytes)
                .sum();
            assert_eq!(
                kv_bytes as f64,
                arch.kv_cache_bytes(8192, 1, 2.0),
                "{} KV cache",
                m.key
            );
            // Every name once; every tensor non-empty; elements match bytes.
            let mut names: Vec<&str> = l.tensors.iter().map(|t| t.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), l.tensors.len(), "{} names", m.key);
            for t in &l.tensors {
                assert!(t.bytes > 0, "{} {}", m.key, t.name);
                let d = t.dtype.unwrap();
                assert_eq!(t.bytes, preset::bytes_of(t.elements.unwrap(), d));
            }
        }
    }
}

#[test]
fn llama_8b_has_one_tensor_per_component_per_layer() {
    let arch = find_model("llama-3.1-8b").unwrap().architecture();
    let l = from_architecture(&arch, Precision::Bf16, kv(8192));
    // embeddings + 32 x (2 norms, qkv, o, gate_up, down) + final norm + lm head + 32 KV caches.
    assert_eq!(l.tensors.len(), 1 + 32 * 6 + 1 + 1 + 32);
    let get = |n: &str| l.tensors.iter().find(|t| t.name == n).unwrap().bytes;
    assert_eq!(get("embeddings"), 128_256 * 4096 * 2);
    assert_eq!(
        get("layer.12.attn.qkv"),
        (4096 * 4096 + 2 * 4096 * 1024) * 2
    );
    assert_eq!(get("layer.12.attn.o"), 4096 * 4096 * 2);
    assert_eq!(get("layer.12.mlp.gate_up"), 2 * 4096 * 14_336 * 2);
    assert_eq!(get("layer.12.mlp.down"), 14_336 * 4096 * 2);
    assert_eq!(get("layer.12.input_norm"), 8 * KIB);
    assert_eq!(get("layer.12.post_attention_norm"), 8 * KIB);
    assert_eq!(get("lm_head"), 128_256 * 4096 * 2);
    // K and V, 8 KV heads x 128, 8192 tokens, fp16: 32 MiB a layer, 1 GiB in all.
    assert_eq!(get("layer.31.kv_cache"), 32 * MIB);
    assert_eq!(l.tensors.last().unwrap().name, "layer.31.kv_cache");
    // Without the KV cache: weights only.
    let w = from_architecture(&arch, Precision::Bf16, None);
    assert_eq!(w.tensors.len(), 195);
    assert!(w.notes.iter().any(|n| n.contains("no KV cache")));
    // A tied model has no lm head tensor.
    let tied = from_architecture(
        &find_model("llama-3.2-1b").unwrap().architecture(),
        Precision::Bf16,
        None,
    );
    assert!(tied.tensors.iter().all(|t| t.name != "lm_head"));
    assert!(tied.notes.iter().any(|n| n.contains("tied")));
}

#[test]
fn moe_and_sliding_window_presets() {
    let mix = from_architecture(
        &find_model("mixtral-8x7b").unwrap().architecture(),
        Precision::Bf16,
        None,
    );
    let get = |n: &str| mix.tensors.iter().find(|t| t.name == n).unwrap().bytes;
    assert_eq!(get("layer.0.mlp.router"), 4096 * 8 * 2);
    assert_eq!(
        get("layer.0.mlp.experts.gate_up"),
        8 * 2 * 4096 * 14_336 * 2
    );
    assert_eq!(get("layer.0.mlp.experts.down"), 8 * 14_336 * 4096 * 2);
    // Gemma 2: 4 norms a layer, even layers slide within 4096 tokens.
    let g = from_architecture(
        &find_model("gemma-2-9b").unwrap().architecture(),
        Precision::Bf16,
        kv(8192),
    );
    let kv_of = |l: u64| {
        g.tensors
            .iter()
            .find(|t| t.name == format!("layer.{l}.kv_cache"))
            .unwrap()
            .bytes
    };
    assert_eq!(kv_of(0) * 2, kv_of(1), "layer 0 slides, layer 1 does not");
    assert!(
        g.tensors
            .iter()
            .any(|t| t.name == "layer.3.post_feedforward_norm")
    );
    // A short context is not cut by the window.
    let short = from_architecture(
        &find_model("gemma-2-9b").unwrap().architecture(),
        Precision::Bf16,
        kv(1024),
    );
    let k0 = short
        .tensors
        .iter()
        .find(|t| t.name == "layer.0.kv_cache")
        .unwrap();
    let k1 = short
        .tensors
        .iter()
        .find(|t| t.name == "layer.1.kv_cache")
        .unwrap();
    assert_eq!(k0.bytes, k1.bytes);
}

#[test]
fn odd_precisions_round_up_to_whole_bytes() {
    assert_eq!(preset::bytes_of(16, Precision::Nvfp4), 9);
    assert_eq!(preset::bytes_of(1, Precision::Nvfp4), 1);
    assert_eq!(preset::bytes_of(32, Precision::Mxfp4), 17);
    assert_eq!(
        preset::bytes_of(64 * 256, Precision::Nf4),
        64 * 256 / 2 + 256 + 4
    );
    assert_eq!(preset::bytes_of(3, Precision::Int4), 2);
    assert_eq!(spec::elements_in(9, Precision::Nvfp4), 16);
    assert_eq!(spec::elements_in(GB, Precision::Fp32), GB / 4);
}

#[test]
fn free_patterns() {
    assert_eq!(
        FreePattern::parse("every-other"),
        Ok(FreePattern::EveryOther)
    );
    assert_eq!(FreePattern::parse("LARGEST"), Ok(FreePattern::Largest));
    assert_eq!(FreePattern::parse("random:42"), Ok(FreePattern::Random(42)));
    assert_eq!(FreePattern::parse("none"), Ok(FreePattern::None));
    assert!(
        FreePattern::parse("random")
            .unwrap_err()
            .contains("random:42")
    );
    assert!(
        FreePattern::parse("random:x")
            .unwrap_err()
            .contains("whole number")
    );
    assert!(
        FreePattern::parse("half")
            .unwrap_err()
            .contains("every-other, largest")
    );
    for p in ["every-other", "largest", "random:7", "none"] {
        assert_eq!(FreePattern::parse(p).unwrap().name(), p);
    }

    let sizes = [5, 9, 9, 1, 7, 2];
    assert_eq!(FreePattern::EveryOther.select(&sizes), vec![1, 3, 5]);
    assert_eq!(FreePattern::Largest.select(&sizes), vec![1]);
    assert_eq!(FreePattern::None.select(&sizes), Vec::<usize>::new());
    assert_eq!(FreePattern::EveryOther.select(&[3]), Vec::<usize>::new());
    assert_eq!(FreePattern::Largest.select(&[]), Vec::<usize>::new());

    let many: Vec<u64> = (0..227).collect();
    let a = FreePattern::Random(7).select(&many);
    assert_eq!(a, FreePattern::Random(7).select(&many), "reproducible");
    assert_eq!(a.len(), 113);
    assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    assert!(a.iter().all(|&i| i < 227));
    assert_ne!(a, FreePattern::Random(8).select(&many));
    assert_ne!(a, FreePattern::EveryOther.select(&many));
    assert_eq!(FreePattern::Random(1).select(&[4]), vec![0], "at least one");
}

#[test]
fn bisection_finds_the_largest_multiple_of_the_resolution() {
    let res = 64 * MIB;
    for (limit, bound) in [
        (50 * GIB + 10 * MIB, 79 * GIB),
        (79 * GIB, 79 * GIB),
        (100 * GIB, 79 * GIB + 5),
        (63 * MIB, 79 * GIB),
        (64 * MIB, 79 * GIB),
        (0, 79 * GIB),
        (10 * GIB, 32 * MIB),
    ] {
        let mut tried = Vec::new();
        let s = largest_fitting(bound, res, |b| {
            tried.push(b);
            assert_eq!(b % res, 0);
            assert!(b <= bound && b > 0);
            Ok(b <= limit)
        })
        .unwrap();
        let want = limit.min(bound) / res * res;
        assert_eq!(s.largest_bytes, want, "limit {limit} bound {bound}");
        assert_eq!(s.attempts as usize, tried.len());
        let steps = (bound / res).max(1).ilog2() + 2;
        assert!(s.attempts <= steps, "{} attempts > {steps}", s.attempts);
        assert_eq!(s.reached_bound, bound >= res && limit >= bound / res * res);
    }
    // An error ends the search.
    let e = largest_fitting(GIB, MIB, |_| Err(Error::Interrupted));
    assert!(matches!(e, Err(Error::Interrupted)));
}

#[test]
fn arguments_choose_one_source_and_model_options_only_for_models() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        a: LayoutArgs,
    }
    let parse = |args: &[&str]| {
        T::try_parse_from(std::iter::once("layout").chain(args.iter().copied())).map(|t| t.a)
    };
    let a = parse(&[
        "--model",
        "llama-3.1-8b",
        "--precision",
        "fp8",
        "--context",
        "4096",
    ])
    .unwrap();
    let l = layout_from_args(&a).unwrap();
    assert_eq!(l.source, "model llama-3.1-8b at fp8-e4m3");
    assert_eq!(
        l.tensors
            .iter()
            .find(|t| t.name == "layer.0.kv_cache")
            .unwrap()
            .bytes,
        16 * MIB
    );
    assert_eq!(a.strategy, Strategy::Device);
    assert_eq!(a.free, FreePattern::EveryOther);
    assert_eq!(a.resolution, 64 * MIB);
    let e =
        layout_from_args(&parse(&["--preset", "13b-sim", "--context", "10"]).unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("--context applies to --model")),
        "{e}"
    );
    let e = layout_from_args(&parse(&[]).unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("layout needs tensors")),
        "{e}"
    );
    let e = layout_from_args(&parse(&["--model", "llama-9"]).unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("unknown model")),
        "{e}"
    );
    assert!(parse(&["--preset", "13b-sim", "--model", "llama-3.1-8b"]).is_err());
    assert!(parse(&["--model", "x", "--no-kv-cache", "--context", "5"]).is_err());
    assert!(parse(&["--preset", "13b-sim", "--dry-run", "--out", "x.json"]).is_err());
    assert!(parse(&["--preset", "13b-sim", "--free", "half"]).is_err());
    assert!(parse(&["--preset", "13b-sim", "--strategy", "cudaMalloc"]).is_err());
    assert!(parse(&["--preset", "13b-sim", "--resolution", "64M"]).is_err());
    let cfg = crate::test_support::fixture("plan/llama-3.1-8b.config.json");
    let c = layout_from_args(&parse(&["--config", cfg.to_str().unwrap()]).unwrap()).unwrap();
    let m = layout_from_args(&parse(&["--model", "llama-3.1-8b"]).unwrap()).unwrap();
    assert_eq!(
        c.tensors, m.tensors,
        "a config.json lays out like the table entry"
    );
}

mod rows;
