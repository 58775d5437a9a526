//! The memory a plan must fit in: a named GPU profile or a plain size. Kept apart from the
//! driver on purpose: planning is for machines you do not have in front of you.

use serde::{Deserialize, Serialize};

use super::PlanError;
use crate::units::{GB, GIB, parse_size};

/// On unified-memory targets the planner leaves this much for the operating system and the CPU
/// side of the process (the same default as the tool's `--headroom`).
pub const UNIFIED_HOST_HEADROOM_BYTES: u64 = 8 * GIB;

/// Memory to plan against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    /// Memory the GPU can use, in bytes (for unified targets: what the OS reports as total).
    pub bytes: u64,
    /// CPU and GPU share this memory: the planner subtracts `UNIFIED_HOST_HEADROOM_BYTES`.
    pub unified: bool,
}

/// The named profiles: name, bytes, unified, what the figure means.
const PROFILES: &[(&str, u64, bool, &str)] = &[
    (
        "gb10",
        119 * GIB,
        true,
        "DGX Spark / GB10: 128 GB LPDDR5x shared by CPU and GPU; the OS reports about 119 GiB total, which is what is planned against (less 8 GiB headroom for the OS and CPU side)",
    ),
    (
        "h100-80gb",
        80 * GB,
        false,
        "H100 80GB: 80 GB (1e9), the marketed figure; the card reports 81,559 MiB, so this is slightly conservative",
    ),
    (
        "h200",
        141 * GB,
        false,
        "H200: 141 GB (1e9), the marketed figure; the card reports about 143,771 MiB",
    ),
    (
        "rtx4090",
        24 * GB,
        false,
        "RTX 4090: 24 GB (1e9), the marketed figure; the card reports 24,564 MiB",
    ),
    (
        "rtx5090",
        32 * GB,
        false,
        "RTX 5090: 32 GB (1e9), the marketed figure; the card reports 32,607 MiB",
    ),
];

impl Target {
    /// A named profile: `gb10`, `h100-80gb` (also `h100`), `h200`, `rtx4090`, `rtx5090`
    /// (case-insensitive).
    pub fn named(name: &str) -> Option<Target> {
        let n = name.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        let n = match n.as_str() {
            "h100" | "h100-80g" | "h100-80" => "h100-80gb",
            "rtx-4090" | "4090" => "rtx4090",
            "rtx-5090" | "5090" => "rtx5090",
            "dgx-spark" | "spark" => "gb10",
            other => other,
        };
        PROFILES
            .iter()
            .find(|(key, ..)| *key == n)
            .map(|&(key, bytes, unified, _)| Target {
                name: key.to_string(),
                bytes,
                unified,
            })
    }

    /// A profile name or a size (`80GB`, `96GiB`, read by `units::parse_size`; a size is taken
    /// as discrete GPU memory).
    pub fn parse(input: &str) -> Result<Target, PlanError> {
        if let Some(t) = Target::named(input) {
            return Ok(t);
        }
        match parse_size(input) {
            Ok(bytes) => Ok(Target {
                name: input.trim().to_string(),
                bytes,
                unified: false,
            }),
            Err(e) => Err(PlanError::Target(format!(
                "target `{input}` is neither a profile ({}) nor a size ({e})",
                Target::profile_names().join(", ")
            ))),
        }
    }

    /// The profile names.
    pub fn profile_names() -> Vec<&'static str> {
        PROFILES.iter().map(|p| p.0).collect()
    }

    /// What a named profile's figure means (None for a plain size).
    pub fn profile_note(&self) -> Option<&'static str> {
        PROFILES
            .iter()
            .find(|p| p.0 == self.name)
            .map(|&(.., note)| note)
    }

    /// Headroom subtracted for the host side (unified targets only).
    pub fn host_headroom_bytes(&self) -> u64 {
        if self.unified {
            UNIFIED_HOST_HEADROOM_BYTES.min(self.bytes)
        } else {
            0
        }
    }

    /// Bytes a plan may use: `bytes` less the host headroom.
    pub fn budget_bytes(&self) -> u64 {
        self.bytes - self.host_headroom_bytes()
    }
}
