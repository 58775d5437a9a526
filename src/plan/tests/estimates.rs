//! The planner's figures: targets, verdicts, every workload worked out by hand, the capacity
//! matrix and the rendered report.

use super::*;

// ---------------------------------------------------------------- targets and verdicts

#[test]
fn targets() {
    let gb10 = Target::named("gb10").unwrap();
    assert_eq!((gb10.bytes, gb10.unified), (119 * GIB, true));
    assert_eq!(gb10.budget_bytes(), 111 * GIB);
    assert_eq!(Target::named("H100-80GB").unwrap().bytes, 80 * GB);
    assert_eq!(Target::named("h200").unwrap().bytes, 141 * GB);
    assert_eq!(Target::named("rtx4090").unwrap().bytes, 24 * GB);
    assert_eq!(Target::named("rtx5090").unwrap().bytes, 32 * GB);
    assert_eq!(Target::named("h100-80gb").unwrap().budget_bytes(), 80 * GB);
    assert!(Target::named("a100").is_none());
    let sized = Target::parse("96GiB").unwrap();
    assert_eq!((sized.bytes, sized.unified), (96 * GIB, false));
    let amb = Target::parse("80G").unwrap_err().to_string();
    assert!(amb.contains("80GB") && amb.contains("80GiB"), "{amb}");
    let unknown = Target::parse("a100").unwrap_err().to_string();
    assert!(unknown.contains("gb10") && unknown.contains("h100-80gb"));
}

#[test]
fn verdict_thresholds() {
    assert_eq!(Verdict::of(90, 100), Verdict::Fits);
    assert_eq!(Verdict::of(91, 100), Verdict::Tight);
    assert_eq!(Verdict::of(100, 100), Verdict::Tight);
    assert_eq!(Verdict::of(101, 100), Verdict::DoesNotFit);
}

#[test]
fn largest_search() {
    assert_eq!(
        largest(1000, Limit::SearchCap, |v| v <= 377),
        Some(LargestFit {
            value: 377,
            limited_by: Limit::Memory
        })
    );
    assert_eq!(
        largest(1000, Limit::ModelMaximum, |_| true),
        Some(LargestFit {
            value: 1000,
            limited_by: Limit::ModelMaximum
        })
    );
    assert_eq!(largest(1000, Limit::SearchCap, |_| false), None);
}

// ---------------------------------------------------------------- whole plans

/// Llama 3.1 70B, fp16 weights, fp16 KV, 8k context, batch 1:
/// weights 70,553,706,496 x 2 = 141,107,412,992
/// KV 2 x 80 x 8 x 128 x 8192 x 2 = 2,684,354,560
/// workspace 8192 x (2 x 8192 + 2 x 28672) x 2 + 128256 x 4 = 1,208,472,576
/// reserve 2,000,000,000; total 147,000,240,128 B.
#[test]
fn llama_70b_fp16_inference_on_gb10_and_h100() {
    for (target, budget) in [("gb10", 111 * GIB), ("h100-80gb", 80 * GB)] {
        let r = plan(&PlanOptions {
            precisions: vec![Precision::Fp16],
            workload: Workload::Inference,
            ..opts_model("llama-3.1-70b", target)
        })
        .unwrap();
        let e = &r.estimates[0];
        assert_eq!(line(e, "weights").bytes, 141_107_412_992);
        assert_eq!(line(e, "KV cache").bytes, 2_684_354_560);
        assert_eq!(line(e, "activation workspace").bytes, 1_208_472_576);
        assert_eq!(line(e, "CUDA context").bytes, 2_000_000_000);
        assert_eq!(e.total_bytes, 147_000_240_128);
        assert_eq!(e.budget_bytes, budget);
        assert_eq!(e.verdict, Verdict::DoesNotFit);
        // The weights alone exceed both budgets: nothing fits.
        assert_eq!(e.largest_context, None);
        assert_eq!(e.largest_batch, None);
    }
}

#[test]
fn llama_70b_fp8_on_gb10_largest_context() {
    let r = plan(&PlanOptions {
        precisions: vec![Precision::Fp8E4m3],
        workload: Workload::Inference,
        ..opts_model("llama-3.1-70b", "gb10")
    })
    .unwrap();
    let e = &r.estimates[0];
    // 70,553,706,496 + 2,684,354,560 + 1,208,472,576 + 2e9 = 76,446,533,632 B; 64.1% of 111 GiB.
    assert_eq!(e.total_bytes, 76_446_533_632);
    assert_eq!(e.verdict, Verdict::Fits);
    // Per token: KV 2 x 80 x 8 x 128 x 2 = 327,680 B + workspace 73,728 x 2 = 147,456 B.
    // Fixed: weights + reserve + logits 513,024 B. Largest context = floor(free / 475,136).
    let fixed = 70_553_706_496u64 + 2_000_000_000 + 513_024;
    let expect = (111 * GIB - fixed) / 475_136;
    assert_eq!(
        e.largest_context,
        Some(LargestFit {
            value: expect,
            limited_by: Limit::Memory
        })
    );
    assert_eq!(expect, 98_142);
    // Largest batch at 8k: per sequence 8192 x 475,136 + 513,024 B on top of weights + reserve.
    let per_seq = 8192 * 475_136 + 513_024;
    let expect_b = (111 * GIB - 70_553_706_496 - 2_000_000_000) / per_seq;
    assert_eq!(e.largest_batch.unwrap().value, expect_b);
    // On an 80 GB H100 the same plan is 95.6% of the budget: tight, up to 15,670 tokens.
    let h = plan(&PlanOptions {
        precisions: vec![Precision::Fp8E4m3],
        workload: Workload::Inference,
        ..opts_model("llama-3.1-70b", "h100-80gb")
    })
    .unwrap();
    let e = &h.estimates[0];
    assert_eq!(e.verdict, Verdict::Tight);
    assert_eq!(
        e.largest_context.unwrap().value,
        (80 * GB - fixed) / 475_136
    );
    assert_eq!(e.largest_context.unwrap().value, 15_670);
}

#[test]
fn gemma_context_capped_at_model_maximum() {
    let r = plan(&PlanOptions {
        precisions: vec![Precision::Bf16],
        workload: Workload::Inference,
        ..opts_model("gemma-2-9b", "h100-80gb")
    })
    .unwrap();
    let e = &r.estimates[0];
    assert_eq!(
        e.largest_context,
        Some(LargestFit {
            value: 8192,
            limited_by: Limit::ModelMaximum
        })
    );
    assert!(r.notes.iter().any(|n| n.contains("sliding window")));
}

/// Llama 3.1 8B, bf16 mixed precision, AdamW, 8k context, batch 1 (P = 8,030,261,248):
/// states 16 x P = 128,484,179,968; activations with checkpointing
/// 2 x 8192 x 4096 x 32 = 2,147,483,648 + 8192 x (17 x 4096 + 8 x 14336) = 1,509,949,440;
/// without: 32 x 1,509,949,440 = 48,318,382,080; logits 8192 x 128256 x 6 = 6,304,038,912.
#[test]
fn full_finetune_llama_8b_by_hand() {
    let r = plan(&PlanOptions {
        precisions: vec![Precision::Bf16],
        workload: Workload::FullFinetune,
        ..opts_model("llama-3.1-8b", "h200")
    })
    .unwrap();
    assert_eq!(r.estimates.len(), 2);
    let on = &r.estimates[0];
    let off = &r.estimates[1];
    assert_eq!(on.gradient_checkpointing, Some(true));
    assert_eq!(off.gradient_checkpointing, Some(false));
    let states: u64 = ["weights", "fp32 master", "gradients", "AdamW"]
        .iter()
        .map(|p| line(on, p).bytes)
        .sum();
    assert_eq!(states, 16 * 8_030_261_248);
    assert_eq!(line(on, "fp32 master").bytes, 4 * 8_030_261_248);
    assert_eq!(line(on, "activations").bytes, 2_147_483_648 + 1_509_949_440);
    assert_eq!(line(off, "activations").bytes, 48_318_382_080);
    assert_eq!(line(on, "logits").bytes, 6_304_038_912);
    assert_eq!(
        on.total_bytes,
        128_484_179_968 + 3_657_433_088 + 6_304_038_912 + 2_000_000_000
    );
    // h200: 141 GB budget; 140.45 GB is above 90% of it.
    assert_eq!(on.verdict, Verdict::Tight);
    assert_eq!(off.verdict, Verdict::DoesNotFit);
    // fp32 training has no master copy and doubles activations.
    let r32 = plan(&PlanOptions {
        precisions: vec![Precision::Fp32],
        workload: Workload::FullFinetune,
        gradient_checkpointing: Some(false),
        ..opts_model("llama-3.1-8b", "h200")
    })
    .unwrap();
    let e = &r32.estimates[0];
    assert!(e.lines.iter().all(|l| !l.label.starts_with("fp32 master")));
    assert_eq!(line(e, "activations").bytes, 2 * 48_318_382_080);
}

#[test]
fn lora_and_qlora_llama_8b_by_hand() {
    let r = plan(&PlanOptions {
        gradient_checkpointing: Some(true),
        ..opts_model("llama-3.1-8b", "rtx4090")
    })
    .unwrap();
    let lora = r
        .estimates
        .iter()
        .find(|e| e.workload == Workload::Lora)
        .unwrap();
    // Rank 16 on q,k,v,o,gate,up,down: per layer (4096+4096) + 2 x (4096+1024) + (4096+4096)
    // + 3 x (4096+14336) = 81,920; x 16 x 32 layers = 41,943,040 (PEFT prints the same).
    let adapter = 41_943_040u64;
    assert_eq!(line(lora, "LoRA adapters").bytes, 4 * adapter);
    assert_eq!(line(lora, "adapter gradients").bytes, 4 * adapter);
    assert_eq!(line(lora, "adapter AdamW").bytes, 8 * adapter);
    assert_eq!(line(lora, "frozen base").bytes, 2 * 8_030_261_248);
    let q = r
        .estimates
        .iter()
        .find(|e| e.workload == Workload::Qlora)
        .unwrap();
    // Embeddings + lm head + norms = 2 x 525,336,576 + 65 x 4096 = 1,050,939,392 in bf16;
    // the other 6,979,321,856 in nf4 at 2113/4096 B = 3,600,416,768 B.
    assert_eq!(line(q, "frozen base linear").bytes, 3_600_416_768);
    assert_eq!(line(q, "embeddings, lm head").bytes, 2 * 1_050_939_392);
    // LoRA: 16.06 GB base + 0.67 GB adapters + 3.66 GB activations + 6.30 GB logits + 2 GB
    // = 28.69 GB, over a 24 GB card; QLoRA: 3.60 + 2.10 + 0.67 + 3.66 + 6.30 + 2 = 18.33 GB.
    assert_eq!(lora.total_bytes, 28_693_083_136);
    assert_eq!(lora.verdict, Verdict::DoesNotFit);
    assert_eq!(q.total_bytes, 18_334_856_192);
    assert_eq!(q.verdict, Verdict::Fits);
}

#[test]
fn all_workloads_and_both_checkpointing_modes() {
    let r = plan(&opts_model("mixtral-8x7b", "h100-80gb")).unwrap();
    // 11 inference formats + fp32 and bf16 full fine-tuning x 2 + LoRA x 2 + QLoRA x 2.
    assert_eq!(r.estimates.len(), 11 + 4 + 2 + 2);
    assert_eq!(r.precisions.len(), 11);
    assert!(r.notes.iter().any(|n| n.contains("mixture of experts")));
    // Every line's formula ends with its own GB figure.
    for e in &r.estimates {
        let sum: u64 = e.lines.iter().map(|l| l.bytes).sum();
        assert_eq!(sum, e.total_bytes);
        for l in &e.lines {
            assert!(
                l.formula
                    .ends_with(&format!("= {:.3} GB", l.bytes as f64 / 1e9)),
                "{}",
                l.formula
            );
        }
    }
    // Mixtral at bf16 (93.4 GB of weights) does not fit 80 GB; at fp8 it does.
    let find = |p: Precision| {
        r.estimates
            .iter()
            .find(|e| e.workload == Workload::Inference && e.precision == p)
            .unwrap()
    };
    assert_eq!(find(Precision::Bf16).verdict, Verdict::DoesNotFit);
    assert_ne!(find(Precision::Fp8E4m3).verdict, Verdict::DoesNotFit);
}

// ---------------------------------------------------------------- capacity matrix

#[test]
fn capacity_matrix_orders_and_bounds() {
    let c = capacity_matrix(&Target::named("h100-80gb").unwrap());
    assert_eq!(c.rows.len(), 5);
    let b = |w: Workload, p: Precision| {
        c.rows
            .iter()
            .find(|r| r.workload == w && r.precision == p)
            .unwrap()
            .max_params_billions
    };
    let full = b(Workload::FullFinetune, Precision::Bf16);
    let qlora = b(Workload::Qlora, Precision::Nf4);
    let fp16 = b(Workload::Inference, Precision::Fp16);
    let fp8 = b(Workload::Inference, Precision::Fp8E4m3);
    let nvfp4 = b(Workload::Inference, Precision::Nvfp4);
    // 80 GB less 2 GB reserve, a few GB of KV and workspace: fp16 weights below 39B,
    // fp8 below 78B, nvfp4 below 138.7B; full fine-tuning at 16 B/param below 4.9B.
    assert!(fp16 > 35.0 && fp16 < 39.0, "{fp16}");
    assert!(fp8 > 1.8 * fp16 && fp8 < 78.0, "{fp8}");
    assert!(nvfp4 > 3.0 * fp16 && nvfp4 < 138.7, "{nvfp4}");
    assert!(full > 3.5 && full < 4.9, "{full}");
    assert!(qlora > full * 5.0 && qlora < nvfp4, "{qlora}");
    // Each figure fits, and 0.05B more does not.
    for row in &c.rows {
        assert!(row.total_bytes <= c.budget_bytes);
        let kind = match (row.workload, row.precision) {
            (Workload::FullFinetune, p) => Kind::FullFinetune {
                precision: p,
                checkpointing: true,
            },
            (Workload::Qlora, _) => Kind::Qlora {
                checkpointing: true,
            },
            (_, p) => Kind::Inference {
                weights: p,
                kv: Precision::Fp16,
            },
        };
        let more = row.max_params + 0.05e9;
        let a = reference_shape(more);
        let total = Scenario {
            arch: &a,
            params: more,
            kind,
            lora_rank: CAPACITY_LORA_RANK,
        }
        .total_bytes(CAPACITY_CONTEXT, CAPACITY_BATCH);
        assert!(total > c.budget_bytes, "{}", row.label);
    }
    // A target too small for anything reports zero.
    let tiny = capacity_matrix(&Target {
        name: "tiny".into(),
        bytes: GB,
        unified: false,
    });
    assert!(tiny.rows.iter().all(|r| r.max_params == 0.0));
}

// ---------------------------------------------------------------- output

#[test]
fn report_serializes_and_renders() {
    let r = plan(&PlanOptions {
        precisions: vec![Precision::Fp16, Precision::Nvfp4],
        ..opts_model("llama-3.1-70b", "gb10")
    })
    .unwrap();
    let json = serde_json::to_string_pretty(&r).unwrap();
    let back: PlanReport = serde_json::from_str(&json).unwrap();
    // Whole numbers and strings survive exactly (floats may differ in the last bit).
    assert_eq!(back.model.architecture, r.model.architecture);
    assert_eq!(back.target.target, r.target.target);
    assert_eq!(back.settings, r.settings);
    assert_eq!(back.estimates.len(), r.estimates.len());
    for (b, e) in back.estimates.iter().zip(&r.estimates) {
        assert_eq!(
            (b.total_bytes, b.verdict, b.largest_context, b.largest_batch),
            (e.total_bytes, e.verdict, e.largest_context, e.largest_batch)
        );
        for (bl, el) in b.lines.iter().zip(&e.lines) {
            assert_eq!(
                (&bl.label, bl.bytes, &bl.formula),
                (&el.label, el.bytes, &el.formula)
            );
            assert!((bl.gb - el.gb).abs() < 1e-9);
        }
    }
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["estimates"][0]["lines"][0]["bytes"].as_u64(),
        Some(141_107_412_992)
    );
    assert_eq!(v["estimates"][0]["verdict"], "does_not_fit");
    assert_eq!(v["estimates"][0]["precision"], "fp16");

    let text = render_text(&r, true);
    for needle in [
        "Llama 3.1 70B",
        "| item",
        "% budget",
        "weights (GB)",
        "largest model (B params)",
        "does not fit",
        "2 (K,V) x 80 layers x 8 kv_heads x 128 head_dim x 8192 ctx x 1 batch x 2 B (fp16) = 2.684 GB",
        "147.000",
        "Korthikanti",
        "GB = 1e9",
    ] {
        // Prose lines are wrapped at 80 columns: compare with the line breaks undone.
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(needle), "render lacks `{needle}`:\n{text}");
    }
}
