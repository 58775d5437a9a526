//! Strategy `device`: `cuMemAlloc`. Not CPU-accessible; on a discrete GPU it takes card memory at
//! allocation; on GB10 it populates system memory at allocation.

use std::sync::Arc;

use super::{Allocation, Step, Strategy, timed_step};
use crate::driver::{Context, DevicePtr, Result, cu, record_drop_failure};

pub struct DeviceAlloc {
    ctx: Arc<Context>,
    ptr: DevicePtr,
    bytes: u64,
    steps: Vec<Step>,
}

impl DeviceAlloc {
    pub fn new(ctx: &Arc<Context>, bytes: u64) -> Result<DeviceAlloc> {
        let mut steps = Vec::new();
        let mut ptr: DevicePtr = 0;
        timed_step(ctx, "cuMemAlloc", &mut steps, || {
            // SAFETY: `ptr` is a valid out-pointer; the context is current.
            unsafe { cu!(ctx.driver(), cuMemAlloc_v2(&mut ptr, bytes as usize)) }
        })
        .inspect_err(|_| free_raw(ctx, ptr))?;
        Ok(DeviceAlloc {
            ctx: ctx.clone(),
            ptr,
            bytes,
            steps,
        })
    }
}

fn free_raw(ctx: &Context, ptr: DevicePtr) {
    if ptr != 0 {
        // SAFETY: `ptr` came from cuMemAlloc and is freed once.
        if let Err(e) = unsafe { cu!(ctx.driver(), cuMemFree_v2(ptr)) } {
            record_drop_failure(format!("cuMemFree of {ptr:#x}: {e}"));
        }
    }
}

impl Allocation for DeviceAlloc {
    fn strategy(&self) -> Strategy {
        Strategy::Device
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn device_ptr(&self) -> DevicePtr {
        self.ptr
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        None
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(mut self: Box<Self>) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        let ptr = std::mem::take(&mut self.ptr);
        timed_step(&self.ctx, "cuMemFree", &mut steps, || {
            // SAFETY: `ptr` came from cuMemAlloc; it is taken out of `self` so Drop won't free it again.
            unsafe { cu!(self.ctx.driver(), cuMemFree_v2(ptr)) }
        })?;
        Ok(steps)
    }
}

impl Drop for DeviceAlloc {
    fn drop(&mut self) {
        free_raw(&self.ctx, std::mem::take(&mut self.ptr));
    }
}
