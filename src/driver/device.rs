//! Devices and their attributes. The attribute table is the one place that lists which
//! `CUdevice_attribute`s the tool reads, with the key used in output and what each one means.

use serde::Serialize;

use super::{Driver, Result, cu, sys};

/// One attribute the tool reads: output key, driver enum value, and meaning.
#[derive(Debug, Clone, Copy)]
pub struct Attribute {
    pub key: &'static str,
    pub id: sys::CUdevice_attribute,
    pub meaning: &'static str,
}

/// Every device attribute that `info` shows and the rest of the tool relies on.
pub const ATTRIBUTES: &[Attribute] = &[
    Attribute {
        key: "integrated",
        id: sys::CU_DEVICE_ATTRIBUTE_INTEGRATED,
        meaning: "GPU shares the host's memory (GB10, Jetson)",
    },
    Attribute {
        key: "pageable_memory_access",
        id: sys::CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS,
        meaning: "GPU can read plain malloc/mmap memory",
    },
    Attribute {
        key: "pageable_memory_access_uses_host_page_tables",
        id: sys::CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES,
        meaning: "through the host's page tables (ATS, hardware coherence)",
    },
    Attribute {
        key: "concurrent_managed_access",
        id: sys::CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS,
        meaning: "CPU and GPU may touch managed memory at the same time",
    },
    Attribute {
        key: "host_register_supported",
        id: sys::CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED,
        meaning: "cuMemHostRegister works",
    },
    Attribute {
        key: "read_only_host_register_supported",
        id: sys::CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED,
        meaning: "cuMemHostRegister takes READ_ONLY (file mappings stay page-cache pages)",
    },
    Attribute {
        key: "can_use_host_pointer_for_registered_mem",
        id: sys::CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM,
        meaning: "registered memory has the same address on the GPU",
    },
    Attribute {
        key: "direct_managed_mem_access_from_host",
        id: sys::CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST,
        meaning: "CPU reaches managed memory without migration",
    },
    Attribute {
        key: "host_native_atomic_supported",
        id: sys::CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED,
        meaning: "atomics between CPU and GPU are native",
    },
    Attribute {
        key: "memory_pools_supported",
        id: sys::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED,
        meaning: "cuMemAllocAsync and memory pools work",
    },
    Attribute {
        key: "virtual_memory_management_supported",
        id: sys::CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
        meaning: "cuMemCreate/cuMemMap work",
    },
    Attribute {
        key: "managed_memory",
        id: sys::CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY,
        meaning: "cuMemAllocManaged works",
    },
    Attribute {
        key: "can_map_host_memory",
        id: sys::CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY,
        meaning: "pinned host memory can be mapped into the GPU",
    },
    Attribute {
        key: "multiprocessor_count",
        id: sys::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        meaning: "streaming multiprocessors",
    },
    Attribute {
        key: "compute_capability_major",
        id: sys::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
        meaning: "compute capability, major",
    },
    Attribute {
        key: "compute_capability_minor",
        id: sys::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
        meaning: "compute capability, minor",
    },
    Attribute {
        key: "global_memory_bus_width_bits",
        id: sys::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH,
        meaning: "memory bus width in bits",
    },
    Attribute {
        key: "memory_clock_rate_khz",
        id: sys::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
        meaning: "peak memory clock in kHz",
    },
    Attribute {
        key: "l2_cache_bytes",
        id: sys::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
        meaning: "L2 cache size in bytes",
    },
    Attribute {
        key: "pci_bus_id",
        id: sys::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID,
        meaning: "PCI bus",
    },
];

/// The attributes of one device by key; an attribute the driver does not know is `None`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct DeviceAttributes {
    pub values: std::collections::BTreeMap<String, i64>,
}

impl DeviceAttributes {
    /// The value of an attribute by key, 0 when unknown.
    pub fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(0)
    }

    /// True when the attribute is present and non-zero.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key) != 0
    }

    /// Builds a set from pairs (tests and fixtures).
    pub fn from_pairs(pairs: &[(&str, i64)]) -> Self {
        DeviceAttributes {
            values: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }
}

/// A CUDA device (an ordinal and its handle).
#[derive(Clone)]
pub struct Device {
    drv: Driver,
    handle: sys::CUdevice,
    ordinal: i32,
}

impl Device {
    pub(super) fn new(drv: Driver, ordinal: i32) -> Result<Device> {
        let mut handle: sys::CUdevice = 0;
        // SAFETY: `handle` is a valid out-pointer; the ordinal is checked by the driver.
        unsafe { cu!(&drv, cuDeviceGet(&mut handle, ordinal)) }?;
        Ok(Device {
            drv,
            handle,
            ordinal,
        })
    }

    pub fn driver(&self) -> &Driver {
        &self.drv
    }

    pub(crate) fn handle(&self) -> sys::CUdevice {
        self.handle
    }

    pub fn ordinal(&self) -> i32 {
        self.ordinal
    }

    /// The marketing name, for example "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> Result<String> {
        let mut buf = [0 as std::os::raw::c_char; 256];
        // SAFETY: the buffer is valid for the length passed.
        unsafe {
            cu!(
                &self.drv,
                cuDeviceGetName(buf.as_mut_ptr(), buf.len() as i32, self.handle)
            )
        }?;
        let bytes: Vec<u8> = buf
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Total memory the driver reports for the device, in bytes.
    pub fn total_mem(&self) -> Result<u64> {
        let mut n: usize = 0;
        // SAFETY: `n` is a valid out-pointer.
        unsafe { cu!(&self.drv, cuDeviceTotalMem_v2(&mut n, self.handle)) }?;
        Ok(n as u64)
    }

    /// The device UUID in the `GPU-xxxxxxxx-...` form nvidia-smi prints.
    pub fn uuid(&self) -> Result<String> {
        let mut u = sys::CUuuid::default();
        // SAFETY: `u` is a valid out-pointer.
        unsafe { cu!(&self.drv, cuDeviceGetUuid_v2(&mut u, self.handle)) }?;
        let b: Vec<u8> = u.bytes.iter().map(|c| *c as u8).collect();
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(format!(
            "GPU-{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ))
    }

    /// PCI bus id, for example `0000:01:00.0`.
    pub fn pci_bus_id(&self) -> Result<String> {
        let mut buf = [0 as std::os::raw::c_char; 64];
        // SAFETY: the buffer is valid for the length passed.
        unsafe {
            cu!(
                &self.drv,
                cuDeviceGetPCIBusId(buf.as_mut_ptr(), buf.len() as i32, self.handle)
            )
        }?;
        let bytes: Vec<u8> = buf
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// One attribute.
    pub fn attribute(&self, id: sys::CUdevice_attribute) -> Result<i64> {
        let mut v = 0i32;
        // SAFETY: `v` is a valid out-pointer.
        unsafe { cu!(&self.drv, cuDeviceGetAttribute(&mut v, id, self.handle)) }?;
        Ok(v as i64)
    }

    /// Every attribute of [`ATTRIBUTES`]; one the driver rejects (too old) is left out.
    pub fn attributes(&self) -> DeviceAttributes {
        let mut a = DeviceAttributes::default();
        for attr in ATTRIBUTES {
            if let Ok(v) = self.attribute(attr.id) {
                a.values.insert(attr.key.to_string(), v);
            }
        }
        a
    }

    /// `(major, minor)`.
    pub fn compute_capability(&self) -> Result<(i64, i64)> {
        Ok((
            self.attribute(sys::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            self.attribute(sys::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        ))
    }
}
