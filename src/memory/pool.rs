//! Strategy `pool`: `cuMemAllocAsync` from the device's default memory pool. The pool's release
//! threshold decides whether freed memory goes back to the system at the next synchronise (0, the
//! default) or stays cached in the pool for the next allocation (`--pool-release-threshold`).
//!
//! Imports: the driver's `PoolBuffer`; the memory layer's `Owned`.

use std::sync::Arc;

use super::owned::{Memory, Owned};
use super::{Steps, Strategy};
use crate::driver::{Context, DeviceSpan, PoolBuffer, Result, Stream};

impl Memory for PoolBuffer {
    fn span(&self) -> DeviceSpan<'_> {
        PoolBuffer::span(self)
    }
    fn free(self, t: &mut Steps<'_>) -> Result<()> {
        PoolBuffer::free(self, t)
    }
}

/// Strategy `pool`'s allocation.
pub(crate) type PoolAlloc = Owned<PoolBuffer>;

impl PoolAlloc {
    /// `cuMemAllocAsync` of `bytes` bytes on `stream` from the default pool, timed.
    pub(crate) fn new(
        ctx: &Arc<Context>,
        stream: &Arc<Stream>,
        bytes: u64,
        release_threshold: u64,
    ) -> Result<PoolAlloc> {
        Owned::make(ctx, Strategy::Pool, bytes, |t| {
            PoolBuffer::alloc(ctx, stream, bytes, release_threshold, t)
        })
    }
}
