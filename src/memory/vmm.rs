//! Strategy `vmm`: the virtual memory management API. Reserve an address range, create physical
//! memory, map it, and grant access: four calls, each timed, the size rounded up to the
//! allocation granularity (usually 2 MiB). Frees in reverse order.
//!
//! Imports: the driver's `VmmBuffer`; the memory layer's `Owned`.

use std::sync::Arc;

use super::owned::{Memory, Owned};
use super::{Steps, Strategy};
use crate::driver::{Context, DeviceSpan, Result, VmmBuffer};

pub use crate::driver::granularity;

impl Memory for VmmBuffer {
    fn span(&self) -> DeviceSpan<'_> {
        VmmBuffer::span(self)
    }
    fn mapped_bytes(&self) -> Option<u64> {
        Some(VmmBuffer::mapped_bytes(self))
    }
    fn free(self, t: &mut Steps<'_>) -> Result<()> {
        VmmBuffer::free(self, t)
    }
}

/// Strategy `vmm`'s allocation.
pub(crate) type VmmAlloc = Owned<VmmBuffer>;

impl VmmAlloc {
    /// The four VMM steps for `bytes` bytes (rounded up to the granularity), timed.
    pub(crate) fn new(ctx: &Arc<Context>, bytes: u64) -> Result<VmmAlloc> {
        Owned::make(ctx, Strategy::Vmm, bytes, |t| {
            VmmBuffer::alloc(ctx, bytes, t)
        })
    }
}
