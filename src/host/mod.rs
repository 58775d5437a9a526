//! Linux facts the measurements depend on: `/proc/meminfo`, page size, transparent huge pages,
//! kernel release, cgroup memory limit, process RSS; memory pressure (PSI), free 2 MiB blocks
//! (buddyinfo) and cgroup usage; and the page-cache controls (fill, evict,
//! drop); and [`Accounting`], the one memory-accounting snapshot every experiment records.
//! Nothing here touches the GPU, so every host-side command works on machines without one.

pub mod accounting;
pub mod cache;
pub mod facts;
pub mod meminfo;
pub mod pressure;

pub use accounting::Accounting;
pub use facts::{HostFacts, rss_bytes};
pub use meminfo::MemInfo;
pub use pressure::HostPressure;
