//! Strategy `registered`: memory the process already has (an anonymous `mmap`, or a file mapping
//! with `--file`), page-locked and mapped for the GPU with `cuMemHostRegister`. The mmap and the
//! registration are timed apart: the mapping is free, the registration pins and populates every
//! page. File mappings are mapped and registered read-only (`CU_MEMHOSTREGISTER_READ_ONLY`), so
//! their pages stay the page cache's pages: that is what the cache experiment reads cold and warm.
//!
//! Read-only registration is not everywhere: the device says so in
//! `CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED`, which reads 0 on some drivers
//! (antirez/ds4 issue #791, RTX PRO 6000, driver 595.84) and B300 refused it
//! (vllm-project/vllm-omni PR #6240). Without it the file is mapped private and registered
//! plainly: pinning a private mapping for writing copies each page out of the page cache
//! (copy-on-write), so that mode measures a copy, and [`RegisterMode`] says which one ran.
//! `CUDA_ERROR_NOT_SUPPORTED` from `cuMemHostRegister` (GB10 in antirez/ds4 PR #158) is returned
//! as the driver error it is: callers skip with that reason.

use std::ffi::c_void;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use memmap2::{Mmap, MmapMut};

use super::{Allocation, Step, Strategy, timed_step};
use crate::driver::{Context, DevicePtr, Error, Result, cu, record_drop_failure, sys};

/// How a range was registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterMode {
    /// An anonymous mapping, registered read-write.
    Anonymous,
    /// A file mapping registered with `CU_MEMHOSTREGISTER_READ_ONLY`: the page cache's own pages.
    ReadOnly,
    /// A private file mapping registered plainly: pinned pages are copies of the file's.
    PrivateCopy,
}

impl RegisterMode {
    pub fn key(self) -> &'static str {
        match self {
            RegisterMode::Anonymous => "anonymous",
            RegisterMode::ReadOnly => "read-only",
            RegisterMode::PrivateCopy => "private-copy",
        }
    }
}

/// Whether the device takes `CU_MEMHOSTREGISTER_READ_ONLY` (an attribute the driver does not
/// know counts as no).
fn read_only_supported(ctx: &Context) -> bool {
    ctx.device()
        .attribute(sys::CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED)
        .is_ok_and(|v| v == 1)
}

enum Map {
    Anon(MmapMut),
    File(Mmap),
    /// A private (copy-on-write) mapping of a file.
    FileCopy(MmapMut),
}

impl Map {
    fn ptr(&self) -> *mut c_void {
        match self {
            Map::Anon(m) | Map::FileCopy(m) => m.as_ptr() as *mut c_void,
            Map::File(m) => m.as_ptr() as *mut c_void,
        }
    }
}

pub struct RegisteredAlloc {
    ctx: Arc<Context>,
    map: Option<Map>,
    registered: bool,
    dptr: DevicePtr,
    bytes: u64,
    steps: Vec<Step>,
    mode: RegisterMode,
}

/// Turns an `mmap` failure into the layer's error; ENOMEM counts as out of memory.
pub(super) fn mmap_error(call: &'static str, bytes: u64, e: std::io::Error) -> Error {
    Error::Os {
        call,
        message: format!("{call} of {bytes} bytes: {e}"),
        out_of_memory: e.raw_os_error() == Some(libc::ENOMEM)
            || e.kind() == std::io::ErrorKind::OutOfMemory,
    }
}

impl RegisteredAlloc {
    pub fn new(ctx: &Arc<Context>, bytes: u64, file: Option<&Path>) -> Result<RegisteredAlloc> {
        let mut a = RegisteredAlloc {
            ctx: ctx.clone(),
            map: None,
            registered: false,
            dptr: 0,
            bytes,
            steps: Vec::new(),
            mode: RegisterMode::Anonymous,
        };
        let Some(path) = file else {
            let t = Instant::now();
            let m = MmapMut::map_anon(bytes as usize).map_err(|e| mmap_error("mmap", bytes, e))?;
            a.push_mmap_step(t);
            a.register(Map::Anon(m), RegisterMode::Anonymous)?;
            return a.finish();
        };
        let f = std::fs::File::open(path).map_err(|e| Error::Os {
            call: "open",
            message: format!("{}: {e}", path.display()),
            out_of_memory: false,
        })?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < bytes {
            return Err(Error::Invalid(format!(
                "{} holds {len} bytes, fewer than the {bytes} requested",
                path.display()
            )));
        }
        if read_only_supported(ctx) {
            let t = Instant::now();
            // SAFETY: the file is mapped read-only; the tool never truncates it while mapped
            // (the cache experiment owns its temporary files).
            let m = unsafe { memmap2::MmapOptions::new().len(bytes as usize).map(&f) }
                .map_err(|e| mmap_error("mmap", bytes, e))?;
            a.push_mmap_step(t);
            match a.register(Map::File(m), RegisterMode::ReadOnly) {
                Ok(()) => return a.finish(),
                // The attribute said yes and the call says no: fall back below.
                Err(e) if e.is_not_supported() => a.map = None,
                Err(e) => return Err(e),
            }
        }
        let t = Instant::now();
        // SAFETY: a private mapping: writes (the kernel's copy-on-write when pinning) never reach
        // the file; the tool never truncates the file while mapped.
        let m = unsafe { memmap2::MmapOptions::new().len(bytes as usize).map_copy(&f) }
            .map_err(|e| mmap_error("mmap", bytes, e))?;
        a.push_mmap_step(t);
        a.register(Map::FileCopy(m), RegisterMode::PrivateCopy)?;
        a.finish()
    }

    fn push_mmap_step(&mut self, t: Instant) {
        self.steps.push(Step {
            name: "mmap",
            ms: t.elapsed().as_secs_f64() * 1e3,
        });
    }

    /// Registers `map` in `mode` (timed as the `cuMemHostRegister` step) and keeps it.
    fn register(&mut self, map: Map, mode: RegisterMode) -> Result<()> {
        let host = map.ptr();
        let bytes = self.bytes;
        self.map = Some(map);
        let flags = sys::CU_MEMHOSTREGISTER_DEVICEMAP
            | if mode == RegisterMode::ReadOnly {
                sys::CU_MEMHOSTREGISTER_READ_ONLY
            } else {
                0
            };
        let ctx = self.ctx.clone();
        timed_step(&ctx, "cuMemHostRegister", &mut self.steps, || {
            // SAFETY: `host` is a live mapping of `bytes` bytes owned by `self` and outliving the
            // registration (Drop unregisters before unmapping).
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemHostRegister_v2(host, bytes as usize, flags)
                )
            }
        })?;
        self.registered = true;
        self.mode = mode;
        Ok(())
    }

    /// The device address of the registered range.
    fn finish(mut self) -> Result<RegisteredAlloc> {
        let Some(host) = self.map.as_ref().map(Map::ptr) else {
            return Err(Error::Invalid("no mapping was registered".into()));
        };
        let mut dptr: DevicePtr = 0;
        // SAFETY: `host` is registered with DEVICEMAP; `dptr` is an out-pointer; flags must be 0.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemHostGetDevicePointer_v2(&mut dptr, host, 0)
            )
        }?;
        self.dptr = dptr;
        Ok(self)
    }

    fn unregister(&mut self) -> Result<()> {
        if self.registered {
            self.registered = false;
            if let Some(m) = &self.map {
                // SAFETY: the range was registered by `new` and is unregistered once.
                unsafe { cu!(self.ctx.driver(), cuMemHostUnregister(m.ptr())) }?;
            }
        }
        Ok(())
    }
}

impl Allocation for RegisteredAlloc {
    fn strategy(&self) -> Strategy {
        Strategy::Registered
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn device_ptr(&self) -> DevicePtr {
        self.dptr
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        match self.map.as_mut() {
            Some(Map::Anon(m)) => Some(&mut m[..]),
            _ => None,
        }
    }
    fn writable(&self) -> bool {
        matches!(self.map, Some(Map::Anon(_)))
    }
    fn registration_mode(&self) -> Option<&'static str> {
        Some(self.mode.key())
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(mut self: Box<Self>) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        timed_step(&self.ctx.clone(), "cuMemHostUnregister", &mut steps, || {
            self.unregister()
        })?;
        let t = Instant::now();
        self.map = None;
        steps.push(Step {
            name: "munmap",
            ms: t.elapsed().as_secs_f64() * 1e3,
        });
        Ok(steps)
    }
}

impl Drop for RegisteredAlloc {
    fn drop(&mut self) {
        if let Err(e) = self.unregister() {
            record_drop_failure(format!("cuMemHostUnregister: {e}"));
        }
    }
}
