//! One [`Allocation`] for every strategy whose memory is a single driver handle (`device`,
//! `managed*`, `pinned`, `pool`, `vmm`): [`Owned`] keeps the handle, the timed steps of its
//! allocation, and frees it through the same step timer. Each strategy file says which handle it
//! uses ([`Memory`]) and how to make it.
//!
//! Imports: the driver's handles and spans; the memory layer's step timer.

use std::sync::Arc;

use super::{Allocation, Step, Steps, Strategy};
use crate::driver::{Context, DeviceSpan, Result};

/// What a strategy's driver handle offers.
pub(crate) trait Memory {
    /// The memory as kernels take it.
    fn span(&self) -> DeviceSpan<'_>;
    /// The memory as a CPU byte slice, where the CPU can reach it.
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        None
    }
    /// Bytes actually taken, when they differ from the request.
    fn mapped_bytes(&self) -> Option<u64> {
        None
    }
    /// Frees now, each driver call a step of `t`.
    fn free(self, t: &mut Steps<'_>) -> Result<()>;
}

/// A strategy's allocation: one driver handle and its timed steps.
pub(crate) struct Owned<M> {
    ctx: Arc<Context>,
    strategy: Strategy,
    mem: M,
    bytes: u64,
    steps: Vec<Step>,
}

impl<M: Memory> Owned<M> {
    /// Makes the handle with `make`, its driver calls timed as steps.
    pub(crate) fn make(
        ctx: &Arc<Context>,
        strategy: Strategy,
        bytes: u64,
        make: impl FnOnce(&mut Steps<'_>) -> Result<M>,
    ) -> Result<Owned<M>> {
        let mut t = Steps::new(ctx);
        let mem = make(&mut t)?;
        Ok(Owned {
            ctx: ctx.clone(),
            strategy,
            mem,
            bytes,
            steps: t.steps,
        })
    }
}

impl<M: Memory> Allocation for Owned<M> {
    fn strategy(&self) -> Strategy {
        self.strategy
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn mapped_bytes(&self) -> u64 {
        self.mem.mapped_bytes().unwrap_or(self.bytes)
    }
    fn span(&self) -> DeviceSpan<'_> {
        self.mem.span()
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        self.mem.host_slice()
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(self: Box<Self>) -> Result<Vec<Step>> {
        let Owned { ctx, mem, .. } = *self;
        let mut t = Steps::new(&ctx);
        mem.free(&mut t)?;
        Ok(t.steps)
    }
}
