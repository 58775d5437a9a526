//! Strategy `pool`: `cuMemAllocAsync` from the device's default memory pool. The pool's release
//! threshold decides whether freed memory goes back to the system at the next synchronise (0, the
//! default) or stays cached in the pool for the next allocation (`--pool-release-threshold`).

use std::sync::Arc;

use super::{Allocation, Step, Strategy, timed_step};
use crate::driver::{Context, DevicePtr, Result, Stream, cu, record_drop_failure, sys};

pub struct PoolAlloc {
    ctx: Arc<Context>,
    stream: Arc<Stream>,
    ptr: DevicePtr,
    bytes: u64,
    steps: Vec<Step>,
}

fn default_pool(ctx: &Context) -> Result<sys::CUmemoryPool> {
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: `pool` is a valid out-pointer; the device handle is live.
    unsafe {
        cu!(
            ctx.driver(),
            cuDeviceGetDefaultMemPool(&mut pool, ctx.device().handle())
        )
    }?;
    Ok(pool)
}

impl PoolAlloc {
    pub fn new(
        ctx: &Arc<Context>,
        stream: &Arc<Stream>,
        bytes: u64,
        release_threshold: u64,
    ) -> Result<PoolAlloc> {
        let mut steps = Vec::new();
        let pool = default_pool(ctx)?;
        let mut threshold = release_threshold;
        // SAFETY: the attribute takes a pointer to a cuuint64_t, which `threshold` is.
        unsafe {
            cu!(
                ctx.driver(),
                cuMemPoolSetAttribute(
                    pool,
                    sys::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                    (&mut threshold as *mut u64).cast()
                )
            )
        }?;
        let mut a = PoolAlloc {
            ctx: ctx.clone(),
            stream: stream.clone(),
            ptr: 0,
            bytes,
            steps: Vec::new(),
        };
        let mut ptr: DevicePtr = 0;
        let r = timed_step(ctx, "cuMemAllocAsync", &mut steps, || {
            // SAFETY: `ptr` is a valid out-pointer; the stream is live.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemAllocAsync(&mut ptr, bytes as usize, stream.raw())
                )
            }
        });
        a.ptr = ptr;
        a.steps = steps;
        r?;
        Ok(a)
    }
}

/// `cuMemPoolTrimTo(default pool, 0)`.
pub fn trim(ctx: &Context) -> Result<()> {
    let pool = default_pool(ctx)?;
    // SAFETY: the pool handle is the device's default pool.
    unsafe { cu!(ctx.driver(), cuMemPoolTrimTo(pool, 0)) }
}

impl Allocation for PoolAlloc {
    fn strategy(&self) -> Strategy {
        Strategy::Pool
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
        let stream = self.stream.clone();
        timed_step(&self.ctx.clone(), "cuMemFreeAsync", &mut steps, || {
            // SAFETY: `ptr` came from cuMemAllocAsync and is taken out of `self`.
            unsafe { cu!(self.ctx.driver(), cuMemFreeAsync(ptr, stream.raw())) }?;
            stream.synchronize()
        })?;
        Ok(steps)
    }
}

impl Drop for PoolAlloc {
    fn drop(&mut self) {
        let ptr = std::mem::take(&mut self.ptr);
        if ptr != 0 {
            // SAFETY: `ptr` came from cuMemAllocAsync and is freed once.
            let r = unsafe { cu!(self.ctx.driver(), cuMemFreeAsync(ptr, self.stream.raw())) }
                .and_then(|_| self.stream.synchronize());
            if let Err(e) = r {
                record_drop_failure(format!("cuMemFreeAsync of {ptr:#x}: {e}"));
            }
        }
    }
}
