//! Read-only file mappings outside the strategy registry, for the page-cache experiments: the
//! `pageable` file read of `cache effect` (a plain `mmap` of a file, which the GPU reaches only
//! with PAGEABLE_MEMORY_ACCESS, faulting pages in from the page cache or the disk), and how much
//! of a file is resident in the page cache (`mincore` over such a mapping; mapping a file reads
//! nothing, so measuring does not change the answer). The map and `mincore` are the driver
//! layer's `HostMap` (where `unsafe` lives); this file gives them the experiments' shape.
//!
//! Imports: the driver's `HostMap` and spans.

use std::fs::File;
use std::path::Path;

use crate::driver::{DeviceSpan, HostMap};

/// A read-only shared mapping of the first `bytes` bytes of a file.
pub struct FileMap {
    map: HostMap,
    bytes: u64,
}

impl FileMap {
    /// Maps `bytes` bytes of `path` read-only (0 = the whole file). Reads nothing from the file.
    pub fn open(path: &Path, bytes: u64) -> std::io::Result<FileMap> {
        let f = File::open(path)?;
        let len = f.metadata()?.len();
        let bytes = if bytes == 0 { len } else { bytes };
        if bytes == 0 || bytes > len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} holds {len} bytes; cannot map {bytes} bytes of it",
                    path.display()
                ),
            ));
        }
        let map = HostMap::file_read_only(&f, bytes)?;
        Ok(FileMap { map, bytes })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The mapped bytes (reading them faults the file's pages in through the page cache).
    pub fn as_slice(&self) -> &[u8] {
        self.map.as_slice()
    }

    /// The mapping as kernels take it (read-only), for devices with PAGEABLE_MEMORY_ACCESS.
    pub fn span(&self) -> DeviceSpan<'_> {
        self.map.span()
    }

    /// Bytes of the mapping whose pages are in the page cache now (`mincore`), in whole pages
    /// (the last page counts as the bytes of the file it holds).
    pub fn resident_bytes(&self) -> std::io::Result<u64> {
        self.map.resident_bytes()
    }
}

/// (bytes of `path` resident in the page cache, bytes of the file). An empty file is (0, 0).
pub fn resident_bytes(path: &Path) -> std::io::Result<(u64, u64)> {
    let len = std::fs::metadata(path)?.len();
    if len == 0 {
        return Ok((0, 0));
    }
    let m = FileMap::open(path, len)?;
    Ok((m.resident_bytes()?, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn residency_follows_reads_and_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        let mut f = File::create(&p).unwrap();
        // Three pages and a bit, so the last page is partial.
        let len = 3 * 4096 + 100;
        f.write_all(&vec![7u8; len]).unwrap();
        f.sync_all().unwrap();
        drop(f);
        // Just written: resident.
        let (r, total) = resident_bytes(&p).unwrap();
        assert_eq!(total, len as u64);
        assert_eq!(r, len as u64, "a file just written is in the page cache");
        // After DONTNEED (clean pages): gone.
        let f = File::open(&p).unwrap();
        nix::fcntl::posix_fadvise(
            &f,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
        let (r, _) = resident_bytes(&p).unwrap();
        assert_eq!(r, 0, "evicted pages are not resident");
        // Reading one page brings at least that page back (readahead may bring more).
        let m = FileMap::open(&p, 0).unwrap();
        assert_eq!(m.bytes(), len as u64);
        assert_eq!(m.as_slice().len(), len);
        assert_eq!(m.span().bytes(), len as u64);
        assert!(
            !m.span().is_writable(),
            "a read-only file map gives read-only spans"
        );
        let mut buf = [0u8; 10];
        std::io::Read::read(&mut File::open(&p).unwrap(), &mut buf).unwrap();
        assert!(m.resident_bytes().unwrap() >= 4096);
        assert!(FileMap::open(&p, len as u64 + 1).is_err());
        assert_eq!(
            resident_bytes(&dir.path().join("missing"))
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::NotFound
        );
    }
}
