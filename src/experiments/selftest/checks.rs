//! The kernel checks of `selftest`: every kernel run on fresh random data over a poisoned buffer
//! and its result verified against the host's own computation. Imports the kernels through
//! [`Gpu`] and the host-side pattern functions of the driver layer.

use rand::RngExt;

use super::{KernelCheck, KernelTest};
use crate::driver::{DevicePtr, host_pattern_byte, host_pattern_sum, host_pattern_word};
use crate::error::Result;
use crate::experiments::Gpu;

/// Verifies every kernel on `ptr` (`bytes` long) with a fresh seed; returns the checks.
pub fn verify_kernels(
    gpu: &Gpu,
    ptr: DevicePtr,
    bytes: u64,
    page: u64,
) -> Result<Vec<KernelCheck>> {
    let k = &gpu.kernels;
    let s = &gpu.stream;
    let dev = gpu.device.ordinal();
    let mut rng = rand::rng();
    let seed: u32 = rng.random();
    let mut out = Vec::new();
    let mut push = |kernel: KernelTest, passed: bool, detail: String| {
        out.push(KernelCheck {
            device: dev,
            kernel,
            bytes,
            passed,
            detail,
        });
    };

    // fill over a poisoned buffer, then check: every element written with the new seed.
    k.memset_d8(ptr, bytes, 0xA5)?;
    k.fill(s, ptr, bytes, seed)?;
    let (_, c) = k.check(s, ptr, bytes, seed)?;
    push(
        KernelTest::FillCheck,
        c.mismatches == 0,
        format!(
            "seed {seed:#010x}: {} mismatches after fill over 0xA5 poison",
            c.mismatches
        ),
    );

    // read: the sum of the pattern, computed independently on the host.
    let (_, sum) = k.read(s, ptr, bytes)?;
    let want = host_pattern_sum(bytes, seed);
    push(
        KernelTest::Read,
        sum == want,
        format!("sum {sum:#x}, host expects {want:#x}"),
    );

    // check catches a planted wrong element at a random word.
    let words = bytes / 4;
    let victim = rng.random_range(0..words.max(1));
    let mut word = [0u8; 4];
    k.download(ptr + victim * 4, &mut word)?;
    let planted = [!word[0], word[1], word[2], word[3]];
    k.upload(ptr + victim * 4, &planted)?;
    let (_, c) = k.check(s, ptr, bytes, seed)?;
    push(
        KernelTest::PlantedError,
        c.mismatches == 1 && c.first_bad_offset == Some(victim * 4),
        format!(
            "planted at byte {}: check found {} at {:?}",
            victim * 4,
            c.mismatches,
            c.first_bad_offset
        ),
    );

    // touch writes one word per page (over freshly filled data: the planted error is gone):
    // read back one word per page and compare the sum.
    k.fill(s, ptr, bytes, seed)?;
    let value: u32 = rng.random_range(1..u32::MAX);
    k.touch(s, ptr, bytes, page, value)?;
    let (_, tsum) = k.touch_read(s, ptr, bytes, page)?;
    let pages = bytes.div_ceil(page);
    let last_partial = bytes - (pages - 1) * page < 4;
    let expect = if last_partial {
        (pages - 1) * u64::from(value) + u64::from(value as u8)
    } else {
        pages * u64::from(value)
    };
    push(
        KernelTest::Touch,
        tsum == expect,
        format!("{pages} pages of {page} B: sum {tsum}, expected {expect}"),
    );
    // And touch changed exactly the elements it should have: count them on the host.
    let (_, c) = k.check(s, ptr, bytes, seed)?;
    let want = expected_touch_mismatches(bytes, page, value, seed);
    push(
        KernelTest::TouchStride,
        c.mismatches == want,
        format!(
            "{} elements differ from the pattern after touching {pages} pages (host expects {want})",
            c.mismatches
        ),
    );
    Ok(out)
}

/// How many elements `check` must report after `touch` wrote `value` every `stride` bytes over a
/// buffer filled with `seed`: words of the 16-byte part count once, tail bytes each.
pub fn expected_touch_mismatches(bytes: u64, stride: u64, value: u32, seed: u32) -> u64 {
    let vec_end = bytes / 16 * 16;
    let mut n = 0;
    let mut off = 0;
    while off < bytes {
        if off + 4 <= bytes {
            if off < vec_end {
                n += u64::from(value != host_pattern_word(off / 4, seed));
            } else {
                n += (0..4u64)
                    .filter(|i| (value >> (8 * i)) as u8 != host_pattern_byte(off + i, seed))
                    .count() as u64;
            }
        } else {
            // One byte written (off is in the tail: fewer than 4 bytes remain).
            n += u64::from(value as u8 != host_pattern_byte(off, seed));
        }
        off += stride;
    }
    n
}
