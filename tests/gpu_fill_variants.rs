//! The production `fill` kernel at the sizes where its tiles, vectors and tail meet (every byte
//! written, nothing past the end), with one block per tile and with a grid too small for that (the
//! tile loop); and, out of the default test run (`#[ignore]`), the benchmark of `fill` and its
//! variants (kernels/test/fill_variants.cu) against cuMemsetD32 on 4 GiB, each over a poisoned
//! buffer and verified (timings are printed, never pass/fail): `cargo test --release --test
//! gpu_fill_variants -- --ignored --nocapture` on a GPU host. scripts/fill-bench.cu sweeps more
//! shapes and sizes. The variants are not in the production fatbin: build.rs compiles
//! kernels/test/ into a fatbin of its own, which this test embeds and loads.

mod common;

use cumemlab::driver::{FillShape, Module};
use cumemlab::memory::{AllocOptions, Strategy, allocate};
use cumemlab::stats::Summary;
use cumemlab::units::{GIB, gbps};

/// The kernels only tests and benchmarks use (kernels/test/*.cu).
const TEST_FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels.fatbin"));

#[test]
fn fill_writes_every_byte_and_nothing_past_the_end() {
    let Some(gpu) = common::gpu_or_skip("fill_writes_every_byte_and_nothing_past_the_end") else {
        return;
    };
    let (k, s) = (&gpu.kernels, &gpu.stream);
    let guard = 4096u64;
    let (_, block) = k.fill_launch(1);
    let tile = 2 * 16 * u64::from(block); // bytes per tile of the production kernel
    let sizes = [
        1,
        15,
        16,
        17,
        tile - 16,
        tile - 1,
        tile,
        tile + 1,
        tile + 16,
        3 * tile + 48 + 7,
        (64 << 20) + 4099,
    ];
    let biggest = *sizes.iter().max().unwrap();
    let a = allocate(
        &gpu.ctx,
        s,
        Strategy::Device,
        biggest + guard,
        &AllocOptions::default(),
    )
    .unwrap();
    let whole = a.span();
    let shapes = [
        None,
        // A grid far smaller than the tile count: the kernel's tile loop covers the rest.
        Some(FillShape::Occupancy { block, factor: 1 }),
    ];
    for bytes in sizes {
        for shape in shapes {
            let seed = rand::random::<u32>();
            let (p, past) = whole.split_at(bytes).unwrap();
            k.memset_d8(whole.prefix(bytes + guard).unwrap(), 0xA5)
                .unwrap();
            match shape {
                None => k.fill(s, p, seed).unwrap(),
                Some(sh) => k
                    .time_fill_variant(k.module(), "cml_fill", sh, s, p, seed)
                    .unwrap(),
            };
            let (_, c) = k.check(s, p, seed).unwrap();
            assert_eq!(c.mismatches, 0, "{bytes} bytes, {shape:?}: {c:?}");
            let mut after = vec![0u8; guard as usize];
            k.download(past, &mut after).unwrap();
            assert!(
                after.iter().all(|&b| b == 0xA5),
                "{bytes} bytes, {shape:?}: fill wrote past the end"
            );
        }
    }
}

#[test]
fn variants_load_apart_and_only_fill_shaped_kernels_launch() {
    let Some(gpu) = common::gpu_or_skip("variants_load_apart_and_only_fill_shaped_kernels_launch")
    else {
        return;
    };
    let (k, s) = (&gpu.kernels, &gpu.stream);
    let variants = Module::load(&gpu.ctx, TEST_FATBIN).unwrap();
    let a = allocate(
        &gpu.ctx,
        s,
        Strategy::Device,
        (1 << 20) + 7,
        &AllocOptions::default(),
    )
    .unwrap();
    let span = a.span();
    let shape = FillShape::Occupancy {
        block: 256,
        factor: 1,
    };
    // The production module does not have the variants; the test module does, and they write the
    // pattern over every byte.
    let e = k
        .time_fill_variant(k.module(), "cml_fillv_simple", shape, s, span, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cuModuleGetFunction failed"), "{e}");
    k.memset_d8(span, 0xA5).unwrap();
    k.time_fill_variant(&variants, "cml_fillv_tiles4", shape, s, span, 77)
        .unwrap();
    let (_, c) = k.check(s, span, 77).unwrap();
    assert_eq!(c.mismatches, 0, "{c:?}");
    // A kernel that is not fill-shaped is refused before it is launched: by name, and by its
    // parameters (cuFuncGetParamInfo: CUDA 12.4 and newer drivers).
    let e = k
        .time_fill_variant(k.module(), "cml_check", shape, s, span, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a fill-shaped kernel"), "{e}");
    let e = k
        .time_fill_variant(&variants, "cml_fillv_bad_params", shape, s, span, 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("takes parameters of [8, 8] bytes, not the [8, 8, 4]"),
        "{e}"
    );
}

#[test]
#[ignore = "a benchmark: run with --ignored on a GPU host"]
fn fill_variants_against_memset() {
    let Some(gpu) = common::gpu_or_skip("fill_variants_against_memset") else {
        return;
    };
    let bytes = 4 * GIB;
    let a = allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        bytes,
        &AllocOptions::default(),
    )
    .unwrap();
    let (k, s, p) = (&gpu.kernels, &gpu.stream, a.span());
    let variants = Module::load(&gpu.ctx, TEST_FATBIN).unwrap();
    let runs = 15;
    fn med(runs: usize, bytes: u64, mut f: impl FnMut() -> f64) -> Summary {
        f();
        let v: Vec<f64> = (0..runs).map(|_| gbps(bytes, f())).collect();
        Summary::of(&v).unwrap()
    }
    let check = |seed: u32, what: &str| {
        let (_, c) = k.check(s, p, seed).unwrap();
        assert_eq!(c.mismatches, 0, "{what} wrote wrong data");
    };
    let memset = med(runs, bytes, || k.memset_d32(s, p, 7).unwrap());
    let (grid, block) = k.fill_launch(bytes);
    let mut lines = vec![format!(
        "cuMemsetD32: {:.1} GB/s (CV {:.2}%)",
        memset.median,
        100.0 * memset.cv
    )];
    k.memset_d8(p, 0xA5).unwrap();
    let prod = med(runs, bytes, || k.fill(s, p, 9).unwrap());
    check(9, "production fill");
    lines.push(format!(
        "production fill ({grid} blocks of {block}): {:.1} GB/s = {:.1}% (CV {:.2}%)",
        prod.median,
        100.0 * prod.median / memset.median,
        100.0 * prod.cv
    ));
    let tiles = |block, vectors_per_thread| FillShape::OneBlockPerTile {
        block,
        vectors_per_thread,
    };
    let occ = |block, factor| FillShape::Occupancy { block, factor };
    let mut cases = vec![];
    for b in [128u32, 256, 512, 1024] {
        cases.push(("cml_fill", tiles(b, 2)));
        cases.push(("cml_fillv_tiles1", tiles(b, 1)));
        cases.push(("cml_fillv_tiles4", tiles(b, 4)));
    }
    for f in [1u32, 4, 16, 64] {
        for name in [
            "cml_fillv_gridstride",
            "cml_fillv_streaming",
            "cml_fillv_simple",
            "cml_fillv_blocked",
        ] {
            cases.push((name, occ(256, f)));
        }
        cases.push(("cml_fillv_gridstride", occ(1024, f)));
    }
    for (name, shape) in cases {
        let seed = rand::random::<u32>();
        k.memset_d8(p, 0xA5).unwrap();
        let module = if name == "cml_fill" {
            k.module()
        } else {
            &variants
        };
        let g = med(runs, bytes, || {
            k.time_fill_variant(module, name, shape, s, p, seed)
                .unwrap()
        });
        check(seed, &format!("{name} {shape:?}"));
        lines.push(format!(
            "{name} {shape:?}: {:.1} GB/s = {:.1}% (CV {:.2}%)",
            g.median,
            100.0 * g.median / memset.median,
            100.0 * g.cv
        ));
    }
    eprintln!(
        "fill variants on 4 GiB of {}:\n{}",
        gpu.name,
        lines.join("\n")
    );
}
