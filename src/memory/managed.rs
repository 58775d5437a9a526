//! Strategies `managed`, `managed+prefetch`, `managed+advise`: `cuMemAllocManaged(GLOBAL)`. One
//! pointer for CPU and GPU; pages are populated on first touch and, on discrete GPUs, migrate by
//! page faults. `+advise` sets the preferred location to the device at allocation; `+prefetch`
//! moves the range to the device before the first GPU touch (a separate, timed phase:
//! [`super::prefetch_to_device`]).
//!
//! Imports: the driver's `ManagedBuffer`; the memory layer's `Owned`.

use std::sync::Arc;

use super::owned::{Memory, Owned};
use super::{Steps, Strategy};
use crate::driver::{Context, DeviceSpan, ManagedBuffer, Result};

impl Memory for ManagedBuffer {
    fn span(&self) -> DeviceSpan<'_> {
        ManagedBuffer::span(self)
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        Some(ManagedBuffer::host_slice(self))
    }
    fn free(self, t: &mut Steps<'_>) -> Result<()> {
        ManagedBuffer::free(self, t)
    }
}

/// The allocation of strategies `managed`, `managed+prefetch` and `managed+advise`.
pub(crate) type ManagedAlloc = Owned<ManagedBuffer>;

impl ManagedAlloc {
    /// `cuMemAllocManaged` of `bytes` bytes (and `cuMemAdvise` for `managed+advise`), timed.
    pub(crate) fn new(ctx: &Arc<Context>, strategy: Strategy, bytes: u64) -> Result<ManagedAlloc> {
        let advise = strategy == Strategy::ManagedAdvise;
        Owned::make(ctx, strategy, bytes, |t| {
            ManagedBuffer::alloc(ctx, bytes, advise, t)
        })
    }
}
