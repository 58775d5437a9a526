//! The phases of the sweep protocol as a type ([`Phase`]), written in rows as the strings files
//! have always held (`"gpu_first_touch"`, `"alloc:cuMemCreate"`), and the same strings as
//! constants for modules that still compare with them (`r.phase == phase::FILL` works on the
//! enum through `PartialEq<&str>`). Imports nothing from the crate.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const ALLOC: &str = "alloc";
pub const PREFETCH: &str = "prefetch";
pub const GPU_FIRST_TOUCH: &str = "gpu_first_touch";
pub const GPU_SECOND_TOUCH: &str = "gpu_second_touch";
pub const FILL: &str = "fill";
pub const READ: &str = "read";
pub const VERIFY: &str = "verify";
pub const FREE: &str = "free";
pub const CPU_FIRST_TOUCH: &str = "cpu_first_touch";
pub const GPU_TOUCH_AFTER_CPU: &str = "gpu_touch_after_cpu";
pub const MEMSET_BASELINE: &str = "baseline_cuMemsetD32";
pub const COPY_BASELINE: &str = "baseline_cuMemcpyDtoD";

/// One phase of a row: a step of the protocol, or one timed call of an allocation or a free.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Phase {
    Alloc,
    Prefetch,
    GpuFirstTouch,
    GpuSecondTouch,
    Fill,
    Read,
    Verify,
    Free,
    CpuFirstTouch,
    GpuTouchAfterCpu,
    MemsetBaseline,
    CopyBaseline,
    /// One step of an allocation (`alloc:<call>`), e.g. `cuMemCreate` of `vmm`.
    AllocStep(String),
    /// One step of a free (`free:<call>`).
    FreeStep(String),
}

/// The protocol's phases in the order rows are written, with their names.
const ORDER: [(Phase, &str); 12] = [
    (Phase::Alloc, ALLOC),
    (Phase::Prefetch, PREFETCH),
    (Phase::GpuFirstTouch, GPU_FIRST_TOUCH),
    (Phase::GpuSecondTouch, GPU_SECOND_TOUCH),
    (Phase::Fill, FILL),
    (Phase::Read, READ),
    (Phase::Verify, VERIFY),
    (Phase::MemsetBaseline, MEMSET_BASELINE),
    (Phase::CopyBaseline, COPY_BASELINE),
    (Phase::Free, FREE),
    (Phase::CpuFirstTouch, CPU_FIRST_TOUCH),
    (Phase::GpuTouchAfterCpu, GPU_TOUCH_AFTER_CPU),
];

impl Phase {
    /// The name of a protocol phase; for a step, the name of the phase it belongs to.
    pub fn base_name(&self) -> &'static str {
        let base = match self {
            Phase::AllocStep(_) => &Phase::Alloc,
            Phase::FreeStep(_) => &Phase::Free,
            p => p,
        };
        ORDER
            .iter()
            .find(|(p, _)| p == base)
            .map_or(ALLOC, |(_, n)| n)
    }

    /// The call of an `alloc:<call>` / `free:<call>` step.
    pub fn step_call(&self) -> Option<&str> {
        match self {
            Phase::AllocStep(c) | Phase::FreeStep(c) => Some(c),
            _ => None,
        }
    }

    /// Whether this is one call of an allocation or a free rather than a protocol phase.
    pub fn is_step(&self) -> bool {
        self.step_call().is_some()
    }

    /// Where rows of this phase go: protocol order, a step right after its phase's position.
    pub fn rank(&self) -> usize {
        let name = self.base_name();
        ORDER.iter().position(|(_, n)| *n == name).unwrap_or(0)
    }

    /// Reads a name as written in rows; `None` for a name the protocol does not have.
    pub fn parse(s: &str) -> Option<Phase> {
        if let Some(call) = s.strip_prefix("alloc:") {
            return Some(Phase::AllocStep(call.to_string()));
        }
        if let Some(call) = s.strip_prefix("free:") {
            return Some(Phase::FreeStep(call.to_string()));
        }
        ORDER.iter().find(|(_, n)| *n == s).map(|(p, _)| p.clone())
    }

    /// `baseline_cuMemsetD32` as `cuMemsetD32` (the baselines table's first column).
    pub fn baseline_call(&self) -> Option<&'static str> {
        match self {
            Phase::MemsetBaseline | Phase::CopyBaseline => {
                Some(self.base_name().trim_start_matches("baseline_"))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::AllocStep(c) => write!(f, "{ALLOC}:{c}"),
            Phase::FreeStep(c) => write!(f, "{FREE}:{c}"),
            p => f.write_str(p.base_name()),
        }
    }
}

impl Serialize for Phase {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Phase, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Phase::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown sweep phase `{s}`")))
    }
}

impl PartialEq<str> for Phase {
    fn eq(&self, other: &str) -> bool {
        match (self.step_call(), other.split_once(':')) {
            (Some(call), Some((base, c))) => base == self.base_name() && c == call,
            (None, None) => self.base_name() == other,
            _ => false,
        }
    }
}

impl PartialEq<&str> for Phase {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq<&Phase> for Phase {
    fn eq(&self, other: &&Phase) -> bool {
        self == *other
    }
}

impl PartialEq<Phase> for &str {
    fn eq(&self, other: &Phase) -> bool {
        other == *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_to_itself() {
        let mut names: Vec<String> = ORDER.iter().map(|(_, n)| n.to_string()).collect();
        names.extend(["alloc:cuMemCreate".into(), "free:munmap".into()]);
        for n in &names {
            let p = Phase::parse(n).unwrap();
            assert_eq!(p.to_string(), *n);
            assert!(p == n.as_str() && n.as_str() == p, "{n}");
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{n}\""));
            let back: Phase = serde_json::from_str(&format!("\"{n}\"")).unwrap();
            assert_eq!(back, p);
        }
        assert_eq!(Phase::parse("snapshot"), None);
        assert!(serde_json::from_str::<Phase>("\"touch\"").is_err());
        let step = Phase::AllocStep("cuMemMap".into());
        assert!(step != ALLOC && step != "alloc:cuMemCreate" && step == "alloc:cuMemMap");
        assert!(Phase::Alloc != "alloc:cuMemMap" && Phase::Alloc == ALLOC);
        assert_eq!(
            (step.base_name(), step.rank()),
            (ALLOC, Phase::Alloc.rank())
        );
        assert!(Phase::FreeStep("x".into()).rank() > Phase::CopyBaseline.rank());
        assert_eq!(Phase::CopyBaseline.baseline_call(), Some("cuMemcpyDtoD"));
    }
}
