//! The typed options of a probe ([`ProbeOptions`], parsed and validated before anything runs),
//! its default strategies (from the strategy registry) and `--kind`. Pure: imports `memory`
//! (types, the registry), `host::facts` and `units`.

use super::{ALIGN_BYTES, DEFAULT_HOST_CAP_BYTES, MaxSel, ProbeKind};
use crate::error::{Error, Result};
use crate::memory::safety::DEFAULT_HEADROOM;
use crate::memory::{AllocOptions, REGISTRY, Strategy};
use crate::units::{GIB, MIB, fmt_bytes};

/// The strategies probed by default: every registry entry that is not a variant of another
/// (`managed+prefetch` allocates as `managed` does).
pub fn default_strategies() -> Vec<Strategy> {
    REGISTRY
        .iter()
        .filter(|i| i.variant_of.is_none())
        .map(|i| i.strategy)
        .collect()
}

/// Options of a probe (typed: parsed before anything runs).
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub strategies: Vec<Strategy>,
    pub kinds: Vec<ProbeKind>,
    pub resolution_bytes: u64,
    pub chunk_bytes: u64,
    pub max: MaxSel,
    /// `None`: touch the lazily populated strategies (managed, pageable) only.
    pub touch: Option<bool>,
    pub page_stride: u64,
    pub headroom: u64,
    pub force: bool,
    pub alloc: AllocOptions,
    pub quiet: bool,
    /// The `auto` cap of host-backed strategies on discrete GPUs (the lab lowers it to its
    /// budget: pinning costs about 0.5 s per GiB).
    pub host_cap_bytes: u64,
    /// Whether the cumulative search runs for lazily populated strategies (managed, pageable),
    /// which touches everything it holds; the lab leaves it out under a short budget.
    pub cumulative_lazy: bool,
}

impl Default for ProbeOptions {
    fn default() -> ProbeOptions {
        ProbeOptions {
            strategies: default_strategies(),
            kinds: vec![ProbeKind::Single, ProbeKind::Cumulative],
            resolution_bytes: 256 * MIB,
            chunk_bytes: GIB,
            max: MaxSel::Auto,
            touch: None,
            page_stride: crate::host::facts::page_size(),
            headroom: DEFAULT_HEADROOM,
            force: false,
            alloc: AllocOptions::default(),
            quiet: false,
            host_cap_bytes: DEFAULT_HOST_CAP_BYTES,
            cumulative_lazy: true,
        }
    }
}

impl ProbeOptions {
    /// Whether `st` is touched after allocation.
    pub fn touches(&self, st: Strategy) -> bool {
        self.touch.unwrap_or(st.info().lazily_populated)
    }

    /// Refuses sizes the search cannot use, with one sentence each.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("--resolution", self.resolution_bytes),
            ("--chunk", self.chunk_bytes),
        ] {
            if v == 0 || !v.is_multiple_of(ALIGN_BYTES) {
                return Err(Error::usage(format!(
                    "{name} {} is not a multiple of 2 MiB (the allocation granularity): give for example 256MiB or 1GiB",
                    fmt_bytes(v)
                )));
            }
        }
        if let MaxSel::Bytes(b) = self.max
            && b < ALIGN_BYTES
        {
            return Err(Error::usage(format!(
                "--max {} is below 2 MiB: give a larger size, `auto` or `none`",
                fmt_bytes(b)
            )));
        }
        if self.page_stride == 0 || !self.page_stride.is_multiple_of(4) {
            return Err(Error::usage(format!(
                "page stride {}B must be a positive multiple of 4 bytes",
                self.page_stride
            )));
        }
        Ok(())
    }
}

/// `--kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindSel {
    Single,
    Cumulative,
    Both,
}

impl KindSel {
    pub fn kinds(self) -> Vec<ProbeKind> {
        match self {
            KindSel::Single => vec![ProbeKind::Single],
            KindSel::Cumulative => vec![ProbeKind::Cumulative],
            KindSel::Both => vec![ProbeKind::Single, ProbeKind::Cumulative],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_registry_and_validation_refuses_bad_sizes() {
        // Every strategy that allocates its own way, none of the variants that add a step.
        let d = default_strategies();
        assert!(d.contains(&Strategy::Device) && d.contains(&Strategy::Vmm));
        assert!(!d.contains(&Strategy::ManagedPrefetch) && !d.contains(&Strategy::ManagedAdvise));
        assert_eq!(
            d.len(),
            REGISTRY.iter().filter(|i| i.variant_of.is_none()).count()
        );
        let mut o = ProbeOptions::default();
        assert!(o.validate().is_ok());
        assert!(o.touches(Strategy::Managed) && o.touches(Strategy::Pageable));
        assert!(!o.touches(Strategy::Device) && !o.touches(Strategy::Pinned));
        o.touch = Some(false);
        assert!(!o.touches(Strategy::Managed));
        o.chunk_bytes = 1_000_000_000;
        let e = o.validate().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--chunk") && e.to_string().contains("2 MiB"));
    }
}
