//! What the host does during a load: a sampling thread that records the lowest MemAvailable and
//! the highest RSS of this process while a path runs (every 5 ms), and the page-cache state of
//! the file before a run: cold (its pages evicted with `posix_fadvise(DONTNEED)`, optionally the
//! whole cache dropped as root, checked with `mincore`) or warm (read through, checked the same
//! way). Imports: host facts and the page-cache helpers only.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::args::CacheState;
use crate::error::{Error, Result};
use crate::host::{MemInfo, cache, rss_bytes};
use crate::memory::filemap::resident_bytes;

/// The extremes seen while a path ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extremes {
    pub min_mem_available: u64,
    pub peak_rss: u64,
}

/// A running sampler; [`Sampler::stop`] returns what it saw.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Extremes>>,
}

fn sample(e: &mut Extremes) {
    if let Ok(m) = MemInfo::read() {
        e.min_mem_available = e.min_mem_available.min(m.mem_available);
    }
    e.peak_rss = e.peak_rss.max(rss_bytes());
}

impl Sampler {
    pub fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut e = Extremes {
                min_mem_available: u64::MAX,
                peak_rss: 0,
            };
            sample(&mut e);
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                sample(&mut e);
            }
            e
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Takes a last sample and returns the extremes.
    pub fn stop(mut self) -> Extremes {
        self.stop.store(true, Ordering::Relaxed);
        let mut e = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        sample(&mut e);
        if e.min_mem_available == u64::MAX {
            e.min_mem_available = 0;
        }
        e
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Puts `path` into `state` and returns the bytes of it resident in the page cache afterwards.
/// `drop_all` drops the whole page cache before a cold run (root; checked by the caller).
pub fn prepare(path: &Path, state: CacheState, drop_all: bool) -> Result<u64> {
    match state {
        CacheState::Cold => {
            cache::evict(path)?;
            if drop_all {
                cache::drop_caches(&cache::drop_caches_path(), true)?;
            }
        }
        CacheState::Warm => {
            // Read it through only when some page is missing (a 16 GiB read costs seconds).
            let (resident, len) = resident_bytes(path).map_err(|e| Error::io(path, e))?;
            if resident < len {
                cache::read_through(path)?;
            }
        }
    }
    Ok(resident_bytes(path).map_err(|e| Error::io(path, e))?.0)
}

/// The page cache's size now (`Cached` of /proc/meminfo), bytes.
pub fn cached_bytes() -> u64 {
    MemInfo::read().map_or(0, |m| m.cached)
}
