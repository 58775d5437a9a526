//! The virtual memory management calls as one RAII handle, [`VmmBuffer`]: reserve an address
//! range, create physical memory, map it, grant access (four steps, each timed through the
//! caller's [`StepTimer`]), the size rounded up to the allocation granularity; freed in reverse
//! order. Apart from `alloc.rs` only to keep each file to one concern.
//!
//! Imports: the rest of the driver layer.

use std::sync::Arc;

use super::{Context, DevicePtr, DeviceSpan, Result, StepTimer, cu, record_drop_failure, sys};

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

/// Device memory made with `cuMemCreate` and mapped at a reserved address range.
pub struct VmmBuffer {
    ctx: Arc<Context>,
    /// Bytes requested.
    bytes: u64,
    /// Bytes reserved, created and mapped (`bytes` rounded up to the granularity).
    size: usize,
    addr: DevicePtr,
    handle: Option<sys::CUmemGenericAllocationHandle>,
    mapped: bool,
}

impl VmmBuffer {
    /// `cuMemAddressReserve`, `cuMemCreate`, `cuMemMap`, `cuMemSetAccess`: four steps.
    pub fn alloc(ctx: &Arc<Context>, bytes: u64, t: &mut impl StepTimer) -> Result<VmmBuffer> {
        let g = granularity(ctx)?;
        let size = usize::try_from(bytes.div_ceil(g).saturating_mul(g)).map_err(|_| {
            super::Error::Invalid(format!(
                "{bytes} bytes do not fit this platform's address space"
            ))
        })?;
        let mut b = VmmBuffer {
            ctx: ctx.clone(),
            bytes,
            size,
            addr: 0,
            handle: None,
            mapped: false,
        };
        let drv = ctx.driver();
        let mut addr: DevicePtr = 0;
        t.step("cuMemAddressReserve", || {
            // SAFETY: `addr` is an out-pointer; size is a multiple of the granularity.
            unsafe { cu!(drv, cuMemAddressReserve(&mut addr, size, 0, 0, 0)) }
        })?;
        b.addr = addr;
        let p = prop(ctx);
        let mut handle: sys::CUmemGenericAllocationHandle = 0;
        t.step("cuMemCreate", || {
            // SAFETY: `handle` is an out-pointer; `p` describes pinned device memory.
            unsafe { cu!(drv, cuMemCreate(&mut handle, size, &p, 0)) }
        })?;
        b.handle = Some(handle);
        t.step("cuMemMap", || {
            // SAFETY: maps the whole handle at offset 0 into the reserved range of the same size.
            unsafe { cu!(drv, cuMemMap(addr, size, 0, handle, 0)) }
        })?;
        b.mapped = true;
        let desc = sys::CUmemAccessDesc {
            location: p.location,
            flags: sys::CU_MEM_ACCESS_FLAGS_PROT_READWRITE,
        };
        t.step("cuMemSetAccess", || {
            // SAFETY: the range is mapped; one descriptor is passed.
            unsafe { cu!(drv, cuMemSetAccess(addr, size, &desc, 1)) }
        })?;
        Ok(b)
    }

    /// Bytes mapped (the request rounded up to the granularity).
    pub fn mapped_bytes(&self) -> u64 {
        self.size as u64
    }

    /// The bytes requested.
    pub fn span(&self) -> DeviceSpan<'_> {
        // SAFETY: `alloc` returned only after mapping `size >= bytes` bytes at `addr` with
        // read-write access; they stay mapped until `self` releases them.
        unsafe { DeviceSpan::from_raw(self.addr, self.bytes, true) }
    }

    /// Unmaps, releases and frees the range, in that order, each a step; stops at the first
    /// failure (what is left is released by `Drop`).
    pub fn free(mut self, t: &mut impl StepTimer) -> Result<()> {
        self.release(t)
    }

    fn release(&mut self, t: &mut impl StepTimer) -> Result<()> {
        let ctx = self.ctx.clone();
        let drv = ctx.driver();
        let (addr, size) = (self.addr, self.size);
        if self.mapped {
            self.mapped = false;
            // SAFETY: the range was mapped by `alloc` and is unmapped once.
            t.step("cuMemUnmap", || unsafe { cu!(drv, cuMemUnmap(addr, size)) })?;
        }
        if let Some(h) = self.handle.take() {
            // SAFETY: the handle came from cuMemCreate and is released once.
            t.step("cuMemRelease", || unsafe { cu!(drv, cuMemRelease(h)) })?;
        }
        if self.addr != 0 {
            self.addr = 0;
            // SAFETY: the range came from cuMemAddressReserve and is freed once.
            t.step("cuMemAddressFree", || unsafe {
                cu!(drv, cuMemAddressFree(addr, size))
            })?;
        }
        Ok(())
    }
}

impl Drop for VmmBuffer {
    fn drop(&mut self) {
        if let Err(e) = self.release(&mut super::Untimed) {
            record_drop_failure(format!("releasing a vmm range: {e}"));
        }
    }
}
