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

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::{Allocation, Step, Steps, Strategy};
use crate::driver::{Context, DeviceSpan, Error, HostMap, Registration, Result, sys};

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

pub struct RegisteredAlloc {
    ctx: Arc<Context>,
    reg: Registration,
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

/// Maps with `map`, timed as the `mmap` step.
fn timed_map(
    steps: &mut Vec<Step>,
    bytes: u64,
    map: impl FnOnce() -> std::io::Result<HostMap>,
) -> Result<HostMap> {
    let t = Instant::now();
    let m = map().map_err(|e| mmap_error("mmap", bytes, e))?;
    steps.push(Step {
        name: "mmap",
        ms: t.elapsed().as_secs_f64() * 1e3,
    });
    Ok(m)
}

impl RegisteredAlloc {
    pub fn new(ctx: &Arc<Context>, bytes: u64, file: Option<&Path>) -> Result<RegisteredAlloc> {
        let mut t = Steps::new(ctx);
        let Some(path) = file else {
            let m = timed_map(&mut t.steps, bytes, || HostMap::anonymous(bytes))?;
            let reg = Registration::register(ctx, m, false, &mut t)?;
            return Ok(Self::made(ctx, reg, bytes, t, RegisterMode::Anonymous));
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
            let m = timed_map(&mut t.steps, bytes, || HostMap::file_read_only(&f, bytes))?;
            match Registration::register(ctx, m, true, &mut t) {
                Ok(reg) => return Ok(Self::made(ctx, reg, bytes, t, RegisterMode::ReadOnly)),
                // The attribute said yes and the call says no: fall back below.
                Err(e) if e.is_not_supported() => {}
                Err(e) => return Err(e),
            }
        }
        let m = timed_map(&mut t.steps, bytes, || HostMap::file_private(&f, bytes))?;
        let reg = Registration::register(ctx, m, false, &mut t)?;
        Ok(Self::made(ctx, reg, bytes, t, RegisterMode::PrivateCopy))
    }

    fn made(
        ctx: &Arc<Context>,
        reg: Registration,
        bytes: u64,
        t: Steps<'_>,
        mode: RegisterMode,
    ) -> RegisteredAlloc {
        RegisteredAlloc {
            ctx: ctx.clone(),
            reg,
            bytes,
            steps: t.steps,
            mode,
        }
    }
}

impl Allocation for RegisteredAlloc {
    fn strategy(&self) -> Strategy {
        Strategy::Registered
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn span(&self) -> DeviceSpan<'_> {
        self.reg.span()
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        if self.mode == RegisterMode::Anonymous {
            self.reg.host_slice()
        } else {
            None
        }
    }
    fn writable(&self) -> bool {
        self.mode == RegisterMode::Anonymous
    }
    fn registration_mode(&self) -> Option<&'static str> {
        Some(self.mode.key())
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(self: Box<Self>) -> Result<Vec<Step>> {
        let RegisteredAlloc { ctx, reg, .. } = *self;
        let mut t = Steps::new(&ctx);
        let map = reg.unregister(&mut t)?;
        let started = Instant::now();
        drop(map);
        t.steps.push(Step {
            name: "munmap",
            ms: started.elapsed().as_secs_f64() * 1e3,
        });
        Ok(t.steps)
    }
}
