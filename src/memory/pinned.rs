//! Strategy `pinned`: `cuMemHostAlloc(DEVICEMAP)`. Page-locked host memory, populated and pinned
//! at allocation (roughly 0.3 s per GB on x86 hosts), reached by the GPU over PCIe on discrete
//! cards; the device address comes from `cuMemHostGetDevicePointer`.
//!
//! Imports: the driver's `PinnedBuffer`; the memory layer's `Owned`.

use std::sync::Arc;

use super::owned::{Memory, Owned};
use super::{Steps, Strategy};
use crate::driver::{Context, DeviceSpan, PinnedBuffer, Result};

impl Memory for PinnedBuffer {
    fn span(&self) -> DeviceSpan<'_> {
        PinnedBuffer::span(self)
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        Some(PinnedBuffer::host_slice(self))
    }
    fn free(self, t: &mut Steps<'_>) -> Result<()> {
        PinnedBuffer::free(self, t)
    }
}

/// Strategy `pinned`'s allocation.
pub(crate) type PinnedAlloc = Owned<PinnedBuffer>;

impl PinnedAlloc {
    /// `cuMemHostAlloc` and `cuMemHostGetDevicePointer` of `bytes` bytes, timed.
    pub(crate) fn new(ctx: &Arc<Context>, bytes: u64) -> Result<PinnedAlloc> {
        Owned::make(ctx, Strategy::Pinned, bytes, |t| {
            PinnedBuffer::alloc(ctx, bytes, t)
        })
    }
}
