//! Strategies `managed`, `managed+prefetch`, `managed+advise`: `cuMemAllocManaged(GLOBAL)`. One
//! pointer for CPU and GPU; pages are populated on first touch and, on discrete GPUs, migrate by
//! page faults. `+advise` sets the preferred location to the device at allocation; `+prefetch`
//! moves the range to the device before the first GPU touch (a separate, timed phase).

use std::sync::Arc;

use super::{Allocation, Step, Strategy, timed_step};
use crate::driver::{Context, DevicePtr, Result, Stream, cu, record_drop_failure, sys};

pub struct ManagedAlloc {
    ctx: Arc<Context>,
    strategy: Strategy,
    ptr: DevicePtr,
    bytes: u64,
    steps: Vec<Step>,
}

fn device_location(ctx: &Context) -> sys::CUmemLocation {
    sys::CUmemLocation {
        type_: sys::CU_MEM_LOCATION_TYPE_DEVICE,
        id: ctx.device().ordinal(),
    }
}

impl ManagedAlloc {
    pub fn new(ctx: &Arc<Context>, strategy: Strategy, bytes: u64) -> Result<ManagedAlloc> {
        let mut a = ManagedAlloc {
            ctx: ctx.clone(),
            strategy,
            ptr: 0,
            bytes,
            steps: Vec::new(),
        };
        let mut ptr: DevicePtr = 0;
        timed_step(ctx, "cuMemAllocManaged", &mut a.steps, || {
            // SAFETY: `ptr` is a valid out-pointer; GLOBAL is a valid attach flag.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemAllocManaged(&mut ptr, bytes as usize, sys::CU_MEM_ATTACH_GLOBAL)
                )
            }
        })?;
        a.ptr = ptr; // owned from here: Drop frees it on the error paths below
        if strategy == Strategy::ManagedAdvise {
            let loc = device_location(ctx);
            timed_step(ctx, "cuMemAdvise", &mut a.steps, || {
                // SAFETY: the range is the managed allocation just made.
                unsafe {
                    cu!(
                        ctx.driver(),
                        cuMemAdvise_v2(
                            ptr,
                            bytes as usize,
                            sys::CU_MEM_ADVISE_SET_PREFERRED_LOCATION,
                            loc
                        )
                    )
                }
            })?;
        }
        Ok(a)
    }
}

/// `cuMemPrefetchAsync` to the stream's device, timed with events.
pub fn prefetch_to_device(stream: &Stream, ptr: DevicePtr, bytes: u64) -> Result<f64> {
    let ctx = stream.context();
    let loc = device_location(ctx);
    Ok(stream
        .timed(|s| {
            // SAFETY: the caller passes a managed range it owns; the stream is live.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemPrefetchAsync_v2(ptr, bytes as usize, loc, 0, s.raw())
                )
            }
        })?
        .0)
}

impl Allocation for ManagedAlloc {
    fn strategy(&self) -> Strategy {
        self.strategy
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn device_ptr(&self) -> DevicePtr {
        self.ptr
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        // SAFETY: managed memory is valid for `bytes` bytes at the same address on the host while
        // `self` lives; `&mut self` makes the slice exclusive on the CPU side. Callers synchronise
        // the GPU before touching it (the sweep does).
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.bytes as usize) })
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(mut self: Box<Self>) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        let ptr = std::mem::take(&mut self.ptr);
        timed_step(&self.ctx, "cuMemFree", &mut steps, || {
            // SAFETY: `ptr` came from cuMemAllocManaged and is taken out of `self`.
            unsafe { cu!(self.ctx.driver(), cuMemFree_v2(ptr)) }
        })?;
        Ok(steps)
    }
}

impl Drop for ManagedAlloc {
    fn drop(&mut self) {
        let ptr = std::mem::take(&mut self.ptr);
        if ptr != 0 {
            // SAFETY: `ptr` came from cuMemAllocManaged and is freed once.
            if let Err(e) = unsafe { cu!(self.ctx.driver(), cuMemFree_v2(ptr)) } {
                record_drop_failure(format!("cuMemFree (managed) of {ptr:#x}: {e}"));
            }
        }
    }
}
