//! Allocation strategies: one file per strategy behind one trait ([`Allocation`]), listed once in
//! [`REGISTRY`] with a key, a one-line description and the device attributes it needs.
//!
//! Contract: [`allocate`] times each step of an allocation on the host clock around the call and a
//! context synchronise; the returned value owns the memory and frees it in `Drop` (a failure there
//! is recorded, never thrown); [`Allocation::free`] frees it now and times that. A new strategy is
//! one new file plus one registry line. `unsafe` is allowed here (with the driver layer) because
//! this is where raw pointers from the driver and from `mmap` become byte slices.

pub mod arch;
pub mod cpu;
mod device;
pub mod filemap;
mod managed;
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

use crate::driver::{Context, DeviceAttributes, DevicePtr, Result, Stream};

/// Declares [`Strategy`] (one variant per entry) and [`REGISTRY`] (the entries, in order) from one
/// list, so that an entry cannot be missing for a variant.
macro_rules! strategies {
    ($($variant:ident { $($field:ident: $value:expr,)* },)*) => {
        /// Every strategy and variant the tool measures. Its key (the JSON/CSV string, the
        /// command-line name) lives in its [`REGISTRY`] entry only; serde and the string
        /// comparisons go through it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Strategy {
            $($variant,)*
        }

        /// The registry: every strategy, once.
        pub const REGISTRY: &[StrategyInfo] = &[
            $(StrategyInfo {
                strategy: Strategy::$variant,
                $($field: $value,)*
            },)*
        ];
    };
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

/// Makes one allocation of a strategy: the constructor of a registry entry.
pub type Constructor =
    fn(&Arc<Context>, &Arc<Stream>, Strategy, u64, &AllocOptions) -> Result<Box<dyn Allocation>>;

/// One registry entry.
#[derive(Debug, Clone, Copy)]
pub struct StrategyInfo {
    pub strategy: Strategy,
    /// Allocates `bytes` (the checks of [`allocate`] are done).
    pub new: Constructor,
    /// The strategy whose allocation this one repeats with an extra step (`managed+prefetch` is
    /// `managed` plus a prefetch), or `None`. `probe` leaves variants out by default.
    pub variant_of: Option<Strategy>,
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

// The registry: every strategy, once. Each entry names its `Strategy` variant and gives the rest
// of its `StrategyInfo`; the macro declares the enum from the same list, so adding a strategy is
// one file (its `Allocation`) and one entry here.
strategies! {
    Device {
        new: |ctx, _, _, bytes, _| Ok(Box::new(device::DeviceAlloc::new(ctx, bytes)?)),
        variant_of: None,
        key: "device",
        description: "cuMemAlloc: device memory, not CPU-accessible (GB10: populated in system memory at allocation)",
        backing: Backing::Device,
        host_accessible: false,
        lazily_populated: false,
        requires: &[],
    },
    Managed {
        new: |ctx, _, st, bytes, _| Ok(Box::new(managed::ManagedAlloc::new(ctx, st, bytes)?)),
        variant_of: None,
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
    ManagedPrefetch {
        new: |ctx, _, st, bytes, _| Ok(Box::new(managed::ManagedAlloc::new(ctx, st, bytes)?)),
        variant_of: Some(Strategy::Managed),
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
    ManagedAdvise {
        new: |ctx, _, st, bytes, _| Ok(Box::new(managed::ManagedAlloc::new(ctx, st, bytes)?)),
        variant_of: Some(Strategy::Managed),
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
    Pinned {
        new: |ctx, _, _, bytes, _| Ok(Box::new(pinned::PinnedAlloc::new(ctx, bytes)?)),
        variant_of: None,
        key: "pinned",
        description: "cuMemHostAlloc(DEVICEMAP): page-locked host memory, mapped for the GPU",
        backing: Backing::Host,
        host_accessible: true,
        lazily_populated: false,
        requires: &[("can_map_host_memory", "the device cannot map host memory")],
    },
    Registered {
        new: |ctx, _, _, bytes, o| {
            Ok(Box::new(registered::RegisteredAlloc::new(
                ctx,
                bytes,
                o.file.as_deref(),
            )?))
        },
        variant_of: None,
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
    Pageable {
        new: |ctx, _, _, bytes, _| Ok(Box::new(pageable::PageableAlloc::new(ctx, bytes)?)),
        variant_of: None,
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
    Pool {
        new: |ctx, stream, _, bytes, o| {
            Ok(Box::new(pool::PoolAlloc::new(
                ctx,
                stream,
                bytes,
                o.pool_release_threshold,
            )?))
        },
        variant_of: None,
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
    Vmm {
        new: |ctx, _, _, bytes, _| Ok(Box::new(vmm::VmmAlloc::new(ctx, bytes)?)),
        variant_of: None,
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
}

impl Strategy {
    /// The registry entry.
    pub fn info(self) -> &'static StrategyInfo {
        // `strategies!` makes one entry per variant; the fallback is never reached but avoids a
        // panic path.
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
                    Strategy::keys(&Strategy::all())
                )
            })
    }

    /// The keys of `list`, comma-separated (`device, managed`), for sentences and help texts.
    pub fn keys(list: &[Strategy]) -> String {
        list.iter().map(|s| s.key()).collect::<Vec<_>>().join(", ")
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

/// Written as its registry key (`"managed+prefetch"`), as files have always held it.
impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

/// Read from its registry key, exactly (files are written by the tool, not typed by hand).
impl<'de> serde::Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Strategy, D::Error> {
        let key = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        REGISTRY
            .iter()
            .find(|i| i.key == key)
            .map(|i| i.strategy)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown strategy `{key}`")))
    }
}

/// Rows compare their strategy with a key (`r.strategy == "device"`), as when it was a string.
impl PartialEq<str> for Strategy {
    fn eq(&self, other: &str) -> bool {
        self.key() == other
    }
}

impl PartialEq<&str> for Strategy {
    fn eq(&self, other: &&str) -> bool {
        self.key() == *other
    }
}

impl PartialEq<String> for Strategy {
    fn eq(&self, other: &String) -> bool {
        self.key() == other
    }
}

impl PartialEq<&String> for Strategy {
    fn eq(&self, other: &&String) -> bool {
        self.key() == other.as_str()
    }
}

impl PartialEq<Strategy> for &str {
    fn eq(&self, other: &Strategy) -> bool {
        *self == other.key()
    }
}

impl PartialEq<Strategy> for String {
    fn eq(&self, other: &Strategy) -> bool {
        self == other.key()
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
    /// The address kernels use.
    fn device_ptr(&self) -> DevicePtr;
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

/// Times one step: host clock around `f` and a context synchronise.
pub(crate) fn timed_step<T>(
    ctx: &Context,
    name: &'static str,
    steps: &mut Vec<Step>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let t = Instant::now();
    let out = f()?;
    ctx.synchronize()?;
    steps.push(Step {
        name,
        ms: t.elapsed().as_secs_f64() * 1e3,
    });
    Ok(out)
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
    (strategy.info().new)(ctx, stream, strategy, bytes, opts)
}

/// `cuMemPrefetchAsync` of a managed range to the device (the `managed+prefetch` phase); GPU ms.
pub fn prefetch_to_device(stream: &Stream, ptr: DevicePtr, bytes: u64) -> Result<f64> {
    managed::prefetch_to_device(stream, ptr, bytes)
}

/// Returns the default pool's unused memory to the system (after a run).
pub fn trim_default_pool(ctx: &Context) -> Result<()> {
    pool::trim(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_complete_and_parses() {
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
        assert_eq!(Strategy::parse_list("all").unwrap().len(), REGISTRY.len());
        // Every key once, every variant once, and a variant's base is a strategy of its own.
        let mut keys: Vec<&str> = REGISTRY.iter().map(|i| i.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), REGISTRY.len());
        for info in REGISTRY {
            assert_eq!(info.strategy.info().key, info.key);
            if let Some(base) = info.variant_of {
                assert!(base.info().variant_of.is_none(), "{}", info.key);
            }
            // Read back from the key, and compared with it as a string.
            let back: Strategy = serde_json::from_str(&format!("\"{}\"", info.key)).unwrap();
            assert_eq!(back, info.strategy);
            assert!(info.strategy == info.key, "{}", info.key);
            assert!(info.key == info.strategy, "{}", info.key);
        }
        assert!(serde_json::from_str::<Strategy>("\"Device\"").is_err());
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
