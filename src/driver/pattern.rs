//! The host mirror of the data pattern every kernel writes and checks (`kernels/pattern.cuh`):
//! CPU-side verification and expected sums come from here, so they cannot drift from the kernels.
//! Apart from `kernels.rs` only to keep each file to one concern.
//!
//! Imports: nothing of the crate.

/// The per-lane constants of the pattern (mirror of `CML_LANE*` in kernels/pattern.cuh).
const LANES: [u32; 4] = [0x0000_0000, 0x68E3_1DA4, 0xB529_7A4D, 0x1B56_C4E9];

/// Word `i` of the pattern of `seed` (mirror of `cml_pattern` in kernels/pattern.cuh): the hash
/// of its 16-byte vector `i / 4`, xor the constant of its lane `i % 4`.
pub fn host_pattern_word(i: u64, seed: u32) -> u32 {
    let j = i >> 2;
    let mut x = (j as u32) ^ ((j >> 32) as u32).wrapping_mul(0x85EB_CA6B) ^ seed;
    x = x.wrapping_mul(0x9E37_79B1);
    (x ^ (x >> 15)) ^ LANES[(i & 3) as usize]
}

/// Byte `k` of the pattern (mirror of `cml_pattern_byte`).
pub fn host_pattern_byte(k: u64, seed: u32) -> u8 {
    (host_pattern_word(k >> 2, seed) >> (8 * (k & 3))) as u8
}

/// What `read` returns for a buffer of `bytes` bytes filled with `seed`: the sum of the words of
/// the 16-byte part plus each tail byte. Computed on all cores (a 16 GiB buffer is 4 G words).
pub fn host_pattern_sum(bytes: u64, seed: u32) -> u64 {
    let nvec = bytes / 16;
    let words = nvec * 4;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
        .clamp(1, 64);
    let chunk = words.div_ceil(threads).max(1);
    let mut total = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let lo = (t * chunk).min(words);
                    let hi = ((t + 1) * chunk).min(words);
                    (lo..hi).fold(0u64, |acc, i| {
                        acc.wrapping_add(u64::from(host_pattern_word(i, seed)))
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .fold(0u64, |acc, h| acc.wrapping_add(h.join().unwrap_or(0)))
    });
    for k in nvec * 16..bytes {
        total = total.wrapping_add(u64::from(host_pattern_byte(k, seed)));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_catches_misplaced_words() {
        let seed = 0x1234_5678;
        let mut seen = std::collections::HashSet::new();
        // The vector hash is a bijection of the vector index: lane 0 never repeats...
        for j in 0..100_000u64 {
            assert!(
                seen.insert(host_pattern_word(4 * j, seed)),
                "vector hash repeats at {j}"
            );
            // ...the four words of a vector differ...
            let w: Vec<u32> = (0..4).map(|q| host_pattern_word(4 * j + q, seed)).collect();
            assert!(
                w[0] != w[1]
                    && w[0] != w[2]
                    && w[0] != w[3]
                    && w[1] != w[2]
                    && w[1] != w[3]
                    && w[2] != w[3]
            );
            // ...and each word differs from the same lane of the next vector (a misplaced store).
            assert!(
                (0..4).all(|q| host_pattern_word(4 * j + q, seed)
                    != host_pattern_word(4 * j + 4 + q, seed))
            );
        }
        assert_ne!(host_pattern_word(7, 1), host_pattern_word(7, 2));
        // Words above 2^32 differ from their low-half twins.
        assert_ne!(host_pattern_word(5, 9), host_pattern_word(5 + (1 << 34), 9));
    }

    #[test]
    fn bytes_are_little_endian_words() {
        let w = host_pattern_word(3, 77);
        let b: Vec<u8> = (12..16).map(|k| host_pattern_byte(k, 77)).collect();
        assert_eq!(w.to_le_bytes().to_vec(), b);
    }

    #[test]
    fn sum_counts_tail_bytes_once() {
        let seed = 42;
        let by_hand: u64 = (0..8u64)
            .map(|i| u64::from(host_pattern_word(i, seed)))
            .sum::<u64>()
            + (32..37u64)
                .map(|k| u64::from(host_pattern_byte(k, seed)))
                .sum::<u64>();
        assert_eq!(host_pattern_sum(37, seed), by_hand);
        assert_eq!(host_pattern_sum(0, seed), 0);
        assert_eq!(
            host_pattern_sum(15, seed),
            (0..15u64)
                .map(|k| u64::from(host_pattern_byte(k, seed)))
                .sum::<u64>()
        );
    }
}
