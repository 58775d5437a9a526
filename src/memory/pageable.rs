//! Strategy `pageable`: a plain anonymous `mmap` with no CUDA call, the GB10 "just use malloc"
//! path. The GPU reaches it through the same address only where the device reports
//! PAGEABLE_MEMORY_ACCESS (GB10, Grace Hopper, HMM hosts); elsewhere the registry skips it.
//! Pages are populated on first touch by whichever side touches first.

use std::time::Instant;

use memmap2::MmapMut;

use super::registered::mmap_error;
use super::{Allocation, Step, Strategy};
use crate::driver::{DevicePtr, Result};

pub struct PageableAlloc {
    map: Option<MmapMut>,
    bytes: u64,
    steps: Vec<Step>,
}

impl PageableAlloc {
    pub fn new(_ctx: &std::sync::Arc<crate::driver::Context>, bytes: u64) -> Result<PageableAlloc> {
        let t = Instant::now();
        let map = MmapMut::map_anon(bytes as usize).map_err(|e| mmap_error("mmap", bytes, e))?;
        let steps = vec![Step {
            name: "mmap",
            ms: t.elapsed().as_secs_f64() * 1e3,
        }];
        Ok(PageableAlloc {
            map: Some(map),
            bytes,
            steps,
        })
    }
}

impl Allocation for PageableAlloc {
    fn strategy(&self) -> Strategy {
        Strategy::Pageable
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn device_ptr(&self) -> DevicePtr {
        self.map.as_ref().map_or(0, |m| m.as_ptr() as DevicePtr)
    }
    fn host_slice(&mut self) -> Option<&mut [u8]> {
        self.map.as_mut().map(|m| &mut m[..])
    }
    fn alloc_steps(&self) -> &[Step] {
        &self.steps
    }
    fn free(mut self: Box<Self>) -> Result<Vec<Step>> {
        let t = Instant::now();
        self.map = None;
        Ok(vec![Step {
            name: "munmap",
            ms: t.elapsed().as_secs_f64() * 1e3,
        }])
    }
}
