//! Read-only file mappings outside the strategy registry, for the page-cache experiments: the
//! `pageable` file read of `cache effect` (a plain `mmap` of a file, which the GPU reaches only
//! with PAGEABLE_MEMORY_ACCESS, faulting pages in from the page cache or the disk), and how much
//! of a file is resident in the page cache (`mincore` over such a mapping; mapping a file reads
//! nothing, so measuring does not change the answer). It lives in the memory layer because
//! turning a mapping into an address and calling `mincore` needs `unsafe`.

use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::driver::DevicePtr;

/// A read-only shared mapping of the first `bytes` bytes of a file.
pub struct FileMap {
    map: Mmap,
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
        let n = usize::try_from(bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{bytes} bytes do not fit this platform's address space"),
            )
        })?;
        // SAFETY: the mapping is read-only and shared; the tool never truncates a file while it is
        // mapped (the cache experiment owns its temporary files). Another process truncating it
        // would make reads past the new end fault, which no code here does on purpose.
        let map = unsafe { MmapOptions::new().len(n).map(&f) }?;
        Ok(FileMap { map, bytes })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The mapped bytes (reading them faults the file's pages in through the page cache).
    pub fn as_slice(&self) -> &[u8] {
        &self.map
    }

    /// The mapping's address, which kernels can use on devices with PAGEABLE_MEMORY_ACCESS.
    pub fn device_ptr(&self) -> DevicePtr {
        self.map.as_ptr() as DevicePtr
    }

    /// Bytes of the mapping whose pages are in the page cache now (`mincore`), in whole pages
    /// (the last page counts as the bytes of the file it holds).
    pub fn resident_bytes(&self) -> std::io::Result<u64> {
        let page = crate::host::facts::page_size();
        let pages = self.bytes.div_ceil(page) as usize;
        let mut vec = vec![0u8; pages];
        // SAFETY: the address and length describe this live mapping (page-aligned, as mmap
        // returns it); `vec` holds one byte per page of that length, as mincore requires.
        let r = unsafe {
            libc::mincore(
                self.map.as_ptr() as *mut libc::c_void,
                self.bytes as usize,
                vec.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut resident = 0u64;
        for (i, v) in vec.iter().enumerate() {
            if v & 1 != 0 {
                let start = i as u64 * page;
                resident += page.min(self.bytes - start);
            }
        }
        Ok(resident)
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
