//! The driver's allocations as RAII handles, one per allocation call family: `cuMemAlloc`
//! ([`DeviceBuffer`]), `cuMemAllocManaged` ([`ManagedBuffer`]), `cuMemHostAlloc`
//! ([`PinnedBuffer`]), `cuMemHostRegister` over a [`HostMap`] ([`Registration`]),
//! `cuMemAllocAsync` on the default pool ([`PoolBuffer`]) and the virtual memory management calls
//! ([`VmmBuffer`]). Each frees itself in `Drop` (a failure there is recorded, never thrown), hands
//! out a [`DeviceSpan`] of exactly its memory, and, where the CPU can reach it, a byte slice.
//!
//! The memory layer (`src/memory`) builds its strategies from these without `unsafe`. It times
//! each driver call as a step of its own: every constructor and `free` here runs its calls through
//! a [`StepTimer`] under the call's name (`cuMemAlloc`, `cuMemMap`...), which is what the result
//! files name as steps.
//!
//! Imports: the rest of the driver layer and `host::HostMap`.

use std::ffi::c_void;
use std::sync::Arc;

use super::{
    Context, DevicePtr, DeviceSpan, Error, HostMap, Result, Stream, cu, record_drop_failure, sys,
};

/// Runs the named driver steps of an allocation or a free; the memory layer's implementation
/// times each one (host clock around the call and a context synchronise).
pub trait StepTimer {
    /// Runs `f` as the step `name`.
    fn step<T>(&mut self, name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T>;
}

/// A [`StepTimer`] that only runs the steps (drops, and callers that time the whole).
pub struct Untimed;

impl StepTimer for Untimed {
    fn step<T>(&mut self, _name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        f()
    }
}

fn usize_of(bytes: u64) -> Result<usize> {
    usize::try_from(bytes).map_err(|_| {
        Error::Invalid(format!(
            "{bytes} bytes do not fit this platform's address space"
        ))
    })
}

/// Memory that `cuMemFree` releases: a `cuMemAlloc` or a `cuMemAllocManaged` block.
struct Block {
    ctx: Arc<Context>,
    ptr: DevicePtr,
    bytes: u64,
    /// How a failed release in `Drop` names it.
    what: &'static str,
}

impl Block {
    /// Runs `call` (the allocating driver call, writing the address) as the step `name`; the
    /// block owns whatever address it wrote, also when a later part of the step fails.
    fn alloc(
        ctx: &Arc<Context>,
        bytes: u64,
        what: &'static str,
        name: &'static str,
        t: &mut impl StepTimer,
        call: impl FnOnce(&mut DevicePtr, usize) -> Result<()>,
    ) -> Result<Block> {
        let n = usize_of(bytes)?;
        let mut b = Block {
            ctx: ctx.clone(),
            ptr: 0,
            bytes,
            what,
        };
        let mut ptr: DevicePtr = 0;
        let r = t.step(name, || call(&mut ptr, n));
        b.ptr = ptr; // owned from here (a failed synchronise after the call still frees it)
        r?;
        Ok(b)
    }

    fn span(&self) -> DeviceSpan<'_> {
        // SAFETY: `ptr` is a live block of `bytes` bytes owned by `self`.
        unsafe { DeviceSpan::from_raw(self.ptr, self.bytes, true) }
    }

    fn free(mut self, t: &mut impl StepTimer) -> Result<()> {
        let ptr = std::mem::take(&mut self.ptr);
        let ctx = self.ctx.clone();
        // SAFETY: `ptr` came from cuMemAlloc(Managed); it is taken out of `self` so Drop won't
        // free it again.
        t.step("cuMemFree", || unsafe {
            cu!(ctx.driver(), cuMemFree_v2(ptr))
        })
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let ptr = std::mem::take(&mut self.ptr);
        if ptr != 0 {
            // SAFETY: `ptr` came from cuMemAlloc(Managed) and is freed once.
            if let Err(e) = unsafe { cu!(self.ctx.driver(), cuMemFree_v2(ptr)) } {
                record_drop_failure(format!("cuMemFree{} of {ptr:#x}: {e}", self.what));
            }
        }
    }
}

/// `cuMemAlloc`: device memory, not CPU-accessible.
pub struct DeviceBuffer(Block);

impl DeviceBuffer {
    /// `cuMemAlloc` of `bytes` bytes in `ctx` (current on this thread), as a step.
    pub fn alloc(ctx: &Arc<Context>, bytes: u64, t: &mut impl StepTimer) -> Result<DeviceBuffer> {
        let b = Block::alloc(ctx, bytes, "", "cuMemAlloc", t, |ptr, n| {
            // SAFETY: `ptr` is a valid out-pointer; the context is current.
            unsafe { cu!(ctx.driver(), cuMemAlloc_v2(ptr, n)) }
        })?;
        Ok(DeviceBuffer(b))
    }

    /// The whole buffer.
    pub fn span(&self) -> DeviceSpan<'_> {
        self.0.span()
    }

    /// `cuMemFree` now, as a step.
    pub fn free(self, t: &mut impl StepTimer) -> Result<()> {
        self.0.free(t)
    }
}

fn device_location(ctx: &Context) -> sys::CUmemLocation {
    sys::CUmemLocation {
        type_: sys::CU_MEM_LOCATION_TYPE_DEVICE,
        id: ctx.device().ordinal(),
    }
}

/// `cuMemAllocManaged(GLOBAL)`: one address for CPU and GPU.
pub struct ManagedBuffer(Block);

impl ManagedBuffer {
    /// `cuMemAllocManaged`, then, with `advise_device`, `cuMemAdvise(SET_PREFERRED_LOCATION =
    /// the device)`: two steps.
    pub fn alloc(
        ctx: &Arc<Context>,
        bytes: u64,
        advise_device: bool,
        t: &mut impl StepTimer,
    ) -> Result<ManagedBuffer> {
        let b = Block::alloc(
            ctx,
            bytes,
            " (managed)",
            "cuMemAllocManaged",
            t,
            |ptr, n| {
                // SAFETY: `ptr` is a valid out-pointer; GLOBAL is a valid attach flag.
                unsafe {
                    cu!(
                        ctx.driver(),
                        cuMemAllocManaged(ptr, n, sys::CU_MEM_ATTACH_GLOBAL)
                    )
                }
            },
        )?;
        if advise_device {
            let loc = device_location(ctx);
            let (ptr, n) = (b.ptr, usize_of(bytes)?);
            t.step("cuMemAdvise", || {
                // SAFETY: the range is the managed allocation just made (dropped on failure).
                unsafe {
                    cu!(
                        ctx.driver(),
                        cuMemAdvise_v2(ptr, n, sys::CU_MEM_ADVISE_SET_PREFERRED_LOCATION, loc)
                    )
                }
            })?;
        }
        Ok(ManagedBuffer(b))
    }

    /// The whole buffer.
    pub fn span(&self) -> DeviceSpan<'_> {
        self.0.span()
    }

    /// The memory as a CPU byte slice. Callers synchronise the GPU's work on it first (the
    /// kernels' launches return after their stream has finished).
    pub fn host_slice(&mut self) -> &mut [u8] {
        if self.0.ptr == 0 {
            return &mut [];
        }
        // SAFETY: managed memory is valid for `bytes` bytes at the same address on the host while
        // `self` lives (`bytes` fit usize: checked at allocation); `&mut self` makes the slice
        // exclusive on the CPU side and ends every span borrowed from `self`.
        unsafe { std::slice::from_raw_parts_mut(self.0.ptr as *mut u8, self.0.bytes as usize) }
    }

    /// `cuMemFree` now, as a step.
    pub fn free(self, t: &mut impl StepTimer) -> Result<()> {
        self.0.free(t)
    }
}

/// `cuMemPrefetchAsync` of `span` to the stream's device, timed with events; GPU ms. The driver
/// refuses a span that is not managed memory.
pub fn prefetch_to_device(stream: &Stream, span: DeviceSpan<'_>) -> Result<f64> {
    let ctx = stream.context();
    let loc = device_location(ctx);
    let n = usize_of(span.bytes())?;
    Ok(stream
        .timed(|s| {
            // SAFETY: the span is live memory of its owner (the driver checks it is managed);
            // prefetching moves pages and changes no data; the stream is live.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemPrefetchAsync_v2(span.addr(), n, loc, 0, s.raw())
                )
            }
        })?
        .0)
}

/// `cuMemHostAlloc(DEVICEMAP)`: page-locked host memory mapped for the GPU.
pub struct PinnedBuffer {
    ctx: Arc<Context>,
    host: *mut c_void,
    dptr: DevicePtr,
    bytes: u64,
}

impl PinnedBuffer {
    /// `cuMemHostAlloc`, then `cuMemHostGetDevicePointer`: two steps.
    pub fn alloc(ctx: &Arc<Context>, bytes: u64, t: &mut impl StepTimer) -> Result<PinnedBuffer> {
        let n = usize_of(bytes)?;
        let mut b = PinnedBuffer {
            ctx: ctx.clone(),
            host: std::ptr::null_mut(),
            dptr: 0,
            bytes,
        };
        let mut host: *mut c_void = std::ptr::null_mut();
        let r = t.step("cuMemHostAlloc", || {
            // SAFETY: `host` is a valid out-pointer; DEVICEMAP is a valid flag.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemHostAlloc(&mut host, n, sys::CU_MEMHOSTALLOC_DEVICEMAP)
                )
            }
        });
        b.host = host; // owned from here
        r?;
        let mut dptr: DevicePtr = 0;
        t.step("cuMemHostGetDevicePointer", || {
            // SAFETY: `host` is a mapped pinned allocation; `dptr` is an out-pointer; flags must be 0.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemHostGetDevicePointer_v2(&mut dptr, host, 0)
                )
            }
        })?;
        b.dptr = dptr;
        Ok(b)
    }

    /// The whole buffer, at its device address.
    pub fn span(&self) -> DeviceSpan<'_> {
        // SAFETY: the pinned block of `bytes` bytes is owned by `self`, mapped at `dptr`.
        unsafe { DeviceSpan::from_raw(self.dptr, self.bytes, true) }
    }

    /// The memory as a CPU byte slice.
    pub fn host_slice(&mut self) -> &mut [u8] {
        if self.host.is_null() {
            return &mut [];
        }
        // SAFETY: the pinned block is valid for `bytes` bytes (they fit usize: checked at
        // allocation) while `self` lives; `&mut self` makes the slice exclusive on the CPU side
        // and ends every span borrowed from `self`.
        unsafe { std::slice::from_raw_parts_mut(self.host.cast::<u8>(), self.bytes as usize) }
    }

    /// `cuMemFreeHost` now, as a step.
    pub fn free(mut self, t: &mut impl StepTimer) -> Result<()> {
        let host = std::mem::replace(&mut self.host, std::ptr::null_mut());
        let ctx = self.ctx.clone();
        // SAFETY: `host` came from cuMemHostAlloc and is taken out of `self`.
        t.step("cuMemFreeHost", || unsafe {
            cu!(ctx.driver(), cuMemFreeHost(host))
        })
    }
}

impl Drop for PinnedBuffer {
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

/// A [`HostMap`] page-locked and mapped for the GPU with `cuMemHostRegister`. It owns the map, so
/// the range is always unregistered before it is unmapped.
pub struct Registration {
    ctx: Arc<Context>,
    // `None` only inside `unregister`, which hands the map back.
    map: Option<HostMap>,
    registered: bool,
    dptr: DevicePtr,
}

impl Registration {
    /// `cuMemHostRegister(DEVICEMAP, and READ_ONLY with `read_only`)` over the whole map, as a
    /// step, then its device address. On failure the map is unmapped.
    pub fn register(
        ctx: &Arc<Context>,
        map: HostMap,
        read_only: bool,
        t: &mut impl StepTimer,
    ) -> Result<Registration> {
        let n = usize_of(map.bytes())?;
        let host = map.addr() as *mut c_void;
        let mut r = Registration {
            ctx: ctx.clone(),
            map: Some(map),
            registered: false,
            dptr: 0,
        };
        let flags = sys::CU_MEMHOSTREGISTER_DEVICEMAP
            | if read_only {
                sys::CU_MEMHOSTREGISTER_READ_ONLY
            } else {
                0
            };
        t.step("cuMemHostRegister", || {
            // SAFETY: `host` is a live mapping of `n` bytes owned by `r`, which unregisters it
            // before unmapping it.
            unsafe { cu!(ctx.driver(), cuMemHostRegister_v2(host, n, flags)) }
        })?;
        r.registered = true;
        let mut dptr: DevicePtr = 0;
        // SAFETY: `host` is registered with DEVICEMAP; `dptr` is an out-pointer; flags must be 0.
        unsafe {
            cu!(
                ctx.driver(),
                cuMemHostGetDevicePointer_v2(&mut dptr, host, 0)
            )
        }?;
        r.dptr = dptr;
        Ok(r)
    }

    /// The registered map.
    pub fn map(&self) -> Option<&HostMap> {
        self.map.as_ref()
    }

    /// The memory as a CPU byte slice (writable maps only).
    pub fn host_slice(&mut self) -> Option<&mut [u8]> {
        self.map.as_mut().and_then(HostMap::as_mut_slice)
    }

    /// The whole range at its device address (read-only for a read-only map).
    pub fn span(&self) -> DeviceSpan<'_> {
        let (bytes, writable) = self
            .map
            .as_ref()
            .map_or((0, false), |m| (m.bytes(), m.is_writable()));
        // SAFETY: the registered map of `bytes` bytes is owned by `self`, mapped for the GPU at
        // `dptr` until `self` unregisters it (which takes `self` by value or `&mut`).
        unsafe { DeviceSpan::from_raw(self.dptr, bytes, writable) }
    }

    fn unregister_now(&mut self) -> Result<()> {
        if self.registered {
            self.registered = false;
            if let Some(m) = &self.map {
                // SAFETY: the range was registered by `register` and is unregistered once.
                unsafe {
                    cu!(
                        self.ctx.driver(),
                        cuMemHostUnregister(m.addr() as *mut c_void)
                    )
                }?;
            }
        }
        Ok(())
    }

    /// `cuMemHostUnregister` now, as a step; hands the map back (the caller unmaps it).
    pub fn unregister(mut self, t: &mut impl StepTimer) -> Result<Option<HostMap>> {
        t.step("cuMemHostUnregister", || self.unregister_now())?;
        Ok(self.map.take())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Err(e) = self.unregister_now() {
            record_drop_failure(format!("cuMemHostUnregister: {e}"));
        }
    }
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

/// `cuMemPoolTrimTo(default pool, 0)`: returns the pool's unused memory to the system.
pub fn trim_default_pool(ctx: &Context) -> Result<()> {
    let pool = default_pool(ctx)?;
    // SAFETY: the pool handle is the device's default pool.
    unsafe { cu!(ctx.driver(), cuMemPoolTrimTo(pool, 0)) }
}

/// `cuMemAllocAsync` from the device's default pool on a stream.
pub struct PoolBuffer {
    ctx: Arc<Context>,
    stream: Arc<Stream>,
    ptr: DevicePtr,
    bytes: u64,
}

impl PoolBuffer {
    /// Sets the default pool's release threshold (untimed), then `cuMemAllocAsync` as a step.
    pub fn alloc(
        ctx: &Arc<Context>,
        stream: &Arc<Stream>,
        bytes: u64,
        release_threshold: u64,
        t: &mut impl StepTimer,
    ) -> Result<PoolBuffer> {
        let n = usize_of(bytes)?;
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
        let mut b = PoolBuffer {
            ctx: ctx.clone(),
            stream: stream.clone(),
            ptr: 0,
            bytes,
        };
        let mut ptr: DevicePtr = 0;
        let r = t.step("cuMemAllocAsync", || {
            // SAFETY: `ptr` is a valid out-pointer; the stream is live.
            unsafe { cu!(ctx.driver(), cuMemAllocAsync(&mut ptr, n, stream.raw())) }
        });
        b.ptr = ptr;
        r?;
        Ok(b)
    }

    /// The whole buffer.
    pub fn span(&self) -> DeviceSpan<'_> {
        // SAFETY: a live pool block of `bytes` bytes owned by `self` (the allocation step
        // synchronised, so it is usable on every stream).
        unsafe { DeviceSpan::from_raw(self.ptr, self.bytes, true) }
    }

    /// `cuMemFreeAsync` and a stream synchronise, as one step.
    pub fn free(mut self, t: &mut impl StepTimer) -> Result<()> {
        let ptr = std::mem::take(&mut self.ptr);
        let (ctx, stream) = (self.ctx.clone(), self.stream.clone());
        t.step("cuMemFreeAsync", || {
            // SAFETY: `ptr` came from cuMemAllocAsync and is taken out of `self`.
            unsafe { cu!(ctx.driver(), cuMemFreeAsync(ptr, stream.raw())) }?;
            stream.synchronize()
        })
    }
}

impl Drop for PoolBuffer {
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
