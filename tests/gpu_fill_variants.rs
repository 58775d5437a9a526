//! Measures the production `fill` kernel and its variants (kernels/fill_variants.cu) against
//! cuMemsetD32 on 4 GiB of device memory and prints the table; asserts only that every variant
//! that writes the pattern writes it correctly (timings are never pass/fail).

mod common;

use cumemlab::memory::{AllocOptions, Strategy, allocate};
use cumemlab::stats::Summary;
use cumemlab::units::{GIB, gbps};

#[test]
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
    let (k, s, p) = (&gpu.kernels, &gpu.stream, a.device_ptr());
    let runs = 15;
    fn med(runs: usize, bytes: u64, mut f: impl FnMut() -> f64) -> Summary {
        f();
        let v: Vec<f64> = (0..runs).map(|_| gbps(bytes, f())).collect();
        Summary::of(&v).unwrap()
    }
    let memset = med(runs, bytes, || k.memset_d32(s, p, bytes, 7).unwrap());
    let mut lines = vec![format!(
        "cuMemsetD32: {:.1} GB/s (CV {:.2}%)",
        memset.median,
        100.0 * memset.cv
    )];
    let prod = med(runs, bytes, || k.fill(s, p, bytes, 9).unwrap());
    lines.push(format!(
        "production fill (16x grid): {:.1} GB/s = {:.1}%",
        prod.median,
        100.0 * prod.median / memset.median
    ));
    for name in [
        "cml_fill",
        "cml_fillv_streaming",
        "cml_fillv_simple",
        "cml_fillv_blocked",
        "cml_fillv_const",
    ] {
        for factor in [1u32, 2, 4, 8, 16] {
            let seed = rand::random::<u32>();
            let g = med(runs, bytes, || {
                k.time_fill_variant(name, factor, s, p, bytes, seed)
                    .unwrap()
            });
            if name != "cml_fillv_const" {
                let (_, c) = k.check(s, p, bytes, seed).unwrap();
                assert_eq!(c.mismatches, 0, "{name} x{factor} wrote wrong data");
            }
            lines.push(format!(
                "{name} x{factor}: {:.1} GB/s = {:.1}% (CV {:.2}%)",
                g.median,
                100.0 * g.median / memset.median,
                100.0 * g.cv
            ));
        }
    }
    eprintln!(
        "fill variants on 4 GiB of {}:\n{}",
        gpu.name,
        lines.join("\n")
    );
}
