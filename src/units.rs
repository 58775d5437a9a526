//! Sizes and their units. GB = 1e9 bytes and GiB = 2^30 bytes are never mixed silently: parsing
//! requires an explicit unit, and a bare `G`/`M`/`K` suffix is refused as ambiguous with a message
//! offering both readings. Written by hand because no well-kept crate refuses ambiguous suffixes
//! (the common ones read `4G` as one or the other).

use std::fmt;

/// 2^30.
pub const GIB: u64 = 1 << 30;
/// 2^20.
pub const MIB: u64 = 1 << 20;
/// 2^10.
pub const KIB: u64 = 1 << 10;
/// 1e9.
pub const GB: u64 = 1_000_000_000;
/// 1e6.
pub const MB: u64 = 1_000_000;

/// Why a size did not parse; `Display` is one sentence naming the input and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError(pub String);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SizeError {}

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", MB),
    ("gb", GB),
    ("tb", 1_000_000_000_000),
    ("kib", KIB),
    ("mib", MIB),
    ("gib", GIB),
    ("tib", 1 << 40),
];

/// Parses `512MiB`, `1GiB`, `4GB`, `1.5GiB`, `4096B`. Units are required and case-insensitive
/// (`gib`, `GiB`); `4G`, `4g`, `4M` are refused as ambiguous; zero, negative, fractional bytes and
/// values beyond 2^64 are refused.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(SizeError(
            "empty size: give a number with a unit, for example 512MiB or 4GB".into(),
        ));
    }
    let split = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == '_'))
        .map_or(s.len(), |(i, _)| i);
    let (num, unit) = s.split_at(split);
    let unit = unit.trim();
    let num = num.replace('_', "");
    if num.is_empty() {
        if s.starts_with('-') {
            return Err(SizeError(format!(
                "size `{input}` is negative: sizes are positive, for example 512MiB"
            )));
        }
        return Err(SizeError(format!(
            "size `{input}` has no number: write it like 512MiB or 4GB"
        )));
    }
    if unit.is_empty() {
        return Err(SizeError(format!(
            "size `{input}` has no unit: write {num}B for bytes, or add MiB/GiB (powers of 2) or MB/GB (powers of 10)"
        )));
    }
    let lower = unit.to_ascii_lowercase();
    if matches!(lower.as_str(), "k" | "m" | "g" | "t") {
        return Err(ambiguous(input, &num, &lower));
    }
    let Some(&(_, mult)) = UNITS.iter().find(|(u, _)| *u == lower) else {
        return Err(SizeError(format!(
            "size `{input}` has an unknown unit `{unit}`: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
        )));
    };
    let bytes = if let Some((int, frac)) = num.split_once('.') {
        decimal_bytes(input, int, frac, mult)?
    } else {
        let v: u128 = num.parse().map_err(|_| too_big(input))?;
        v.checked_mul(mult as u128).ok_or_else(|| too_big(input))?
    };
    if bytes == 0 {
        return Err(SizeError(format!(
            "size `{input}` is zero: give a positive size"
        )));
    }
    u64::try_from(bytes).map_err(|_| too_big(input))
}

/// `int.frac` times `mult` in exact decimal arithmetic: `int * mult + frac * mult / 10^len(frac)`,
/// refused when it is not a whole number of bytes or does not fit.
fn decimal_bytes(input: &str, int: &str, frac: &str, mult: u64) -> Result<u128, SizeError> {
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return Err(SizeError(format!(
            "size `{input}` is not a number: write it like 1.5GiB"
        )));
    }
    let int_v: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_big(input))?
    };
    let frac = frac.trim_end_matches('0');
    let (frac_v, scale) = if frac.is_empty() {
        (0u128, 1u128)
    } else {
        if frac.len() > 30 {
            return Err(SizeError(format!("size `{input}` has too many decimals")));
        }
        (
            frac.parse::<u128>().map_err(|_| too_big(input))?,
            10u128.pow(frac.len() as u32),
        )
    };
    let whole = int_v
        .checked_mul(mult as u128)
        .ok_or_else(|| too_big(input))?;
    // frac_v * mult / scale without forming the product (up to 10^30 x 2^40 would wrap):
    // with g = gcd(mult, scale), the bytes are whole only when scale/g divides frac_v, and then
    // they are (frac_v / (scale/g)) * (mult/g), which is below mult.
    let g = gcd(mult as u128, scale);
    let (den, num_mult) = (scale / g, mult as u128 / g);
    if !frac_v.is_multiple_of(den) {
        return Err(SizeError(format!(
            "size `{input}` is not a whole number of bytes"
        )));
    }
    whole
        .checked_add((frac_v / den) * num_mult)
        .ok_or_else(|| too_big(input))
}

/// `4G` and the like: the sentence naming both readings.
fn ambiguous(input: &str, num: &str, lower: &str) -> SizeError {
    let u = lower.to_ascii_uppercase();
    let (dec, bin) = match u.as_str() {
        "K" => (3, 10),
        "M" => (6, 20),
        "G" => (9, 30),
        _ => (12, 40),
    };
    SizeError(format!(
        "size `{input}` is ambiguous: write {num}{u}B ({num} x 10^{dec}) or {num}{u}iB ({num} x 2^{bin})"
    ))
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn too_big(input: &str) -> SizeError {
    SizeError(format!("size `{input}` is too large (the limit is 16 EiB)"))
}

/// Parses a comma-separated list of sizes.
pub fn parse_size_list(input: &str) -> Result<Vec<u64>, SizeError> {
    let parts: Vec<&str> = input
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(SizeError(format!(
            "size list `{input}` is empty: give sizes like 256MiB,1GiB"
        )));
    }
    parts.into_iter().map(parse_size).collect()
}

/// Formats bytes in binary units, exact where possible: `1 GiB`, `1.5 GiB`, `4097 B`.
pub fn fmt_bytes(bytes: u64) -> String {
    for (unit, m) in [
        ("TiB", 1u64 << 40),
        ("GiB", GIB),
        ("MiB", MIB),
        ("KiB", KIB),
    ] {
        if bytes >= m {
            if bytes.is_multiple_of(m) {
                return format!("{} {unit}", bytes / m);
            }
            let v = bytes as f64 / m as f64;
            return if v >= 100.0 {
                format!("{v:.0} {unit}")
            } else if v >= 10.0 {
                format!("{v:.1} {unit}")
            } else {
                format!("{v:.2} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

/// Formats bytes in GiB with two decimals (tables of memory accounting).
pub fn fmt_gib(bytes: f64) -> String {
    format!("{:.2}", bytes / GIB as f64)
}

/// Bytes as GiB (2^30), a number: for arithmetic and plots.
pub fn gib_of(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

/// Bytes as GiB (2^30) with `decimals` decimals, no unit: `fmt_gib_dp(3 << 29, 2)` is `1.50`.
pub fn fmt_gib_dp(bytes: u64, decimals: usize) -> String {
    format!("{:.decimals$}", gib_of(bytes))
}

/// A signed change in GiB (2^30) with `decimals` decimals and its sign: `+1.00`, `-0.50`.
pub fn fmt_gib_signed(bytes: i64, decimals: usize) -> String {
    format!("{:+.decimals$}", bytes as f64 / GIB as f64)
}

/// Bytes as GB (1e9) with `decimals` decimals, no unit: `fmt_gb_dp(1_500_000_000, 3)` is `1.500`.
pub fn fmt_gb_dp(bytes: u64, decimals: usize) -> String {
    format!("{:.decimals$}", bytes as f64 / GB as f64)
}

/// A size as the user gave it: whole GB (1e9 bytes, the seed preset's sizes) as "60 GB", other
/// sizes in binary units ([`fmt_bytes`]).
pub fn size_label(bytes: u64) -> String {
    if bytes >= GB && bytes.is_multiple_of(GB) && !bytes.is_multiple_of(GIB) {
        format!("{} GB", bytes / GB)
    } else {
        fmt_bytes(bytes)
    }
}

/// `value`% printed with as many decimals (1 at least) as it takes for the printed number to be
/// on the same side of `threshold` as `value` itself.
pub fn pct_vs(value: f64, threshold: f64) -> String {
    let above = value >= threshold;
    for d in 1..=12 {
        let s = format!("{value:.d$}");
        if s.parse::<f64>().is_ok_and(|p| (p >= threshold) == above) {
            return s;
        }
    }
    format!("{value:e}")
}

/// A number with 3 significant digits (at most 4 decimals, none at 1000 and above).
pub fn sig(v: f64) -> String {
    let a = v.abs();
    let d = if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a >= 0.1 {
        3
    } else {
        4
    };
    format!("{v:.d$}")
}

/// The canonical input form of a size, which `parse_size` reads back to the same value.
pub fn size_to_input(bytes: u64) -> String {
    for (unit, m) in [
        ("TiB", 1u64 << 40),
        ("GiB", GIB),
        ("MiB", MIB),
        ("KiB", KIB),
    ] {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    format!("{bytes}B")
}

/// GB/s (1e9 bytes per second) from bytes and milliseconds.
pub fn gbps(bytes: u64, ms: f64) -> f64 {
    if ms <= 0.0 {
        0.0
    } else {
        bytes as f64 / 1e9 / (ms / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_never_contradict_their_threshold() {
        assert_eq!(pct_vs(94.96, 95.0), "94.96");
        assert_eq!(pct_vs(94.999, 95.0), "94.999");
        assert_eq!(pct_vs(95.0, 95.0), "95.0");
        assert_eq!(pct_vs(95.04, 95.0), "95.0");
        assert_eq!(pct_vs(85.7, 95.0), "85.7");
        for v in [94.95, 94.949_999, 94.950_001, 89.96, 90.0] {
            let s = pct_vs(v, 95.0);
            assert_eq!(s.parse::<f64>().unwrap() >= 95.0, v >= 95.0, "{v} -> {s}");
        }
    }

    #[test]
    fn one_formatter_per_form() {
        assert_eq!(fmt_gib_dp(3 << 29, 2), "1.50");
        assert_eq!(fmt_gib_dp(GIB, 3), "1.000");
        assert_eq!(fmt_gib_signed(-(GIB as i64) / 2, 2), "-0.50");
        assert_eq!(fmt_gib_signed(GIB as i64, 3), "+1.000");
        assert_eq!(fmt_gb_dp(1_500_000_000, 3), "1.500");
        assert_eq!(size_label(60 * GB), "60 GB");
        assert_eq!(size_label(GIB), "1 GiB");
        assert_eq!(sig(1234.4), "1234");
        assert_eq!(sig(0.012345), "0.0123");
        assert_eq!(sig(12.345), "12.3");
    }

    #[test]
    fn units() {
        assert_eq!(parse_size("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_size("1GiB"), Ok(GIB));
        assert_eq!(parse_size("4GB"), Ok(4 * GB));
        assert_eq!(parse_size("4gb"), Ok(4 * GB));
        assert_eq!(parse_size(" 1.5GiB "), Ok(3 * GIB / 2));
        assert_eq!(parse_size("4097B"), Ok(4097));
        assert_eq!(parse_size("1_000MB"), Ok(1000 * MB));
        assert_eq!(parse_size("2 GiB"), Ok(2 * GIB));
    }

    #[test]
    fn long_fractions_are_exact() {
        // 2^-40 TiB is one byte; 40 decimals are refused as too many, 30 are computed exactly.
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert_eq!(parse_size("0.000000000931322574615478515625GiB"), Ok(1));
        assert_eq!(
            parse_size("0.000309485941143919684203296681TiB")
                .unwrap_err()
                .0,
            "size `0.000309485941143919684203296681TiB` is not a whole number of bytes"
        );
        assert_eq!(parse_size("15.999999999999999999TiB").ok(), None);
        assert_eq!(
            parse_size("16777215.99951171875TiB"),
            Ok(u64::MAX - (1 << 29) + 1)
        );
    }

    #[test]
    fn ambiguity_offers_both() {
        let e = parse_size("4G").unwrap_err().0;
        assert!(e.contains("4GB") && e.contains("4GiB"), "{e}");
        assert!(parse_size("16m").unwrap_err().0.contains("16MiB"));
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "0GiB",
            "0B",
            "-1GiB",
            "GiB",
            "12",
            "1.5B",
            "abc",
            "1..5GiB",
            "4 parsecs",
            "99999999999TiB",
            "1e9B",
            // 30 decimals: the exact value is not a whole number of bytes (this wrapped to 1024 B).
            "0.000309485941143919684203296681TiB",
            "0.1B",
            "18446744073709551616B",
            "16777216TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse_size("12").unwrap_err().0.contains("no unit"));
        assert!(parse_size("0GiB").unwrap_err().0.contains("zero"));
        assert!(parse_size("-1GiB").unwrap_err().0.contains("negative"));
        assert!(
            parse_size("99999999999TiB")
                .unwrap_err()
                .0
                .contains("too large")
        );
    }

    #[test]
    fn lists_and_round_trip() {
        assert_eq!(
            parse_size_list("512MiB, 1GiB,4GB"),
            Ok(vec![512 * MIB, GIB, 4 * GB])
        );
        assert!(parse_size_list(",").is_err());
        for v in [1, 4097, MIB, 3 * GIB / 2, 80 * GB, u64::MAX] {
            assert_eq!(parse_size(&size_to_input(v)), Ok(v));
        }
        assert_eq!(fmt_bytes(GIB), "1 GiB");
        assert_eq!(fmt_bytes(3 * GIB / 2), "1.50 GiB");
        assert_eq!(fmt_bytes(4097), "4.00 KiB");
    }
}
