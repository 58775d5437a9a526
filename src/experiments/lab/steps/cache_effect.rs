//! `cache effect` as a lab step on the first device: what the page cache costs GPU
//! allocations (a file of up to 4 GiB written, read, evicted). It runs by default where the page
//! cache competes with GPU allocations (integrated or pageable-memory devices), and on a
//! discrete card only when asked for (`--with-cache-effect`); its CSV and its report section.

use crate::error::Result;
use crate::experiments::cache::{self, EffectOptions};
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::experiments::lab::report::{self, Findings};
use crate::experiments::lab::{LabResults, Section};
use crate::report::ResultSink;
use crate::report::markdown::Page;

/// `cache effect`.
pub struct CacheEffect;

impl Experiment for CacheEffect {
    fn about(&self) -> About {
        About {
            name: "cache effect",
            key: "cache-effect",
            needs_gpu: true,
            scope: Scope::FirstDevice,
        }
    }
    fn not_wanted(&self, ctx: &StepContext) -> Option<String> {
        (!ctx.with_cache_effect).then(|| {
            "not asked for on a discrete card: add --with-cache-effect (writes and removes a temporary file of up to 4 GiB)".to_string()
        })
    }
    fn run(&self, ctx: &StepContext, device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        let gpu = super::open_gpu(device)?;
        let eopts = EffectOptions {
            headroom: ctx.opts.headroom,
            quiet: ctx.opts.quiet,
            ..EffectOptions::default()
        };
        let mut sink = ResultSink::new("cache effect", ctx.env.clone(), None)?;
        let r = cache::run_effect(&gpu, &eopts, &mut sink);
        let mut section = Section::default();
        section.absorb(&sink.doc);
        section.notes.extend(cache::effect_findings(
            &sink.doc.rows,
            device.unwrap_or(0),
            gpu.arch.is_unified(),
        ));
        res.cache_effect = Some(section);
        r.map(|()| Ran::Ok)
    }
    fn csv(&self, r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        super::rows_csv("cache-effect.csv", r.cache_effect.as_ref())
    }
    fn report(&self, r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
        report::cache::effect(r, p, findings);
        Ok(())
    }
}

/// Whether `cache effect` runs without being asked: the first device is integrated or reaches
/// pageable memory, so the page cache competes with its allocations (the GB10 headline).
pub fn cache_effect_by_default(devices: &[crate::experiments::env::DeviceInfo]) -> bool {
    devices
        .first()
        .is_some_and(|d| d.architecture.is_unified() || d.attributes.flag("pageable_memory_access"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_effect_runs_by_default_on_unified_or_pageable_devices() {
        use crate::driver::DeviceAttributes;
        use crate::memory::arch::UsableEstimate;
        let m = crate::test_support::meminfo("gb10-cache-heavy.txt");
        let dev = |pairs: &[(&str, i64)]| {
            let attributes = DeviceAttributes::from_pairs(pairs);
            let architecture = crate::memory::arch::MemoryArchitecture::classify(&attributes);
            crate::experiments::env::DeviceInfo {
                ordinal: 0,
                name: "x".into(),
                uuid: String::new(),
                pci_bus_id: String::new(),
                compute_capability: String::new(),
                multiprocessors: 1,
                total_bytes: 0,
                cumemgetinfo_free_bytes: 0,
                cumemgetinfo_total_bytes: 0,
                architecture,
                usable: UsableEstimate::new(architecture, 0, &m),
                attributes,
            }
        };
        let gb10 = dev(&[
            ("integrated", 1),
            ("pageable_memory_access", 1),
            ("pageable_memory_access_uses_host_page_tables", 1),
        ]);
        let hmm = dev(&[("pageable_memory_access", 1)]);
        let h200 = dev(&[]);
        assert!(cache_effect_by_default(std::slice::from_ref(&gb10)));
        assert!(cache_effect_by_default(std::slice::from_ref(&hmm)));
        assert!(!cache_effect_by_default(std::slice::from_ref(&h200)));
        assert!(!cache_effect_by_default(&[]));
    }
}
