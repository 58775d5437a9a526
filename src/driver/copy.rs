//! Host↔device copies for `cumemlab load` and its copy matrix: synchronous and stream-ordered
//! (`cuMemcpyHtoDAsync`, `cuMemcpyDtoHAsync`) copies of byte slices, in chunks, and a
//! double-buffered upload through two host staging buffers.
//!
//! Soundness of the asynchronous forms: every function here synchronises its stream before it
//! returns (on success and on error alike), so the borrowed host slices outlive every copy that
//! reads or writes them; a caller cannot free a buffer a copy is still using. Whether the host
//! memory is pageable, pinned or registered changes only the speed and whether the copy really
//! overlaps the host: that is what the copy matrix measures. Device addresses are the caller's
//! contract (as for every kernel launch in this layer): `dst`/`src` must hold the bytes named.

use super::{Context, DevicePtr, Error, Event, Result, Stream, cu};

/// Copies `src` to device memory at `dst` in pieces of `chunk` bytes: one synchronous
/// `cuMemcpyHtoD` per piece when `stream` is `None`, else `cuMemcpyHtoDAsync` on `stream` for
/// every piece and one synchronise at the end.
pub fn htod_chunks(
    ctx: &Context,
    stream: Option<&Stream>,
    dst: DevicePtr,
    src: &[u8],
    chunk: usize,
) -> Result<()> {
    let chunk = chunk.max(1);
    let mut result = Ok(());
    for (k, piece) in src.chunks(chunk).enumerate() {
        let d = dst + (k * chunk) as u64;
        result = match stream {
            // SAFETY: `piece` is valid for its length; the caller's device memory holds it at `d`.
            None => unsafe {
                cu!(
                    ctx.driver(),
                    cuMemcpyHtoD_v2(d, piece.as_ptr().cast(), piece.len())
                )
            },
            // SAFETY: as above; the stream is synchronised below before `src` can be released.
            Some(s) => unsafe {
                cu!(
                    ctx.driver(),
                    cuMemcpyHtoDAsync_v2(d, piece.as_ptr().cast(), piece.len(), s.raw())
                )
            },
        };
        if result.is_err() {
            break;
        }
    }
    finish(ctx, stream, result)
}

/// Copies device memory at `src` into `dst` in pieces of `chunk` bytes, as [`htod_chunks`].
pub fn dtoh_chunks(
    ctx: &Context,
    stream: Option<&Stream>,
    dst: &mut [u8],
    src: DevicePtr,
    chunk: usize,
) -> Result<()> {
    let chunk = chunk.max(1);
    let mut result = Ok(());
    for (k, piece) in dst.chunks_mut(chunk).enumerate() {
        let s_ptr = src + (k * chunk) as u64;
        let len = piece.len();
        result = match stream {
            // SAFETY: `piece` is valid for writes of its length; the device memory holds it.
            None => unsafe {
                cu!(
                    ctx.driver(),
                    cuMemcpyDtoH_v2(piece.as_mut_ptr().cast(), s_ptr, len)
                )
            },
            // SAFETY: as above; the stream is synchronised below before `dst` can be released.
            Some(s) => unsafe {
                cu!(
                    ctx.driver(),
                    cuMemcpyDtoHAsync_v2(piece.as_mut_ptr().cast(), s_ptr, len, s.raw())
                )
            },
        };
        if result.is_err() {
            break;
        }
    }
    finish(ctx, stream, result)
}

/// Waits for the copies (the stream, or the whole context for synchronous calls, which may still
/// run on the device for device-to-device copies) and returns the first error.
fn finish(ctx: &Context, stream: Option<&Stream>, result: Result<()>) -> Result<()> {
    let synced = match stream {
        Some(s) => s.synchronize(),
        None => ctx.synchronize(),
    };
    result.and(synced)
}

/// One piece of a staged upload: bytes `skip..skip + len` of the staging buffer go to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub skip: usize,
    pub len: usize,
    pub dst: DevicePtr,
}

/// Double-buffered upload: `next` fills a staging buffer (reading a file, say) and says which
/// part of it goes where, or `None` when done; each piece is sent with `cuMemcpyHtoDAsync` while
/// `next` fills the other buffer. With pinned buffers the read and the copy overlap. `first` is
/// called once, as soon as the pieces sent add up to `first_after` bytes and have reached the
/// device (for "time to first tensor"; that one wait is the only break in the overlap).
pub fn staged_upload(
    stream: &Stream,
    mut bufs: [&mut [u8]; 2],
    mut next: impl FnMut(&mut [u8]) -> std::io::Result<Option<Stage>>,
    first_after: u64,
    mut first: impl FnMut(),
) -> Result<()> {
    let ctx = stream.context();
    let events = [Event::new(ctx)?, Event::new(ctx)?];
    let mut used = [false, false];
    let mut k = 0usize;
    let mut sent = 0u64;
    let mut first_done = false;
    let result = (|| -> Result<()> {
        loop {
            let i = k % 2;
            if used[i] {
                // The copy out of this buffer must be done before it is refilled.
                events[i].synchronize()?;
            }
            let stage = next(&mut *bufs[i]).map_err(|e| Error::Os {
                call: "read",
                message: format!("reading into a staging buffer: {e}"),
                out_of_memory: false,
            })?;
            let Some(st) = stage else { return Ok(()) };
            let piece = bufs[i]
                .get(st.skip..st.skip + st.len)
                .ok_or_else(|| Error::Invalid("a staged piece lies outside its buffer".into()))?;
            // SAFETY: `piece` is valid for its length and is not written again before
            // `events[i]` completes (checked above) or the stream is synchronised (below); the
            // caller's device memory holds `st.len` bytes at `st.dst`.
            unsafe {
                cu!(
                    ctx.driver(),
                    cuMemcpyHtoDAsync_v2(st.dst, piece.as_ptr().cast(), piece.len(), stream.raw())
                )
            }?;
            events[i].record(stream)?;
            used[i] = true;
            sent += st.len as u64;
            if !first_done && sent >= first_after {
                events[i].synchronize()?;
                first();
                first_done = true;
            }
            k += 1;
        }
    })();
    result.and(stream.synchronize())
}
