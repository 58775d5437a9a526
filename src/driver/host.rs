//! Host memory the GPU may reach, and the operating-system calls on it that need `unsafe`: memory
//! maps (anonymous, a file read-only, a file private), `mincore` over a mapping, and the volatile
//! byte accesses of the CPU first touch. It sits in the driver layer because `unsafe` lives only
//! under `src/driver/`; the memory layer builds its strategies from these safe types.
//!
//! A mapping hands out a [`DeviceSpan`] of its own address: the GPU uses the host address itself
//! where the device has PAGEABLE_MEMORY_ACCESS (GB10, HMM, ATS), and a registration
//! (`alloc::Registration`) takes the mapping over for `cuMemHostRegister`. `memmap2` does the
//! mapping (it is the well-kept crate for it); only its file maps are `unsafe`, for the reason
//! stated at each.
//!
//! Imports: `memmap2`, `libc`, `nix`, the span type.

use std::fs::File;

use memmap2::{Mmap, MmapMut, MmapOptions};

use super::{DevicePtr, DeviceSpan};

enum Map {
    Anon(MmapMut),
    File(Mmap),
    /// A private (copy-on-write) mapping of a file.
    FileCopy(MmapMut),
}

/// A memory map owned by this value and unmapped when it drops.
pub struct HostMap {
    map: Map,
}

fn too_large(bytes: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{bytes} bytes do not fit this platform's address space"),
    )
}

fn len(bytes: u64) -> std::io::Result<usize> {
    usize::try_from(bytes).map_err(|_| too_large(bytes))
}

impl HostMap {
    /// An anonymous read-write mapping of `bytes` bytes (pages appear on first touch).
    pub fn anonymous(bytes: u64) -> std::io::Result<HostMap> {
        Ok(HostMap {
            map: Map::Anon(MmapMut::map_anon(len(bytes)?)?),
        })
    }

    /// A read-only shared mapping of the first `bytes` bytes of `file`: the page cache's own pages.
    pub fn file_read_only(file: &File, bytes: u64) -> std::io::Result<HostMap> {
        // SAFETY: the mapping is read-only and shared, so nothing here writes through it; the tool
        // never truncates a file while it is mapped (the cache experiment owns its temporary
        // files). Another process truncating it would make reads past the new end fault, which no
        // code here does on purpose.
        let m = unsafe { MmapOptions::new().len(len(bytes)?).map(file) }?;
        Ok(HostMap { map: Map::File(m) })
    }

    /// A private (copy-on-write) mapping of the first `bytes` bytes of `file`: writes, such as
    /// the kernel's copy when the pages are pinned for writing, never reach the file.
    pub fn file_private(file: &File, bytes: u64) -> std::io::Result<HostMap> {
        // SAFETY: a private mapping: writes stay in this process; the tool never truncates the
        // file while it is mapped.
        let m = unsafe { MmapOptions::new().len(len(bytes)?).map_copy(file) }?;
        Ok(HostMap {
            map: Map::FileCopy(m),
        })
    }

    /// The mapping's length in bytes.
    pub fn bytes(&self) -> u64 {
        match &self.map {
            Map::Anon(m) | Map::FileCopy(m) => m.len() as u64,
            Map::File(m) => m.len() as u64,
        }
    }

    /// The mapping's first address.
    pub(super) fn addr(&self) -> DevicePtr {
        match &self.map {
            Map::Anon(m) | Map::FileCopy(m) => m.as_ptr() as DevicePtr,
            Map::File(m) => m.as_ptr() as DevicePtr,
        }
    }

    /// True for an anonymous mapping.
    pub fn is_anonymous(&self) -> bool {
        matches!(self.map, Map::Anon(_))
    }

    /// True when the mapping may be written (not a read-only file mapping).
    pub fn is_writable(&self) -> bool {
        !matches!(self.map, Map::File(_))
    }

    /// The mapped bytes (reading them faults a file's pages in through the page cache).
    pub fn as_slice(&self) -> &[u8] {
        match &self.map {
            Map::Anon(m) | Map::FileCopy(m) => m,
            Map::File(m) => m,
        }
    }

    /// The memory as a CPU byte slice, for writable mappings.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        match &mut self.map {
            Map::Anon(m) | Map::FileCopy(m) => Some(&mut m[..]),
            Map::File(_) => None,
        }
    }

    /// The mapping as the GPU sees it through the host's page tables (devices with
    /// PAGEABLE_MEMORY_ACCESS; elsewhere a kernel on it faults and the launch reports the error).
    pub fn span(&self) -> DeviceSpan<'_> {
        // SAFETY: the mapping is owned by `self`, borrowed for the span's life, and is exactly
        // `bytes()` long; read-only mappings give read-only spans.
        unsafe { DeviceSpan::from_raw(self.addr(), self.bytes(), self.is_writable()) }
    }

    /// Bytes of the mapping whose pages are in memory now (`mincore`), in whole pages (the last
    /// page counts as the bytes of the mapping it holds).
    pub fn resident_bytes(&self) -> std::io::Result<u64> {
        let bytes = self.bytes();
        // mincore fills one byte per page of the system's size: the vector is sized by that one.
        let page = match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
            Ok(Some(v)) if v > 0 => v as u64,
            _ => {
                return Err(std::io::Error::other(
                    "sysconf(PAGE_SIZE) gave no page size",
                ));
            }
        };
        let mut vec = vec![0u8; len(bytes.div_ceil(page))?];
        // SAFETY: the address and length describe this live mapping (page-aligned, as mmap
        // returns it); `vec` holds one byte per page of that length, as mincore requires.
        let r = unsafe {
            libc::mincore(
                self.addr() as *mut libc::c_void,
                len(bytes)?,
                vec.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(vec
            .iter()
            .enumerate()
            .filter(|(_, v)| *v & 1 != 0)
            .map(|(i, _)| page.min(bytes - i as u64 * page))
            .sum())
    }
}

/// Writes `bytes` at `off` of `mem` with volatile stores (a measured touch the compiler may
/// neither drop nor merge); what would fall past the end is not written.
pub fn write_volatile(mem: &mut [u8], off: usize, bytes: &[u8]) {
    let Some(dst) = mem.get_mut(off..) else {
        return;
    };
    for (d, b) in dst.iter_mut().zip(bytes) {
        // SAFETY: `d` is a valid, exclusive reference into `mem`.
        unsafe { std::ptr::write_volatile(d, *b) };
    }
}

/// Reads byte `off` of `mem` with a volatile load; `None` past the end.
pub fn read_volatile(mem: &[u8], off: usize) -> Option<u8> {
    // SAFETY: `b` is a valid reference into `mem`.
    mem.get(off).map(|b| unsafe { std::ptr::read_volatile(b) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_accesses_stay_inside_the_slice() {
        let mut m = [0u8; 6];
        write_volatile(&mut m, 4, &[1, 2, 3, 4]);
        assert_eq!(m, [0, 0, 0, 0, 1, 2]);
        write_volatile(&mut m, 9, &[7]);
        assert_eq!(read_volatile(&m, 5), Some(2));
        assert_eq!(read_volatile(&m, 6), None);
    }

    #[test]
    fn anonymous_maps_are_writable_and_spans_cover_them() {
        let mut a = HostMap::anonymous(10_000).unwrap();
        assert!(a.is_anonymous() && a.is_writable());
        a.as_mut_slice().unwrap()[9_999] = 1;
        let s = a.span();
        assert_eq!(
            (s.addr(), s.bytes(), s.is_writable()),
            (a.addr(), 10_000, true)
        );
        // The touched page is resident; the whole map is at most its length.
        let r = a.resident_bytes().unwrap();
        assert!(r > 0 && r <= 10_000, "{r}");
    }
}
