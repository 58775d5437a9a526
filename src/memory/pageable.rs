//! Strategy `pageable`: a plain anonymous `mmap` with no CUDA call, the GB10 "just use malloc"
//! path. The GPU reaches it through the same address only where the device reports
//! PAGEABLE_MEMORY_ACCESS (GB10, Grace Hopper, HMM hosts); elsewhere the registry skips it.
//! Pages are populated on first touch by whichever side touches first.
//!
//! Imports: the driver's `HostMap`.

use std::time::Instant;

use super::registered::mmap_error;
use super::{Allocation, Step, Strategy};
use crate::driver::{DeviceSpan, HostMap, Result};

pub struct PageableAlloc {
    map: HostMap,
    bytes: u64,
    steps: Vec<Step>,
}

impl PageableAlloc {
    pub fn new(_ctx: &std::sync::Arc<crate::driver::Context>, bytes: u64) -> Result<PageableAlloc> {
        let t = Instant::now();
        let map = HostMap::anonymous(bytes).map_err(|e| mmap_error("mmap", bytes, e))?;
        let steps = vec![Step {
            name: "mmap",
            ms: t.elapsed().as_secs_f64() * 1e3,
        }];
        Ok(PageableAlloc { map, bytes, steps })
    }
}

impl Allocation for PageableAlloc {
    fn strategy(&self) -> Strategy {
        Strategy::Pageable
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn span(&self) -> DeviceSpan<'_> {
        self.map.span()
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        self.map.as_mut_slice()
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(self: Box<Self>) -> Result<Vec<Step>> {
        let t = Instant::now();
        drop(self);
        Ok(vec![Step {
            name: "munmap",
            ms: t.elapsed().as_secs_f64() * 1e3,
        }])
    }
}
