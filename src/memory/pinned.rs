//! Strategy `pinned`: `cuMemHostAlloc(DEVICEMAP)`. Page-locked host memory, populated and pinned
//! at allocation (roughly 0.3 s per GB on x86 hosts), reached by the GPU over PCIe on discrete
//! cards; the device address comes from `cuMemHostGetDevicePointer`.

use std::ffi::c_void;
use std::sync::Arc;

use super::{Allocation, Step, Strategy, timed_step};
use crate::driver::{Context, DevicePtr, Result, cu, record_drop_failure, sys};

pub struct PinnedAlloc {
    ctx: Arc<Context>,
    host: *mut c_void,
    dptr: DevicePtr,
    bytes: u64,
    steps: Vec<Step>,
}

impl PinnedAlloc {
    pub fn new(ctx: &Arc<Context>, bytes: u64) -> Result<PinnedAlloc> {
        let mut a = PinnedAlloc {
            ctx: ctx.clone(),
            host: std::ptr::null_mut(),
            dptr: 0,
            bytes,
            steps: Vec::new(),
        };
        let mut host: *mut c_void = std::ptr::null_mut();
        timed_step(ctx, "cuMemHostAlloc", &mut a.steps, || {
            // SAFETY: `host` is a valid out-pointer; DEVICEMAP is a valid flag.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemHostAlloc(&mut host, bytes as usize, sys::CU_MEMHOSTALLOC_DEVICEMAP)
                )
            }
        })?;
        a.host = host; // owned from here
        let mut dptr: DevicePtr = 0;
        timed_step(ctx, "cuMemHostGetDevicePointer", &mut a.steps, || {
            // SAFETY: `host` is a mapped pinned allocation; `dptr` is an out-pointer; flags must be 0.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemHostGetDevicePointer_v2(&mut dptr, host, 0)
                )
            }
        })?;
        a.dptr = dptr;
        Ok(a)
    }
}

impl Allocation for PinnedAlloc {
    fn strategy(&self) -> Strategy {
        Strategy::Pinned
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn device_ptr(&self) -> DevicePtr {
        self.dptr
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        // SAFETY: the pinned block is valid for `bytes` bytes while `self` lives; `&mut self`
        // makes the slice exclusive on the CPU side.
        Some(unsafe { std::slice::from_raw_parts_mut(self.host.cast::<u8>(), self.bytes as usize) })
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(mut self: Box<Self>) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        let host = std::mem::replace(&mut self.host, std::ptr::null_mut());
        timed_step(&self.ctx, "cuMemFreeHost", &mut steps, || {
            // SAFETY: `host` came from cuMemHostAlloc and is taken out of `self`.
            unsafe { cu!(self.ctx.driver(), cuMemFreeHost(host)) }
        })?;
        Ok(steps)
    }
}

impl Drop for PinnedAlloc {
    fn drop(&mut self) {
        let host = std::mem::replace(&mut self.host, std::ptr::null_mut());
        if !host.is_null() {
            // SAFETY: `host` came from cuMemHostAlloc and is freed once.
            if let Err(e) = unsafe { cu!(self.ctx.driver(), cuMemFreeHost(host)) } {
                record_drop_failure(format!("cuMemFreeHost: {e}"));
            }
        }
    }
}
