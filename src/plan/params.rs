//! Parameter counts as people write them (`70B`, `8b`, `1.5T`, `350M`, `7.6e9`). A separate
//! parser from `units::parse_size` on purpose: `B` here means billion, not bytes, and a byte unit
//! given by mistake (`70GB`) is refused with that explanation.

/// Below this a plain number is almost certainly a forgotten suffix (`70` meant `70B`).
const MIN_PLAIN_PARAMS: f64 = 1e6;

/// Reads a parameter count: a number with `K` (thousand), `M` (million), `B` (billion) or `T`
/// (trillion), case-insensitive, or a plain number (`7.6e9`, `7_600_000_000`) of at least one
/// million. Errors are one sentence naming the input and the fix.
pub fn parse_param_count(input: &str) -> Result<f64, String> {
    let s = input.trim().replace(['_', ','], "");
    if s.is_empty() {
        return Err(
            "empty parameter count: give a number like 70B, 8b, 1.5T, 350M or 7.6e9".to_string(),
        );
    }
    if s.starts_with('-') {
        return Err(format!(
            "parameter count `{input}` is negative: give a positive count like 70B"
        ));
    }
    let lower = s.to_ascii_lowercase();
    if lower.ends_with("gb")
        || lower.ends_with("gib")
        || lower.ends_with("mb")
        || lower.ends_with("mib")
        || lower.ends_with("tb")
    {
        return Err(format!(
            "parameter count `{input}` looks like a size in bytes: give the number of parameters, like 70B (70 billion)"
        ));
    }
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1e3),
        Some('m') => (&s[..s.len() - 1], 1e6),
        Some('b') => (&s[..s.len() - 1], 1e9),
        Some('t') => (&s[..s.len() - 1], 1e12),
        Some(c) if c.is_ascii_digit() || c == '.' => (s.as_str(), 1.0),
        Some(_) => {
            let c = s.chars().last().unwrap_or(' ');
            return Err(format!(
                "parameter count `{input}` has an unknown suffix `{c}`: use K, M, B (billion) or T, or plain notation like 7.6e9"
            ));
        }
        None => (s.as_str(), 1.0),
    };
    let num = num.trim();
    let value: f64 = num.parse().map_err(|_| {
        format!("parameter count `{input}` is not a number: write it like 70B, 1.5T or 7.6e9")
    })?;
    let params = value * mult;
    if !params.is_finite() {
        return Err(format!(
            "parameter count `{input}` is not a finite number: write it like 70B"
        ));
    }
    if params <= 0.0 {
        return Err(format!(
            "parameter count `{input}` is zero: give a positive count like 70B"
        ));
    }
    if mult == 1.0 && params < MIN_PLAIN_PARAMS {
        return Err(format!(
            "parameter count `{input}` is only {params} parameters: add a suffix, for example {num}B for {num} billion"
        ));
    }
    if params > 1e15 {
        return Err(format!(
            "parameter count `{input}` is beyond 1,000T parameters: check the suffix (B is billion, T is trillion)"
        ));
    }
    Ok(params.round())
}
