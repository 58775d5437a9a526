//! Strategy `registered`: memory the process already has (an anonymous `mmap`, or a file mapping
//! with `--file`), page-locked and mapped for the GPU with `cuMemHostRegister`. The mmap and the
//! registration are timed apart: the mapping is free, the registration pins and populates every
//! page. File mappings are mapped and registered read-only (`CU_MEMHOSTREGISTER_READ_ONLY`), so
//! their pages stay the page cache's pages: that is what the cache experiment reads cold and warm.

use std::ffi::c_void;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use memmap2::{Mmap, MmapMut};

use super::{Allocation, Step, Strategy, timed_step};
use crate::driver::{Context, DevicePtr, Error, Result, cu, record_drop_failure, sys};

enum Map {
    Anon(MmapMut),
    File(Mmap),
}

impl Map {
    fn ptr(&self) -> *mut c_void {
        match self {
            Map::Anon(m) => m.as_ptr() as *mut c_void,
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
        };
        let t = Instant::now();
        let map = match file {
            None => Map::Anon(
                MmapMut::map_anon(bytes as usize).map_err(|e| mmap_error("mmap", bytes, e))?,
            ),
            Some(path) => {
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
                // SAFETY: the file is mapped read-only; the tool never truncates it while mapped
                // (the cache experiment owns its temporary files).
                let m = unsafe { memmap2::MmapOptions::new().len(bytes as usize).map(&f) }
                    .map_err(|e| mmap_error("mmap", bytes, e))?;
                Map::File(m)
            }
        };
        a.steps.push(Step {
            name: "mmap",
            ms: t.elapsed().as_secs_f64() * 1e3,
        });
        let read_only = matches!(map, Map::File(_));
        let host = map.ptr();
        a.map = Some(map);
        let flags = sys::CU_MEMHOSTREGISTER_DEVICEMAP
            | if read_only {
                sys::CU_MEMHOSTREGISTER_READ_ONLY
            } else {
                0
            };
        timed_step(ctx, "cuMemHostRegister", &mut a.steps, || {
            // SAFETY: `host` is a live mapping of `bytes` bytes owned by `a` and outliving the
            // registration (Drop unregisters before unmapping).
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemHostRegister_v2(host, bytes as usize, flags)
                )
            }
        })?;
        a.registered = true;
        let mut dptr: DevicePtr = 0;
        // SAFETY: `host` is registered with DEVICEMAP; `dptr` is an out-pointer; flags must be 0.
        unsafe {
            cu!(
                ctx.driver(),
                cuMemHostGetDevicePointer_v2(&mut dptr, host, 0)
            )
        }?;
        a.dptr = dptr;
        Ok(a)
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
