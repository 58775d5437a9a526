//! [`DeviceSpan`]: a device address and a length borrowed from a live allocation, the only way to
//! hand memory to the kernels and the driver's copies and sets. Only the driver layer makes one
//! (from the allocations it owns, in `alloc.rs` and `host.rs`), so a span never outlives its
//! memory and never covers more than it: a wrong length cannot make the GPU write over host
//! memory the program owns elsewhere (pinned, registered and pageable memory are host memory).
//! Narrowing ([`DeviceSpan::slice`] and friends) is checked; widening is impossible.
//!
//! Imports: the driver's error type only.

use std::marker::PhantomData;

use super::{DevicePtr, Error, Result};

/// `bytes` bytes of memory the GPU can address at `addr`, borrowed from the allocation that owns
/// them for `'a`. Read-only spans (read-only file mappings) refuse every writing operation.
///
/// A span is used while its allocation lives:
/// ```no_run
/// # fn f(gpu: &cumemlab::experiments::Gpu, a: Box<dyn cumemlab::memory::Allocation>) {
/// let span = a.span();
/// gpu.kernels.fill(&gpu.stream, span, 7).unwrap();
/// a.free().unwrap();
/// # }
/// ```
/// and not after it was freed (this does not compile):
/// ```compile_fail,E0505
/// # fn f(gpu: &cumemlab::experiments::Gpu, a: Box<dyn cumemlab::memory::Allocation>) {
/// let span = a.span();
/// a.free().unwrap();
/// gpu.kernels.fill(&gpu.stream, span, 7).unwrap();
/// # }
/// ```
/// Nor can code outside the driver layer make one from an address (this does not compile):
/// ```compile_fail,E0451
/// let span = cumemlab::driver::DeviceSpan { addr: 0x1000, bytes: 4096, writable: true, owner: std::marker::PhantomData };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpan<'a> {
    addr: DevicePtr,
    bytes: u64,
    writable: bool,
    owner: PhantomData<&'a ()>,
}

impl<'a> DeviceSpan<'a> {
    /// A span over `bytes` bytes at `addr`.
    ///
    /// # Safety
    /// `addr .. addr + bytes` must be memory the GPU may access (written too when `writable`),
    /// owned by a value that the caller borrows for `'a` and that neither frees nor remaps it
    /// while borrowed.
    pub(super) unsafe fn from_raw(addr: DevicePtr, bytes: u64, writable: bool) -> DeviceSpan<'a> {
        DeviceSpan {
            addr,
            bytes,
            writable,
            owner: PhantomData,
        }
    }

    /// The first address (for alignment checks and reports).
    pub fn addr(&self) -> DevicePtr {
        self.addr
    }

    /// The length in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True when the GPU may write through this span.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The same memory, read-only.
    pub fn read_only(self) -> DeviceSpan<'a> {
        DeviceSpan {
            writable: false,
            ..self
        }
    }

    /// `len` bytes from `offset`; an error when they do not lie inside this span.
    pub fn slice(self, offset: u64, len: u64) -> Result<DeviceSpan<'a>> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes => Ok(DeviceSpan {
                addr: self.addr + offset,
                bytes: len,
                ..self
            }),
            _ => Err(Error::Invalid(format!(
                "{len} bytes at offset {offset} do not fit in a span of {} bytes",
                self.bytes
            ))),
        }
    }

    /// The first `len` bytes.
    pub fn prefix(self, len: u64) -> Result<DeviceSpan<'a>> {
        self.slice(0, len)
    }

    /// (the first `mid` bytes, the rest).
    pub fn split_at(self, mid: u64) -> Result<(DeviceSpan<'a>, DeviceSpan<'a>)> {
        let head = self.prefix(mid)?;
        let tail = self.slice(mid, self.bytes - mid)?;
        Ok((head, tail))
    }

    /// This span, or an error naming `what` when it is read-only.
    pub(super) fn writable_for(self, what: &str) -> Result<DeviceSpan<'a>> {
        if self.writable {
            Ok(self)
        } else {
            Err(Error::Invalid(format!(
                "{what}: the memory at {:#x} is read-only (a read-only file mapping)",
                self.addr
            )))
        }
    }

    /// This span as the destination of a copy of all of `src`: an error naming `what` unless it
    /// is writable, holds `src`, and does not overlap it.
    pub(super) fn copy_target(self, src: &DeviceSpan<'_>, what: &str) -> Result<DeviceSpan<'a>> {
        let dst = self.writable_for(what)?;
        if dst.bytes < src.bytes || dst.overlaps(src) {
            return Err(Error::Invalid(format!(
                "{what}: {} bytes at {:#x} do not fit, without overlap, in {} bytes at {:#x}",
                src.bytes, src.addr, dst.bytes, dst.addr
            )));
        }
        Ok(dst)
    }

    /// True when the two spans share a byte.
    pub fn overlaps(&self, other: &DeviceSpan<'_>) -> bool {
        self.bytes > 0
            && other.bytes > 0
            && self.addr < other.addr + other.bytes
            && other.addr < self.addr + self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(addr: u64, bytes: u64) -> DeviceSpan<'static> {
        // SAFETY: never handed to the GPU; the test checks arithmetic only.
        unsafe { DeviceSpan::from_raw(addr, bytes, true) }
    }

    #[test]
    fn narrowing_is_checked_and_widening_refused() {
        let s = span(0x1000, 100);
        let t = s.slice(10, 90).unwrap();
        assert_eq!((t.addr(), t.bytes()), (0x100a, 90));
        assert_eq!(s.slice(100, 0).unwrap().bytes(), 0);
        for (off, len) in [(10, 91), (101, 0), (0, 101), (u64::MAX, 2), (1, u64::MAX)] {
            let e = s.slice(off, len).unwrap_err().to_string();
            assert!(e.contains("do not fit in a span of 100 bytes"), "{e}");
        }
        let (a, b) = s.split_at(40).unwrap();
        assert_eq!(
            (a.addr(), a.bytes(), b.addr(), b.bytes()),
            (0x1000, 40, 0x1028, 60)
        );
        assert!(s.split_at(101).is_err());
        assert_eq!(s.prefix(7).unwrap().bytes(), 7);
    }

    #[test]
    fn read_only_spans_refuse_writes_and_overlap_is_exact() {
        let s = span(0x1000, 100);
        assert!(s.writable_for("fill").is_ok());
        let r = s.read_only();
        assert!(!r.is_writable() && !r.slice(1, 2).unwrap().is_writable());
        let e = r.writable_for("fill").unwrap_err().to_string();
        assert!(e.starts_with("fill: ") && e.contains("read-only"), "{e}");
        let (a, b) = s.split_at(50).unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(s.overlaps(&a) && a.overlaps(&s.slice(49, 2).unwrap()));
        assert!(!s.overlaps(&s.slice(50, 0).unwrap()));
        // A copy's destination holds its source, without overlap, and is writable.
        assert!(b.copy_target(&a.prefix(50).unwrap(), "copy").is_ok());
        let tiny = s.prefix(10).unwrap();
        for (dst, src) in [(tiny, b), (s, a), (r.slice(50, 50).unwrap(), a)] {
            let e = dst.copy_target(&src, "copy").unwrap_err().to_string();
            assert!(e.starts_with("copy: "), "{e}");
        }
    }
}
