//! Strategy `vmm`: the virtual memory management API. Reserve an address range, create physical
//! memory, map it, and grant access: four calls, each timed, the size rounded up to the
//! allocation granularity (usually 2 MiB). Frees in reverse order.

use std::sync::Arc;

use super::{Allocation, Step, Strategy, timed_step};
use crate::driver::{Context, DevicePtr, Result, cu, record_drop_failure, sys};

pub struct VmmAlloc {
    ctx: Arc<Context>,
    bytes: u64,
    size: u64,
    addr: DevicePtr,
    handle: Option<sys::CUmemGenericAllocationHandle>,
    mapped: bool,
    steps: Vec<Step>,
}

fn prop(ctx: &Context) -> sys::CUmemAllocationProp {
    sys::CUmemAllocationProp {
        type_: sys::CU_MEM_ALLOCATION_TYPE_PINNED,
        location: sys::CUmemLocation {
            type_: sys::CU_MEM_LOCATION_TYPE_DEVICE,
            id: ctx.device().ordinal(),
        },
        ..Default::default()
    }
}

/// The minimum allocation granularity of the device, in bytes.
pub fn granularity(ctx: &Context) -> Result<u64> {
    let p = prop(ctx);
    let mut g: usize = 0;
    // SAFETY: `g` is an out-pointer; `p` is a valid property struct.
    unsafe {
        cu!(
            ctx.driver(),
            cuMemGetAllocationGranularity(&mut g, &p, sys::CU_MEM_ALLOC_GRANULARITY_MINIMUM)
        )
    }?;
    Ok((g as u64).max(1))
}

impl VmmAlloc {
    pub fn new(ctx: &Arc<Context>, bytes: u64) -> Result<VmmAlloc> {
        let g = granularity(ctx)?;
        let size = bytes.div_ceil(g) * g;
        let mut a = VmmAlloc {
            ctx: ctx.clone(),
            bytes,
            size,
            addr: 0,
            handle: None,
            mapped: false,
            steps: Vec::new(),
        };
        let drv = ctx.driver();
        let mut addr: DevicePtr = 0;
        timed_step(ctx, "cuMemAddressReserve", &mut a.steps, || {
            // SAFETY: `addr` is an out-pointer; size is a multiple of the granularity.
            unsafe { cu!(drv, cuMemAddressReserve(&mut addr, size as usize, 0, 0, 0)) }
        })?;
        a.addr = addr;
        let p = prop(ctx);
        let mut handle: sys::CUmemGenericAllocationHandle = 0;
        timed_step(ctx, "cuMemCreate", &mut a.steps, || {
            // SAFETY: `handle` is an out-pointer; `p` describes pinned device memory.
            unsafe { cu!(drv, cuMemCreate(&mut handle, size as usize, &p, 0)) }
        })?;
        a.handle = Some(handle);
        timed_step(ctx, "cuMemMap", &mut a.steps, || {
            // SAFETY: maps the whole handle at offset 0 into the reserved range of the same size.
            unsafe { cu!(drv, cuMemMap(addr, size as usize, 0, handle, 0)) }
        })?;
        a.mapped = true;
        let desc = sys::CUmemAccessDesc {
            location: p.location,
            flags: sys::CU_MEM_ACCESS_FLAGS_PROT_READWRITE,
        };
        timed_step(ctx, "cuMemSetAccess", &mut a.steps, || {
            // SAFETY: the range is mapped; one descriptor is passed.
            unsafe { cu!(drv, cuMemSetAccess(addr, size as usize, &desc, 1)) }
        })?;
        Ok(a)
    }

    /// Unmaps, releases and frees the range, in that order; stops at the first failure.
    fn release(&mut self, steps: Option<&mut Vec<Step>>) -> Result<()> {
        let ctx = self.ctx.clone();
        let drv = ctx.driver();
        let mut scratch = Vec::new();
        let steps = steps.unwrap_or(&mut scratch);
        if self.mapped {
            self.mapped = false;
            let (addr, size) = (self.addr, self.size);
            // SAFETY: the range was mapped by `new` and is unmapped once.
            timed_step(&ctx, "cuMemUnmap", steps, || unsafe {
                cu!(drv, cuMemUnmap(addr, size as usize))
            })?;
        }
        if let Some(h) = self.handle.take() {
            // SAFETY: the handle came from cuMemCreate and is released once.
            timed_step(&ctx, "cuMemRelease", steps, || unsafe {
                cu!(drv, cuMemRelease(h))
            })?;
        }
        if self.addr != 0 {
            let (addr, size) = (std::mem::take(&mut self.addr), self.size);
            // SAFETY: the range came from cuMemAddressReserve and is freed once.
            timed_step(&ctx, "cuMemAddressFree", steps, || unsafe {
                cu!(drv, cuMemAddressFree(addr, size as usize))
            })?;
        }
        Ok(())
    }
}

impl Allocation for VmmAlloc {
    fn strategy(&self) -> Strategy {
        Strategy::Vmm
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn mapped_bytes(&self) -> u64 {
        self.size
    }
    fn device_ptr(&self) -> DevicePtr {
        self.addr
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        None
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(mut self: Box<Self>) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        self.release(Some(&mut steps))?;
        Ok(steps)
    }
}

impl Drop for VmmAlloc {
    fn drop(&mut self) {
        if let Err(e) = self.release(None) {
            record_drop_failure(format!("releasing a vmm range: {e}"));
        }
    }
}
