//! Strategy `device`: `cuMemAlloc`. Not CPU-accessible; on a discrete GPU it takes card memory at
//! allocation; on GB10 it populates system memory at allocation.
//!
//! Imports: the driver's `DeviceBuffer`; the memory layer's `Owned`.

use std::sync::Arc;

use super::owned::{Memory, Owned};
use super::{Steps, Strategy};
use crate::driver::{Context, DeviceBuffer, DeviceSpan, Result};

impl Memory for DeviceBuffer {
    fn span(&self) -> DeviceSpan<'_> {
        DeviceBuffer::span(self)
    }
    fn free(self, t: &mut Steps<'_>) -> Result<()> {
        DeviceBuffer::free(self, t)
    }
}

/// Strategy `device`'s allocation.
pub(crate) type DeviceAlloc = Owned<DeviceBuffer>;

impl DeviceAlloc {
    /// `cuMemAlloc` of `bytes` bytes, timed.
    pub(crate) fn new(ctx: &Arc<Context>, bytes: u64) -> Result<DeviceAlloc> {
        Owned::make(ctx, Strategy::Device, bytes, |t| {
            DeviceBuffer::alloc(ctx, bytes, t)
        })
    }
}
