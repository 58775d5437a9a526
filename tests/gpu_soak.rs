//! Leak test: 1000 rounds of allocate/touch/free at 64 MiB for every supported strategy, with
//! host RSS and cuMemGetInfo free compared before and after (they must be back within 64 MiB).
//! Runs only on a GPU host; `CUMEMLAB_SOAK_ROUNDS` lowers the count for quick runs.

mod common;

use cumemlab::host::rss_bytes;
use cumemlab::memory::{AllocOptions, Strategy, allocate};
use cumemlab::units::MIB;

#[test]
fn thousand_rounds_per_strategy_leave_nothing_behind() {
    let Some(gpu) = common::gpu_or_skip("thousand_rounds_per_strategy_leave_nothing_behind") else {
        return;
    };
    let rounds: u32 = std::env::var("CUMEMLAB_SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let bytes = 64 * MIB;
    let slack = (64 * MIB) as i64;
    for st in Strategy::all() {
        if st.supported(&gpu.attrs).is_err() {
            continue;
        }
        // One warm-up round: the first allocation of a kind sets up driver state that stays.
        let a = allocate(&gpu.ctx, &gpu.stream, st, bytes, &AllocOptions::default()).unwrap();
        a.free().unwrap();
        let _ = cumemlab::memory::trim_default_pool(&gpu.ctx);
        let (free0, rss0) = (gpu.free_bytes().unwrap(), rss_bytes());
        let t = std::time::Instant::now();
        for i in 0..rounds {
            let a = allocate(&gpu.ctx, &gpu.stream, st, bytes, &AllocOptions::default()).unwrap();
            gpu.kernels.touch(&gpu.stream, a.span(), 65536, i).unwrap();
            a.free().unwrap();
        }
        let _ = cumemlab::memory::trim_default_pool(&gpu.ctx);
        let (free1, rss1) = (gpu.free_bytes().unwrap(), rss_bytes());
        eprintln!(
            "soak {st}: {rounds} rounds of 64 MiB in {:.1} s; cuMemGetInfo free {free0} -> {free1}, RSS {rss0} -> {rss1}",
            t.elapsed().as_secs_f64()
        );
        assert!(
            (free1 as i64 - free0 as i64).abs() < slack,
            "{st}: device free {free0} -> {free1}"
        );
        assert!(
            (rss1 as i64 - rss0 as i64).abs() < slack,
            "{st}: RSS {rss0} -> {rss1}"
        );
        assert!(cumemlab::driver::take_drop_failures().is_empty());
    }
}
