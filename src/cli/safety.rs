//! The safety flag group (`--headroom`, `--force`) of the commands that allocate: the ceiling below
//! MemAvailable that no allocation may cross, and the override that crosses it with a warning
//! (never the managed-past-free rule on a discrete card; see `memory::safety`). May import:
//! `units`.

/// `--headroom SIZE` (default 8GiB) and `--force`. Flatten it with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct SafetyArgs {
    /// Memory that must stay available to the host (MemAvailable minus this is the ceiling).
    #[arg(long, default_value = "8GiB", allow_hyphen_values = true, value_parser = crate::units::parse_size)]
    pub headroom: u64,
    /// Allocate past the safety ceiling (prints a warning). Can wedge a unified-memory host.
    #[arg(long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        safety: super::SafetyArgs,
    }

    #[test]
    fn headroom_defaults_to_8_gib_and_needs_a_unit() {
        let t = T::try_parse_from(["t"]).unwrap();
        assert_eq!(t.safety.headroom, 8 << 30);
        assert!(!t.safety.force);
        let t = T::try_parse_from(["t", "--headroom", "2GB", "--force"]).unwrap();
        assert_eq!((t.safety.headroom, t.safety.force), (2_000_000_000, true));
        assert!(T::try_parse_from(["t", "--headroom", "4G"]).is_err());
    }
}
