//! The primary context of a device, and the streams and events that live in it. A `Context` is
//! shared through `Arc`; streams, events, modules and allocations hold that `Arc`, so the context
//! outlives everything made in it.

use std::sync::Arc;

use super::{Device, Driver, Result, cu, record_drop_failure, sys};

/// The device's primary context, retained for as long as this value lives.
pub struct Context {
    device: Device,
    raw: sys::CUcontext,
}

// SAFETY: a CUDA context may be used from any thread once made current there; the handle itself
// is an opaque pointer that the driver synchronises.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl Context {
    /// Retains the device's primary context and makes it current on this thread.
    pub fn new(device: &Device) -> Result<Arc<Context>> {
        let mut raw: sys::CUcontext = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the device handle came from cuDeviceGet.
        unsafe {
            cu!(
                device.driver(),
                cuDevicePrimaryCtxRetain(&mut raw, device.handle())
            )
        }?;
        let ctx = Arc::new(Context {
            device: device.clone(),
            raw,
        });
        ctx.bind()?;
        Ok(ctx)
    }

    /// Makes the context current on the calling thread (needed once per thread).
    pub fn bind(&self) -> Result<()> {
        // SAFETY: the context handle is retained by `self`.
        unsafe { cu!(self.driver(), cuCtxSetCurrent(self.raw)) }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn driver(&self) -> &Driver {
        self.device.driver()
    }

    /// `cuMemGetInfo`: (free, total) in bytes. On GB10 `free` is the kernel's MemFree.
    pub fn mem_info(&self) -> Result<(u64, u64)> {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: both out-pointers are valid; the context is current on this thread.
        unsafe { cu!(self.driver(), cuMemGetInfo_v2(&mut free, &mut total)) }?;
        Ok((free as u64, total as u64))
    }

    /// Waits for all work in the context.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: no arguments; the context is current.
        unsafe { cu!(self.driver(), cuCtxSynchronize()) }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: releases the retain taken in `new`; the handle is not used afterwards.
        let r = unsafe {
            cu!(
                self.device.driver(),
                cuDevicePrimaryCtxRelease_v2(self.device.handle())
            )
        };
        if let Err(e) = r {
            record_drop_failure(format!("releasing the primary context: {e}"));
        }
    }
}

/// A stream in a context.
pub struct Stream {
    ctx: Arc<Context>,
    raw: sys::CUstream,
}

// SAFETY: a stream handle may be used from any thread on which its context is current; the
// driver synchronises access to it.
unsafe impl Send for Stream {}
// SAFETY: as above.
unsafe impl Sync for Stream {}

impl Stream {
    /// A new blocking stream (it synchronises with the legacy default stream, which keeps
    /// synchronous driver calls such as `cuMemsetD8` ordered with it).
    pub fn new(ctx: &Arc<Context>) -> Result<Stream> {
        let mut raw: sys::CUstream = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; flags 0 = default stream semantics.
        unsafe { cu!(ctx.driver(), cuStreamCreate(&mut raw, 0)) }?;
        Ok(Stream {
            ctx: ctx.clone(),
            raw,
        })
    }

    pub(crate) fn raw(&self) -> sys::CUstream {
        self.raw
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: the stream handle is owned by `self`.
        unsafe { cu!(self.ctx.driver(), cuStreamSynchronize(self.raw)) }
    }

    /// Runs `work` between two events on this stream and returns the GPU time in milliseconds
    /// together with what `work` returned. The stream is synchronised before returning.
    pub fn timed<T>(&self, work: impl FnOnce(&Stream) -> Result<T>) -> Result<(f64, T)> {
        let start = Event::new(&self.ctx)?;
        let end = Event::new(&self.ctx)?;
        start.record(self)?;
        let out = work(self)?;
        end.record(self)?;
        end.synchronize()?;
        Ok((end.elapsed_ms_since(&start)?, out))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by `self` and not used afterwards.
        if let Err(e) = unsafe { cu!(self.ctx.driver(), cuStreamDestroy_v2(self.raw)) } {
            record_drop_failure(format!("destroying a stream: {e}"));
        }
    }
}

/// A timing event.
pub struct Event {
    ctx: Arc<Context>,
    raw: sys::CUevent,
}

impl Event {
    pub fn new(ctx: &Arc<Context>) -> Result<Event> {
        let mut raw: sys::CUevent = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; flags 0 = timing enabled.
        unsafe { cu!(ctx.driver(), cuEventCreate(&mut raw, 0)) }?;
        Ok(Event {
            ctx: ctx.clone(),
            raw,
        })
    }

    pub fn record(&self, stream: &Stream) -> Result<()> {
        // SAFETY: both handles are owned by live values.
        unsafe { cu!(self.ctx.driver(), cuEventRecord(self.raw, stream.raw())) }
    }

    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: the handle is owned by `self`.
        unsafe { cu!(self.ctx.driver(), cuEventSynchronize(self.raw)) }
    }

    /// Milliseconds between `start` and this event (both recorded and completed).
    pub fn elapsed_ms_since(&self, start: &Event) -> Result<f64> {
        let mut ms = 0f32;
        // SAFETY: `ms` is a valid out-pointer; both events are live.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuEventElapsedTime_v2(&mut ms, start.raw, self.raw)
            )
        }?;
        Ok(ms as f64)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by `self` and not used afterwards.
        if let Err(e) = unsafe { cu!(self.ctx.driver(), cuEventDestroy_v2(self.raw)) } {
            record_drop_failure(format!("destroying an event: {e}"));
        }
    }
}
