//! Unit tests of the layout's pure parts: preset arithmetic against the planner, the free
//! patterns, the bisection, the totals, and the tables and findings from synthetic rows.

use super::render::overhead_reason;
use super::*;
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

fn snap(device_free: u64, mem_available: u64) -> Snapshot {
    Snapshot {
        device_free,
        mem_available,
        ..Default::default()
    }
}

#[test]
fn totals_arithmetic() {
    let req = [3 * MIB, KIB, 4 * MIB];
    let t = Totals::compute(
        &req,
        &req,
        &snap(10 * GIB, 100 * GIB),
        &snap(10 * GIB - 10 * MIB, 100 * GIB - MIB),
    );
    assert_eq!(t.tensors, 3);
    assert_eq!(t.requested_bytes, 7 * MIB + KIB);
    assert_eq!(t.device_free_drop_bytes, (10 * MIB) as i64);
    assert_eq!(t.mem_available_drop_bytes, MIB as i64);
    assert_eq!(t.overhead_bytes, (3 * MIB - KIB) as i64);
    assert!(
        (t.overhead_pct - 100.0 * (3 * MIB - KIB) as f64 / (7 * MIB + KIB) as f64).abs() < 1e-9
    );
    assert_eq!(t.rounding_2mib_bytes, MIB + (2 * MIB - KIB));
    // A row round-trips.
    assert_eq!(Totals::from_row(&t.row(0, Strategy::Device)), t);
}

/// The rows of a small run, as `run` writes them.
fn synthetic(n: usize) -> Vec<LayoutRow> {
    let st = Strategy::Device;
    let mut rows = vec![LayoutRow::snapshot(
        0,
        st,
        moment::BASELINE,
        &snap(80 * GIB, 500 * GIB),
    )];
    let sizes: Vec<u64> = (0..n as u64).map(|i| (i % 3 + 1) * 256 * MIB).collect();
    for (i, &b) in sizes.iter().enumerate() {
        rows.push(LayoutRow {
            index: Some(i as u64),
            name: Some(format!("layer.{i}.w")),
            component: Some(if i % 2 == 0 { "w".into() } else { "v".into() }),
            dtype: Some("bf16".into()),
            elements: Some(b / 2),
            bytes: b,
            mapped_bytes: Some(b),
            alloc_ms: Some(0.1 + i as f64 / 100.0),
            ..LayoutRow::new(0, st, phase::ALLOC)
        });
    }
    let total: u64 = sizes.iter().sum();
    let after = snap(80 * GIB - total - 4 * MIB, 500 * GIB - MIB);
    rows.push(LayoutRow::snapshot(0, st, moment::AFTER_ALLOC, &after));
    rows.push(Totals::compute(&sizes, &sizes, &snap(80 * GIB, 500 * GIB), &after).row(0, st));
    let pick = FreePattern::EveryOther.select(&sizes);
    for &i in &pick {
        rows.push(LayoutRow {
            index: Some(i as u64),
            name: Some(format!("layer.{i}.w")),
            bytes: sizes[i],
            free_ms: Some(0.05),
            ..LayoutRow::new(0, st, phase::FREE)
        });
    }
    rows.push(
        Fragmentation {
            pattern: "every-other".into(),
            freed_tensors: pick.len() as u64,
            freed_bytes: pick.iter().map(|&i| sizes[i]).sum(),
            largest_freed_bytes: 768 * MIB,
            device_free_bytes: 70 * GIB,
            mem_available_bytes: 499 * GIB,
            free_total_bytes: 70 * GIB,
            free_total_of: "cuMemGetInfo free".into(),
            bound_bytes: 70 * GIB,
            resolution_bytes: 64 * MIB,
            largest_bytes: 69 * GIB,
            attempts: 11,
            reached_bound: false,
        }
        .row(0, st),
    );
    for i in (0..n).filter(|i| !pick.contains(i)) {
        rows.push(LayoutRow {
            index: Some(i as u64),
            name: Some(format!("layer.{i}.w")),
            bytes: sizes[i],
            free_ms: Some(0.05),
            ..LayoutRow::new(0, st, phase::CLEANUP)
        });
    }
    rows.push(LayoutRow::snapshot(
        0,
        st,
        moment::AFTER_CLEANUP,
        &snap(80 * GIB - 2 * MIB, 500 * GIB),
    ));
    rows
}

#[test]
fn summary_tables_and_findings_from_rows() {
    let rows = synthetic(40);
    let s = summarize(&rows);
    assert_eq!(s.allocated, 40);
    assert_eq!(s.freed, 40);
    let t = s.totals.unwrap();
    assert_eq!(t.overhead_bytes, (4 * MIB) as i64);
    let f = s.fragmentation.clone().unwrap();
    assert_eq!((f.largest_bytes, f.freed_tensors), (69 * GIB, 20));
    assert!((f.largest_pct_of_free() - 100.0 * 69.0 / 70.0).abs() < 1e-9);
    assert_eq!(s.residual_bytes, Some((2 * MIB) as i64));

    let doc = LayoutDoc {
        envelope: crate::report::envelope::Envelope::start("layout").finish(false),
        environment: Environment::host_only("test".into()),
        notes: {
            let mut n = vec!["synthetic layout".to_string()];
            n.extend(findings(&rows));
            n
        },
        rows: rows.clone(),
        skipped: vec!["tensor 40 `x` (1 GiB): refused: reasons".into()],
        error: None,
    };
    let text = render(&doc);
    for want in [
        "synthetic layout",
        "layer.0.w",
        "layer.9.w",
        "25 more",
        "layer.39.w",
        "by component",
        "| w ",
        "totals",
        "requested (40 tensors)",
        "drop in cuMemGetInfo free",
        "fragmentation",
        "freed by `every-other` (20 tensors)",
        "98.6% of free",
        "after cleanup: cuMemGetInfo free is 2 MiB below the baseline",
        "What this shows:",
        "larger than the largest tensor freed",
        "Skipped:",
    ] {
        assert!(text.contains(want), "render lacks {want:?}:\n{text}");
    }
    assert!(
        !text.contains("layer.20.w"),
        "the middle of a long list is elided"
    );
    // Each finding once, under "What this shows", not among the notes at the top.
    let f = findings(&rows);
    assert!(
        f.iter().any(|s| s.contains("overhead of +4.0 MiB")),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|s| s.contains("did not come out of host memory")),
        "{f:?}"
    );
    for s in &f {
        assert_eq!(text.matches(s.as_str()).count(), 1, "{s}");
    }
    // One row type to JSON and CSV.
    let csv = String::from_utf8(crate::report::sink::to_csv(&rows).unwrap()).unwrap();
    assert!(csv.starts_with("device,strategy,phase,index,name,component,dtype,elements,bytes,"));
    assert_eq!(csv.lines().count(), rows.len() + 1);
    let back: Vec<LayoutRow> = serde_json::from_slice(&to_json(&rows).unwrap()).unwrap();
    assert_eq!(back.len(), rows.len());
    assert_eq!(summarize(&back), s, "the summary reads back from JSON");
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

#[test]
fn the_overhead_is_explained_against_2mib_rounding() {
    let t = |drop: i64, rounding: u64| {
        let requested = 10 * GIB;
        Totals {
            tensors: 100,
            requested_bytes: requested,
            mapped_bytes: requested,
            device_free_drop_bytes: drop,
            mem_available_drop_bytes: 0,
            overhead_bytes: drop - requested as i64,
            overhead_pct: 0.0,
            rounding_2mib_bytes: rounding,
        }
    };
    let g = (10 * GIB) as i64;
    let m = MIB as i64;
    let why = |d, r| overhead_reason(&t(d, r)).unwrap_or_default();
    assert!(
        why(g - m / 2, 100 * MIB).contains("less than requested"),
        "{}",
        why(g - m / 2, 100 * MIB)
    );
    assert!(why(g + 100 * m, 100 * MIB).contains("matches rounding"));
    assert!(why(g + 101 * m, 100 * MIB).contains("matches rounding"));
    assert!(why(g + 20 * m, 100 * MIB).contains("more tightly than whole 2 MiB pages"));
    assert!(why(g + 300 * m, 100 * MIB).contains("exceeds 2 MiB rounding by 200.0 MiB"));
    // Host memory or untouched managed memory: cuMemGetInfo did not move, nothing to explain.
    assert_eq!(overhead_reason(&t(0, 100 * MIB)), None);
}

#[test]
fn untouched_managed_memory_is_not_called_device_overhead() {
    let mut rows = synthetic(6);
    for r in &mut rows {
        r.strategy = "managed".into();
        if r.phase == phase::TOTAL {
            r.device_free_drop_bytes = Some(0);
            r.overhead_bytes = Some(-(r.bytes as i64));
        }
        if r.phase == phase::FRAGMENTATION {
            r.reached_bound = Some(true);
            r.bytes = r.bound_bytes.unwrap() / (64 * MIB) * (64 * MIB);
        }
    }
    let f = findings(&rows).join("\n");
    assert!(f.contains("do not sit in device memory (yet)"), "{f}");
    assert!(f.contains("run with --touch"), "{f}");
    assert!(f.contains("reserve address space, not memory"), "{f}");
    assert!(!f.contains("an overhead of"), "{f}");
    assert!(!f.contains("nothing was lost to fragmentation"), "{f}");
}
