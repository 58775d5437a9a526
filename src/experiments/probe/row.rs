//! The probe's row ([`ProbeRow`]: one struct is the JSON row, the CSV row and the source of the
//! table), its kind ([`ProbeKind`]) and the safety budget of the accounting it carries
//! ([`budget_of`] a `host::Accounting`). May import `memory` (the strategy and budget types) and
//! `host`.

use serde::{Deserialize, Serialize};

use super::StopReason;
use crate::experiments::env::Environment;
use crate::host::Accounting;
use crate::memory::Strategy;
use crate::memory::safety::Budget;

/// The two figures of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// The largest single allocation.
    Single,
    /// The most held at once in chunks.
    Cumulative,
}

impl ProbeKind {
    pub fn key(self) -> &'static str {
        match self {
            ProbeKind::Single => "single",
            ProbeKind::Cumulative => "cumulative",
        }
    }
}

/// One probe result. The same struct is the JSON row, the CSV row and the source of the table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeRow {
    pub device: i32,
    pub strategy: Strategy,
    pub kind: ProbeKind,
    /// The largest single allocation, or the most held at once.
    pub max_bytes: u64,
    pub stop_reason: StopReason,
    /// The sentence saying why the search stopped.
    pub stop_detail: String,
    pub attempts: u32,
    /// Attempts that failed with out-of-memory.
    pub failures: u32,
    /// Whether every allocation was touched by the GPU (one write per page) before counting.
    pub touched: bool,
    /// Single: the resolution; cumulative: the chunk.
    pub step_bytes: u64,
    /// The safety ceiling at the start (before anything was taken).
    pub ceiling_bytes: u64,
    /// The bound the search ran under at its end (ceiling, cap or physical size).
    pub limit_bytes: u64,
    pub cap_bytes: Option<u64>,
    /// Single: the smallest size that failed; cumulative: the total the failing chunk would make.
    pub first_failure_bytes: Option<u64>,
    /// The failed call and the driver's message, for the first failure.
    pub failure: Option<String>,
    /// Accounting taken just before the probe.
    pub device_free_bytes: u64,
    pub device_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub cached_bytes: u64,
    pub swap_free_bytes: u64,
    /// PSI full avg10 (percent), bytes in free 2 MiB blocks and cgroup memory.current, just
    /// before the probe.
    #[serde(default)]
    pub psi_full_avg10: Option<f64>,
    #[serde(default)]
    pub free_2m_bytes: Option<u64>,
    #[serde(default)]
    pub cgroup_current_bytes: Option<u64>,
    pub elapsed_ms: f64,
    /// Every size tried with its outcome.
    pub tried: String,
}

/// The whole-probe document type.
pub type ProbeDoc = crate::report::Document<ProbeRow, Environment>;

/// The safety budget of an accounting snapshot (`Gpu::accounting`): the probe takes one before
/// it starts (the row carries its figures) and again before each step.
pub fn budget_of(a: &Accounting, unified: bool, headroom: u64) -> Budget {
    Budget {
        unified,
        device_free: a.device_free_or_zero(),
        mem_available: a.mem_available,
        headroom,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sink::to_csv;
    use crate::units::{GIB, MIB};

    #[test]
    fn rows_to_json_and_csv() {
        let r = ProbeRow {
            device: 0,
            strategy: Strategy::Device,
            kind: ProbeKind::Single,
            max_bytes: 78 * GIB,
            stop_reason: StopReason::SafetyCeiling,
            stop_detail: "x".into(),
            attempts: 2,
            failures: 0,
            touched: false,
            step_bytes: 256 * MIB,
            ceiling_bytes: 79 * GIB,
            limit_bytes: 79 * GIB,
            cap_bytes: None,
            first_failure_bytes: None,
            failure: None,
            device_free_bytes: 79 * GIB,
            device_total_bytes: 80 * GIB,
            mem_free_bytes: 1,
            mem_available_bytes: 2,
            cached_bytes: 3,
            swap_free_bytes: 0,
            psi_full_avg10: Some(0.5),
            free_2m_bytes: Some(GIB),
            cgroup_current_bytes: None,
            elapsed_ms: 12.5,
            tried: "256 MiB ok".into(),
        };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["kind"], "single");
        assert_eq!(j["stop_reason"], "safety_ceiling");
        let csv = String::from_utf8(to_csv(std::slice::from_ref(&r)).unwrap()).unwrap();
        assert!(
            csv.starts_with("device,strategy,kind,max_bytes,stop_reason,"),
            "{csv}"
        );
        assert!(
            csv.contains("0,device,single,83751862272,safety_ceiling,"),
            "{csv}"
        );
        let back: ProbeRow = csv::Reader::from_reader(csv.as_bytes())
            .deserialize()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(back, r);
    }
}
