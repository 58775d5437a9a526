//! The two double-buffered load paths: `pinned-staging` (buffered `read()` into two pinned
//! buffers) and `odirect-pinned` (`O_DIRECT` reads, which bypass the page cache, into the same
//! page-aligned pinned buffers). Both hand the driver's [`staged_upload`] a function that fills
//! one buffer while the other is being copied. Imports: the driver's staged upload, the memory
//! layer's pinned allocation.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use super::header::ModelFile;
use super::paths::{CHUNK, Loaded, RunCtx};
use crate::driver::copy::{Stage, staged_upload};
use crate::error::{Error, Result};
use crate::experiments::Gpu;
use crate::memory::{AllocOptions, Allocation, Strategy, allocate};

/// O_DIRECT alignment: offsets, lengths and buffer addresses in multiples of this (4 KiB covers
/// the logical block size of common disks; the pinned buffers are page-aligned).
const ALIGN: u64 = 4096;

fn pinned_pair(ctx: &RunCtx) -> Result<[Box<dyn Allocation>; 2]> {
    let a = || {
        allocate(
            &ctx.gpu.ctx,
            &ctx.gpu.stream,
            Strategy::Pinned,
            CHUNK,
            &AllocOptions::default(),
        )
    };
    Ok([a()?, a()?])
}

/// Runs a staged upload of the data section: `read(buf, file_pos)` fills a buffer from an
/// (aligned) file position and returns the bytes read; `start` is the first file position.
fn staged(
    ctx: &RunCtx,
    dst: &dyn Allocation,
    start: u64,
    mut read: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
) -> Result<Loaded> {
    let mut bufs = pinned_pair(ctx)?;
    let [a, b] = &mut bufs;
    let (Some(a), Some(b)) = (a.host_slice(), b.host_slice()) else {
        return Err(Error::Failed("pinned memory has no host view".into()));
    };
    let (data_start, data_end) = (
        ctx.file.data_offset,
        ctx.file.data_offset + ctx.file.data_bytes,
    );
    let mut pos = start;
    let mut first_ms = None;
    staged_upload(
        &ctx.gpu.stream,
        [a, b],
        |buf| {
            if pos >= data_end {
                return Ok(None);
            }
            let want = want(pos, data_end, CHUNK) as usize;
            let got = read(&mut buf[..want], pos)? as u64;
            if got == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file ended early",
                ));
            }
            let (skip, len, off) = place(pos, got, data_start, data_end);
            pos += got;
            Ok(Some(Stage {
                skip,
                len,
                dst: dst.device_ptr() + off,
            }))
        },
        ctx.first_end(),
        || first_ms = Some(ctx.t0.elapsed().as_secs_f64() * 1e3),
    )?;
    Ok(Loaded {
        first_ms: first_ms.unwrap_or_default(),
        pinned_bytes: 2 * CHUNK,
        note: String::new(),
    })
}

/// Bytes to read at file position `pos`: a whole chunk, or up to the end of the data rounded up
/// to [`ALIGN`] (a multiple of it whenever `pos` is aligned, as O_DIRECT needs).
fn want(pos: u64, data_end: u64, chunk: u64) -> u64 {
    chunk.min(data_end.div_ceil(ALIGN) * ALIGN - pos)
}

/// Where `got` bytes read at file position `pos` go: (bytes to skip in the buffer, bytes to copy,
/// offset in the destination), for a data section at `[data_start, data_end)` of the file.
fn place(pos: u64, got: u64, data_start: u64, data_end: u64) -> (usize, usize, u64) {
    let skip = data_start.saturating_sub(pos).min(got);
    let len = (pos + got).min(data_end).saturating_sub(pos + skip);
    (skip as usize, len as usize, pos + skip - data_start)
}

pub fn pinned_staging(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<Loaded> {
    let f = File::open(&ctx.file.path).map_err(|e| Error::io(&ctx.file.path, e))?;
    staged(ctx, dst, ctx.file.data_offset, |buf, pos| {
        read_full(&f, buf, pos)
    })
}

pub fn odirect_pinned(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<Loaded> {
    let f = open_direct(&ctx.file.path)?;
    let start = ctx.file.data_offset / ALIGN * ALIGN;
    let mut l = staged(ctx, dst, start, |buf, pos| read_full(&f, buf, pos))?;
    l.note = "O_DIRECT".into();
    Ok(l)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], pos + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn open_direct(path: &std::path::Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// O_DIRECT works on this file's file system: it opens with the flag and an aligned 4 KiB read
/// into page-aligned memory succeeds (tmpfs and some overlay file systems refuse with EINVAL).
pub fn odirect_ok(_: &Gpu, file: &ModelFile) -> std::result::Result<(), String> {
    let refuse = |e: std::io::Error| format!("the file system refuses O_DIRECT ({e})");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&file.path)
        .map_err(refuse)?;
    let mut page = memmap2::MmapMut::map_anon(ALIGN as usize).map_err(|e| e.to_string())?;
    f.read_at(&mut page[..], 0).map_err(refuse)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-and-place loop on a file in memory: the pieces rebuild the data section exactly,
    /// from an unaligned start (buffered reads) and from the aligned block before it (O_DIRECT).
    #[test]
    fn pieces_rebuild_the_data_section() {
        let data_start = 296u64;
        for data_len in [1u64, 4095, 4096, 10_000, 3 * 8192 + 17] {
            let file: Vec<u8> = (0..data_start + data_len)
                .map(|i| (i % 251) as u8)
                .collect();
            let data_end = file.len() as u64;
            for start in [data_start, data_start / ALIGN * ALIGN] {
                let mut dev = vec![0u8; data_len as usize];
                let mut pos = start;
                while pos < data_end {
                    let w = want(pos, data_end, 8192);
                    if start.is_multiple_of(ALIGN) {
                        assert!(
                            w.is_multiple_of(ALIGN) && pos.is_multiple_of(ALIGN),
                            "O_DIRECT alignment"
                        );
                    }
                    let got = w.min(data_end - pos);
                    let (skip, len, off) = place(pos, got, data_start, data_end);
                    let buf = &file[pos as usize..(pos + got) as usize];
                    dev[off as usize..off as usize + len].copy_from_slice(&buf[skip..skip + len]);
                    pos += got;
                }
                assert_eq!(
                    dev,
                    file[data_start as usize..],
                    "len {data_len} start {start}"
                );
            }
        }
    }
}
