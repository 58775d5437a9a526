//! Allocation strategies: one file per strategy behind one trait ([`Allocation`]), listed once in
//! [`REGISTRY`] with a key, a one-line description and the device attributes it needs.
//!
//! Contract: [`allocate`] times each step of an allocation on the host clock around the call and a
//! context synchronise; the returned value owns the memory and frees it in `Drop` (a failure there
//! is recorded, never thrown); [`Allocation::free`] frees it now and times that. A new strategy is
//! one new file plus one registry line. No `unsafe` here: each strategy is built from the driver
//! layer's RAII handles (`driver::alloc`, `driver::host`), which own the raw calls, and hands its
//! memory to kernels only as the [`DeviceSpan`] those handles lend.
//!
//! Imports: `driver` (handles, spans, errors), `host` (page size).

pub mod arch;
pub mod cpu;
mod device;
pub mod filemap;
mod managed;
mod owned;
mod pageable;
mod pinned;
mod pool;
mod registered;
pub mod safety;
pub mod vmm;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::driver::{Context, DeviceAttributes, DeviceSpan, Result, StepTimer, Stream};

/// Every strategy and variant the tool measures.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub enum Strategy {
    #[serde(rename = "device")]
    Device,
    #[serde(rename = "managed")]
    Managed,
    #[serde(rename = "managed+prefetch")]
    ManagedPrefetch,
    #[serde(rename = "managed+advise")]
    ManagedAdvise,
    #[serde(rename = "pinned")]
    Pinned,
    #[serde(rename = "registered")]
    Registered,
    #[serde(rename = "pageable")]
    Pageable,
    #[serde(rename = "pool")]
    Pool,
    #[serde(rename = "vmm")]
    Vmm,
}

/// Where the pages of a strategy live, which decides the safety rule that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Backing {
    /// GPU memory (on GB10: system memory the GPU owns).
    Device,
    /// Managed: migrates between host and device.
    Managed,
    /// Host memory (pinned, registered, pageable).
    Host,
}

/// One registry entry.
#[derive(Debug, Clone, Copy)]
pub struct StrategyInfo {
    pub strategy: Strategy,
    pub key: &'static str,
    pub description: &'static str,
    pub backing: Backing,
    /// The CPU can read and write it through an ordinary pointer.
    pub host_accessible: bool,
    /// Pages are populated on first touch rather than at allocation (on a discrete GPU).
    pub lazily_populated: bool,
    /// Attributes that must be non-zero, with the reason given when one is not.
    pub requires: &'static [(&'static str, &'static str)],
}

/// The registry: every strategy, once.
pub const REGISTRY: &[StrategyInfo] = &[
    StrategyInfo {
        strategy: Strategy::Device,
        key: "device",
        description: "cuMemAlloc: device memory, not CPU-accessible (GB10: populated in system memory at allocation)",
        backing: Backing::Device,
        host_accessible: false,
        lazily_populated: false,
        requires: &[],
    },
    StrategyInfo {
        strategy: Strategy::Managed,
        key: "managed",
        description: "cuMemAllocManaged(GLOBAL): one pointer for CPU and GPU, populated on first touch, migrates on discrete GPUs",
        backing: Backing::Managed,
        host_accessible: true,
        lazily_populated: true,
        requires: &[(
            "managed_memory",
            "the device does not support managed memory",
        )],
    },
    StrategyInfo {
        strategy: Strategy::ManagedPrefetch,
        key: "managed+prefetch",
        description: "managed, with cuMemPrefetchAsync to the device before the first GPU touch (prefetch timed)",
        backing: Backing::Managed,
        host_accessible: true,
        lazily_populated: true,
        requires: &[
            (
                "managed_memory",
                "the device does not support managed memory",
            ),
            (
                "concurrent_managed_access",
                "cuMemPrefetchAsync needs CONCURRENT_MANAGED_ACCESS, which this device lacks",
            ),
        ],
    },
    StrategyInfo {
        strategy: Strategy::ManagedAdvise,
        key: "managed+advise",
        description: "managed, with cuMemAdvise(SET_PREFERRED_LOCATION = device) at allocation",
        backing: Backing::Managed,
        host_accessible: true,
        lazily_populated: true,
        requires: &[
            (
                "managed_memory",
                "the device does not support managed memory",
            ),
            (
                "concurrent_managed_access",
                "cuMemAdvise preferred location needs CONCURRENT_MANAGED_ACCESS, which this device lacks",
            ),
        ],
    },
    StrategyInfo {
        strategy: Strategy::Pinned,
        key: "pinned",
        description: "cuMemHostAlloc(DEVICEMAP): page-locked host memory, mapped for the GPU",
        backing: Backing::Host,
        host_accessible: true,
        lazily_populated: false,
        requires: &[("can_map_host_memory", "the device cannot map host memory")],
    },
    StrategyInfo {
        strategy: Strategy::Registered,
        key: "registered",
        description: "mmap + cuMemHostRegister(DEVICEMAP): existing host memory page-locked and mapped (mmap and register timed apart)",
        backing: Backing::Host,
        host_accessible: true,
        lazily_populated: false,
        requires: &[
            (
                "host_register_supported",
                "cuMemHostRegister is not supported on this device",
            ),
            ("can_map_host_memory", "the device cannot map host memory"),
        ],
    },
    StrategyInfo {
        strategy: Strategy::Pageable,
        key: "pageable",
        description: "plain anonymous mmap, no CUDA call: the GPU reads it only with PAGEABLE_MEMORY_ACCESS (GB10, HMM, ATS)",
        backing: Backing::Host,
        host_accessible: true,
        lazily_populated: true,
        requires: &[(
            "pageable_memory_access",
            "the GPU cannot access pageable memory (PAGEABLE_MEMORY_ACCESS = 0: no HMM or ATS on this host)",
        )],
    },
    StrategyInfo {
        strategy: Strategy::Pool,
        key: "pool",
        description: "cuMemAllocAsync on the device's default pool (release threshold configurable)",
        backing: Backing::Device,
        host_accessible: false,
        lazily_populated: false,
        requires: &[(
            "memory_pools_supported",
            "the device does not support memory pools",
        )],
    },
    StrategyInfo {
        strategy: Strategy::Vmm,
        key: "vmm",
        description: "cuMemAddressReserve + cuMemCreate + cuMemMap + cuMemSetAccess, rounded to the granularity (each step timed)",
        backing: Backing::Device,
        host_accessible: false,
        lazily_populated: false,
        requires: &[(
            "virtual_memory_management_supported",
            "the device does not support virtual memory management",
        )],
    },
];

impl Strategy {
    /// The registry entry.
    pub fn info(self) -> &'static StrategyInfo {
        // The registry lists every variant; the fallback is never reached but avoids a panic path.
        REGISTRY
            .iter()
            .find(|i| i.strategy == self)
            .unwrap_or(&REGISTRY[0])
    }

    pub fn key(self) -> &'static str {
        self.info().key
    }

    /// Every strategy in registry order.
    pub fn all() -> Vec<Strategy> {
        REGISTRY.iter().map(|i| i.strategy).collect()
    }

    /// Parses one key, with a sentence listing the keys on a miss.
    pub fn parse(s: &str) -> std::result::Result<Strategy, String> {
        let t = s.trim().to_ascii_lowercase();
        REGISTRY
            .iter()
            .find(|i| i.key == t)
            .map(|i| i.strategy)
            .ok_or_else(|| {
                format!(
                    "unknown strategy `{s}`: choose from {} (or `all`)",
                    REGISTRY
                        .iter()
                        .map(|i| i.key)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Parses `device,managed` or `all`; duplicates are refused.
    pub fn parse_list(s: &str) -> std::result::Result<Vec<Strategy>, String> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(Strategy::all());
        }
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let st = Strategy::parse(part)?;
            if out.contains(&st) {
                return Err(format!("strategy `{part}` is listed twice in `{s}`"));
            }
            out.push(st);
        }
        if out.is_empty() {
            return Err(format!(
                "strategy list `{s}` is empty: give keys like device,managed or `all`"
            ));
        }
        Ok(out)
    }

    /// Ok when the device's attributes allow this strategy, else the reason it is skipped.
    pub fn supported(self, attrs: &DeviceAttributes) -> std::result::Result<(), String> {
        for (attr, reason) in self.info().requires {
            if !attrs.flag(attr) {
                return Err((*reason).to_string());
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// One timed step of an allocation or a free, host clock, milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Step {
    pub name: &'static str,
    pub ms: f64,
}

/// Options that some strategies take.
#[derive(Debug, Clone, Default)]
pub struct AllocOptions {
    /// `registered`: map this file (read-only, registered read-only) instead of anonymous memory.
    pub file: Option<PathBuf>,
    /// `pool`: the default pool's release threshold in bytes (0 = memory returns at every sync).
    pub pool_release_threshold: u64,
}

/// Memory from one strategy. Frees itself on drop.
pub trait Allocation {
    fn strategy(&self) -> Strategy;
    /// Bytes requested.
    fn bytes(&self) -> u64;
    /// Bytes actually taken (differs for `vmm`, which rounds to the granularity).
    fn mapped_bytes(&self) -> u64 {
        self.bytes()
    }
    /// The memory as kernels, sets and copies take it: borrowed from `self`, exactly its bytes
    /// (read-only for read-only file mappings).
    fn span(&self) -> DeviceSpan<'_>;
    /// The memory as a CPU byte slice, for host-accessible strategies.
    fn host_slice(&mut self) -> Option<&mut [u8]>;
    /// The timed steps of the allocation.
    fn alloc_steps(&self) -> &[Step];
    /// Frees now and returns the timed steps of the free.
    fn free(self: Box<Self>) -> Result<Vec<Step>>;
    /// Whether the memory may be written (false for read-only file mappings).
    fn writable(&self) -> bool {
        true
    }
    /// How host memory was registered (`registered` only): see `registered::RegisterMode`.
    fn registration_mode(&self) -> Option<&'static str> {
        None
    }
}

/// Times the driver layer's steps: host clock around each call and a context synchronise.
pub(crate) struct Steps<'a> {
    ctx: &'a Context,
    pub steps: Vec<Step>,
}

impl<'a> Steps<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Steps<'a> {
        Steps {
            ctx,
            steps: Vec::new(),
        }
    }
}

impl StepTimer for Steps<'_> {
    fn step<T>(&mut self, name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let out = f()?;
        self.ctx.synchronize()?;
        self.steps.push(Step {
            name,
            ms: t.elapsed().as_secs_f64() * 1e3,
        });
        Ok(out)
    }
}

/// Allocates `bytes` with `strategy` in `ctx` (current on this thread). `stream` is used by the
/// stream-ordered strategies.
pub fn allocate(
    ctx: &Arc<Context>,
    stream: &Arc<Stream>,
    strategy: Strategy,
    bytes: u64,
    opts: &AllocOptions,
) -> Result<Box<dyn Allocation>> {
    if bytes == 0 {
        return Err(crate::driver::Error::Invalid(
            "an allocation of 0 bytes was requested".into(),
        ));
    }
    Ok(match strategy {
        Strategy::Device => Box::new(device::DeviceAlloc::new(ctx, bytes)?),
        Strategy::Managed | Strategy::ManagedPrefetch | Strategy::ManagedAdvise => {
            Box::new(managed::ManagedAlloc::new(ctx, strategy, bytes)?)
        }
        Strategy::Pinned => Box::new(pinned::PinnedAlloc::new(ctx, bytes)?),
        Strategy::Registered => Box::new(registered::RegisteredAlloc::new(
            ctx,
            bytes,
            opts.file.as_deref(),
        )?),
        Strategy::Pageable => Box::new(pageable::PageableAlloc::new(ctx, bytes)?),
        Strategy::Pool => Box::new(pool::PoolAlloc::new(
            ctx,
            stream,
            bytes,
            opts.pool_release_threshold,
        )?),
        Strategy::Vmm => Box::new(vmm::VmmAlloc::new(ctx, bytes)?),
    })
}

/// `cuMemPrefetchAsync` of a managed range to the device (the `managed+prefetch` phase); GPU ms.
pub fn prefetch_to_device(stream: &Stream, span: DeviceSpan<'_>) -> Result<f64> {
    crate::driver::prefetch_to_device(stream, span)
}

/// Returns the default pool's unused memory to the system (after a run).
pub fn trim_default_pool(ctx: &Context) -> Result<()> {
    crate::driver::trim_default_pool(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_complete_and_parses() {
        assert_eq!(REGISTRY.len(), 9);
        for info in REGISTRY {
            assert_eq!(Strategy::parse(info.key), Ok(info.strategy));
            assert_eq!(info.strategy.key(), info.key);
            // serde names match the registry keys
            assert_eq!(
                serde_json::to_string(&info.strategy).unwrap(),
                format!("\"{}\"", info.key)
            );
        }
        assert_eq!(Strategy::parse("DEVICE"), Ok(Strategy::Device));
        let e = Strategy::parse("cudaMalloc").unwrap_err();
        assert!(
            e.contains("unknown strategy `cudaMalloc`") && e.contains("managed+prefetch"),
            "{e}"
        );
        assert_eq!(Strategy::parse_list("all").unwrap().len(), 9);
        assert_eq!(
            Strategy::parse_list("device, pool").unwrap(),
            vec![Strategy::Device, Strategy::Pool]
        );
        assert!(
            Strategy::parse_list("device,device")
                .unwrap_err()
                .contains("twice")
        );
        assert!(Strategy::parse_list(" , ").unwrap_err().contains("empty"));
    }

    fn attrs(pairs: &[(&str, i64)]) -> DeviceAttributes {
        DeviceAttributes::from_pairs(pairs)
    }

    #[test]
    fn support_follows_attributes() {
        // An H100 on a host without HMM (DESIGN.md's table).
        let h100 = attrs(&[
            ("integrated", 0),
            ("pageable_memory_access", 0),
            ("concurrent_managed_access", 1),
            ("managed_memory", 1),
            ("can_map_host_memory", 1),
            ("host_register_supported", 1),
            ("memory_pools_supported", 1),
            ("virtual_memory_management_supported", 1),
        ]);
        for s in Strategy::all() {
            let r = s.supported(&h100);
            if s == Strategy::Pageable {
                assert!(r.unwrap_err().contains("PAGEABLE_MEMORY_ACCESS = 0"));
            } else {
                assert_eq!(r, Ok(()), "{s}");
            }
        }
        let no_vmm = attrs(&[("virtual_memory_management_supported", 0)]);
        assert!(
            Strategy::Vmm
                .supported(&no_vmm)
                .unwrap_err()
                .contains("virtual memory")
        );
        let no_cma = attrs(&[("managed_memory", 1), ("concurrent_managed_access", 0)]);
        assert_eq!(Strategy::Managed.supported(&no_cma), Ok(()));
        assert!(Strategy::ManagedPrefetch.supported(&no_cma).is_err());
    }
}
