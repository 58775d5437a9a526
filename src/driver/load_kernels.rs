//! The kernels only `cumemlab load` uses: `checksum` (kernels/checksum.cu) with its exact host
//! mirror, and `copy` (kernels/load_copy.cu). The sum of the data on the GPU must equal the sum
//! of the file's bytes computed on the CPU, so a load path that skipped or misplaced bytes is
//! caught: the sum is position-dependent (each 64-bit word is mixed with its index), so a tensor
//! copied to the wrong offset changes it. `copy` is the device-side copy of the mapped paths
//! (the GPU reads registered or pageable host memory itself).
//!
//! They live in their own file (not in kernels.rs) because only `load` uses them; they borrow the
//! loaded module through [`Kernels::raw_function`], and the checksum owns its 8-byte result.

use std::ffi::c_void;
use std::sync::Arc;

use super::{Context, DevicePtr, Kernels, Result, Stream, cu, record_drop_failure, sys};

/// splitmix64's finaliser (mirror of `cml_mix`).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The contribution of word `w` at word index `i` (mirror of `cml_word_sum`).
fn word_sum(w: u64, i: u64) -> u64 {
    mix(w ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The checksum of `data` as if it started at byte `8 * first_word` of the buffer the kernel
/// reads: sums of consecutive 8-byte-aligned pieces add up (wrapping) to the whole's checksum.
/// The last word of `data` is padded with zero bytes.
pub fn host_checksum(data: &[u8], first_word: u64) -> u64 {
    let mut acc = 0u64;
    let mut chunks = data.chunks_exact(8);
    let mut i = first_word;
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        acc = acc.wrapping_add(word_sum(u64::from_le_bytes(b), i));
        i += 1;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        acc = acc.wrapping_add(word_sum(u64::from_le_bytes(b), i));
    }
    acc
}

/// [`host_checksum`] of a whole buffer on all cores (a 16 GiB file is 2 G words).
pub fn host_checksum_parallel(data: &[u8]) -> u64 {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 64);
    // Pieces of whole words, so each thread's first word index is its byte offset / 8.
    let piece = data.len().div_ceil(threads).div_ceil(8).max(1) * 8;
    std::thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(piece)
            .enumerate()
            .map(|(k, c)| s.spawn(move || host_checksum(c, (k * piece / 8) as u64)))
            .collect();
        handles
            .into_iter()
            .fold(0u64, |acc, h| acc.wrapping_add(h.join().unwrap_or(0)))
    })
}

/// The load kernels, ready to launch, with the checksum's result buffer.
pub struct LoadKernels {
    ctx: Arc<Context>,
    checksum: (sys::CUfunction, u32),
    copy: (sys::CUfunction, u32),
    out: DevicePtr,
}

const BLOCK: u32 = 256;

/// `name` from the module with its occupancy grid of [`BLOCK`]-thread blocks.
fn function(kernels: &Kernels, ctx: &Context, name: &str) -> Result<(sys::CUfunction, u32)> {
    let raw = kernels.raw_function(name)?;
    let mut per_sm = 0i32;
    // SAFETY: `raw` is a function of this context; `per_sm` is an out-pointer.
    unsafe {
        cu!(
            ctx.driver(),
            cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut per_sm, raw, BLOCK as i32, 0)
        )
    }?;
    let sms = ctx
        .device()
        .attribute(sys::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let grid = (sms.max(1) * i64::from(per_sm.max(1))).min(i64::from(i32::MAX)) as u32;
    Ok((raw, grid))
}

impl LoadKernels {
    /// Looks the kernels up in the loaded module and allocates the checksum's 8-byte result.
    pub fn new(kernels: &Kernels) -> Result<LoadKernels> {
        let ctx = kernels.context().clone();
        let checksum = function(kernels, &ctx, "cml_checksum")?;
        let copy = function(kernels, &ctx, "cml_copy")?;
        let mut out: DevicePtr = 0;
        // SAFETY: `out` is a valid out-pointer; the context is current.
        unsafe { cu!(ctx.driver(), cuMemAlloc_v2(&mut out, 8)) }?;
        Ok(LoadKernels {
            ctx,
            checksum,
            copy,
            out,
        })
    }

    /// Launches `f` on `stream` with `params` and waits for it; GPU ms.
    fn launch(
        &self,
        f: (sys::CUfunction, u32),
        stream: &Stream,
        params: &mut [*mut c_void],
    ) -> Result<f64> {
        Ok(stream
            .timed(|st| {
                // SAFETY: each caller passes one pointer per parameter of `f`, of its types; the
                // function and stream are live.
                unsafe {
                    cu!(
                        self.ctx.driver(),
                        cuLaunchKernel(
                            f.0,
                            f.1,
                            1,
                            1,
                            BLOCK,
                            1,
                            1,
                            0,
                            st.raw(),
                            params.as_mut_ptr(),
                            std::ptr::null_mut()
                        )
                    )
                }
            })?
            .0)
    }

    /// The GPU copies `bytes` bytes from `src` to `dst` (device-readable and device memory of the
    /// caller's, not overlapping: a registered range's device address, or a pageable address
    /// where the device reads pageable memory); GPU ms.
    pub fn copy(&self, stream: &Stream, dst: DevicePtr, src: DevicePtr, bytes: u64) -> Result<f64> {
        let (mut d, mut s, mut n) = (dst, src, bytes);
        let mut params: [*mut c_void; 3] = [
            (&mut d as *mut DevicePtr).cast(),
            (&mut s as *mut DevicePtr).cast(),
            (&mut n as *mut u64).cast(),
        ];
        self.launch(self.copy, stream, &mut params)
    }

    /// The checksum of `bytes` bytes of device-readable memory at `ptr` (16-byte aligned), on
    /// `stream`; returns (GPU ms, checksum).
    pub fn checksum(&self, stream: &Stream, ptr: DevicePtr, bytes: u64) -> Result<(f64, u64)> {
        if !ptr.is_multiple_of(16) {
            return Err(super::Error::Invalid(format!(
                "checksum: buffer address {ptr:#x} is not 16-byte aligned"
            )));
        }
        let zero = 0u64;
        // SAFETY: `out` holds 8 bytes; `zero` is 8 bytes of host memory.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemcpyHtoD_v2(self.out, (&zero as *const u64).cast(), 8)
            )
        }?;
        let (mut p, mut n, mut o) = (ptr, bytes, self.out);
        let mut params: [*mut c_void; 3] = [
            (&mut p as *mut DevicePtr).cast(),
            (&mut n as *mut u64).cast(),
            (&mut o as *mut DevicePtr).cast(),
        ];
        let ms = self.launch(self.checksum, stream, &mut params)?;
        let mut sum = 0u64;
        // SAFETY: `sum` is 8 bytes of host memory; `out` holds 8 bytes; the kernel finished.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemcpyDtoH_v2((&mut sum as *mut u64).cast(), self.out, 8)
            )
        }?;
        Ok((ms, sum))
    }
}

impl Drop for LoadKernels {
    fn drop(&mut self) {
        // SAFETY: `out` came from cuMemAlloc and is freed once.
        if let Err(e) = unsafe { cu!(self.ctx.driver(), cuMemFree_v2(self.out)) } {
            record_drop_failure(format!("cuMemFree of the checksum result: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_add_up_and_position_matters() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = host_checksum(&data, 0);
        let split = host_checksum(&data[..496], 0).wrapping_add(host_checksum(&data[496..], 62));
        assert_eq!(whole, split);
        assert_eq!(host_checksum_parallel(&data), whole);
        // Swapping two words changes the sum; a zero tail byte padded or not is the same word.
        let mut swapped = data.clone();
        swapped.swap(0, 8);
        assert_ne!(host_checksum(&swapped, 0), whole);
        assert_ne!(host_checksum(&data, 1), whole);
        assert_eq!(
            host_checksum(&[1, 2, 3], 0),
            host_checksum(&[1, 2, 3, 0, 0], 0)
        );
    }
}
