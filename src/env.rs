//! The environment recorded in every result file and shown by `info`: the tool, the host, the
//! driver, and each device with its attributes and memory architecture. Collected without a GPU
//! too (then `devices` is empty and `no_device_reason` says why).
//!
//! Below the experiments (the planner reads it too, and must not import `experiments`). May
//! import: `driver`, `host`, `memory`.

use serde::{Deserialize, Serialize};

use crate::driver::{Context, DeviceAttributes, Driver};
use crate::host::{HostFacts, MemInfo};
use crate::memory::arch::{MemoryArchitecture, UsableEstimate};

/// One device as seen at the start of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceInfo {
    pub ordinal: i32,
    pub name: String,
    pub uuid: String,
    pub pci_bus_id: String,
    pub compute_capability: String,
    pub multiprocessors: i64,
    pub total_bytes: u64,
    /// `cuMemGetInfo` (free, total).
    pub cumemgetinfo_free_bytes: u64,
    pub cumemgetinfo_total_bytes: u64,
    pub architecture: MemoryArchitecture,
    pub attributes: DeviceAttributes,
    pub usable: UsableEstimate,
}

/// The environment of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    pub tool_version: String,
    pub host: HostFacts,
    pub meminfo: Option<MemInfo>,
    pub driver_version: Option<String>,
    pub driver_library: Option<String>,
    pub devices: Vec<DeviceInfo>,
    pub no_device_reason: Option<String>,
}

impl Environment {
    /// The host part only.
    pub fn host_only(reason: String) -> Environment {
        Environment {
            tool_version: env!("CARGO_PKG_VERSION").into(),
            host: HostFacts::read(),
            meminfo: MemInfo::read().ok(),
            driver_version: None,
            driver_library: None,
            devices: Vec::new(),
            no_device_reason: Some(reason),
        }
    }

    /// Host, driver, and the listed devices (all when `ordinals` is `None`).
    pub fn collect(ordinals: Option<&[i32]>) -> Environment {
        let drv = match Driver::load() {
            Ok(d) => d,
            Err(e) => return Environment::host_only(e.to_string()),
        };
        let mut env = Environment::host_only(String::new());
        env.no_device_reason = None;
        env.driver_version = Some(drv.version_string());
        env.driver_library = Some(drv.library_path().to_string());
        let count = match drv.device_count() {
            Ok(n) => n,
            Err(e) => {
                env.no_device_reason = Some(format!("cuDeviceGetCount failed: {e}"));
                return env;
            }
        };
        if count == 0 {
            env.no_device_reason = Some("the driver loaded but reports no CUDA device".into());
        }
        let all: Vec<i32> = (0..count).collect();
        for &i in ordinals.unwrap_or(&all) {
            match device_info(&drv, i, env.meminfo.as_ref()) {
                Ok(d) => env.devices.push(d),
                Err(e) => env.no_device_reason = Some(format!("device {i}: {e}")),
            }
        }
        env
    }
}

/// Reads one device (its primary context is retained for `cuMemGetInfo`, then released).
pub fn device_info(
    drv: &Driver,
    ordinal: i32,
    meminfo: Option<&MemInfo>,
) -> crate::driver::Result<DeviceInfo> {
    let dev = drv.device(ordinal)?;
    let ctx = Context::new(&dev)?;
    let (free, total) = ctx.mem_info()?;
    let attributes = dev.attributes();
    let architecture = MemoryArchitecture::classify(&attributes);
    let (maj, min) = dev.compute_capability()?;
    let usable = UsableEstimate::new(architecture, free, meminfo.unwrap_or(&MemInfo::default()));
    Ok(DeviceInfo {
        ordinal,
        name: dev.name()?,
        uuid: dev.uuid().unwrap_or_default(),
        pci_bus_id: dev.pci_bus_id().unwrap_or_default(),
        compute_capability: format!("{maj}.{min}"),
        multiprocessors: attributes.get("multiprocessor_count"),
        total_bytes: dev.total_mem()?,
        cumemgetinfo_free_bytes: free,
        cumemgetinfo_total_bytes: total,
        architecture,
        attributes,
        usable,
    })
}
