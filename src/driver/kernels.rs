//! The tool's own CUDA kernels (`kernels/*.cu`, compiled by `build.rs` into one embedded fatbin),
//! loaded once per context, with typed launches. Every launch is timed with events on the caller's
//! stream and checked: a launch error names `cuLaunchKernel`, a fault during the kernel names the
//! synchronising call. Launch geometry comes from the device: multiprocessors times the blocks per
//! multiprocessor the occupancy calculator allows for each kernel, except `fill`, which runs one
//! block of the largest size the device and kernel allow per tile of its buffer (see [`FillShape`]).
//!
//! The host mirror of the data pattern (`host_pattern_*`) lives here too, next to the kernels that
//! define it, so CPU-side verification and expected sums cannot drift from `kernels/pattern.cuh`.

use std::ffi::{CString, c_void};
use std::sync::Arc;

use super::{Context, DevicePtr, Error, Result, Stream, cu, record_drop_failure, sys};

/// The fatbin `build.rs` produced.
const FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernels.fatbin"));

/// Threads per block for every kernel.
pub const BLOCK: u32 = 256;

/// 16-byte vectors each thread of `fill` writes per tile (`CML_FILL_VECTORS_PER_THREAD` in
/// kernels/fill.cu). On an H200 (scripts/fill-bench.cu, docs/results/h200-2026-11-30-fill/), one
/// block per tile wrote 101-103% of cuMemsetD32 at 1, 4 and 16 GiB with 1 or 2 vectors per thread
/// and any block size from 128 to 1024, 100-101% with 4, 98-100% with 8; the former persistent
/// grid-stride kernel reached 95% at its best grid (and 2 at 1024 threads was the best mean).
const FILL_VECTORS_PER_THREAD: u64 = 2;

#[derive(Clone, Copy)]
struct Function {
    raw: sys::CUfunction,
    grid: u32,
    block: u32,
}

/// How a fill-shaped kernel is launched (`fill` and the variants in kernels/fill_variants.cu).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillShape {
    /// One block per tile of `vectors_per_thread * block` 16-byte vectors (the tile kernels).
    OneBlockPerTile { block: u32, vectors_per_thread: u32 },
    /// `factor` times the occupancy grid of `block`-thread blocks (persistent kernels).
    Occupancy { block: u32, factor: u32 },
}

/// Grid of one block per tile for `bytes`, at least 1 and at most `max_grid`.
fn tiles_grid(bytes: u64, block: u32, vectors_per_thread: u32, max_grid: u32) -> u32 {
    let tile = u64::from(block.max(1)) * u64::from(vectors_per_thread.max(1));
    ((bytes / 16).div_ceil(tile)).clamp(1, u64::from(max_grid.max(1))) as u32
}

/// What `check` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckResult {
    /// Words (and tail bytes) that differ from the pattern.
    pub mismatches: u64,
    /// Byte offset of the first difference, if any.
    pub first_bad_offset: Option<u64>,
}

/// The loaded module and its kernels, plus a small device buffer for their results.
pub struct Kernels {
    ctx: Arc<Context>,
    module: sys::CUmodule,
    fill: Function,
    touch: Function,
    touch_read: Function,
    read: Function,
    check: Function,
    /// The device's largest grid (x dimension).
    max_grid: u32,
    scratch: DevicePtr,
}

const UNLOADED: Function = Function {
    raw: std::ptr::null_mut(),
    grid: 0,
    block: 0,
};

impl Kernels {
    /// Loads the embedded fatbin into `ctx` (current on this thread) and looks up every kernel.
    pub fn load(ctx: &Arc<Context>) -> Result<Kernels> {
        // The fatbin header wants 8-byte alignment; include_bytes! promises 1.
        let mut image = vec![0u64; FATBIN.len().div_ceil(8)];
        // SAFETY: `image` has at least FATBIN.len() bytes; the regions do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                FATBIN.as_ptr(),
                image.as_mut_ptr().cast::<u8>(),
                FATBIN.len(),
            )
        };
        let mut module: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: `image` is a valid fatbin that lives across the call; `module` is an out-pointer.
        unsafe {
            cu!(
                ctx.driver(),
                cuModuleLoadData(&mut module, image.as_ptr().cast())
            )
        }?;
        let mut scratch: DevicePtr = 0;
        // SAFETY: `scratch` is a valid out-pointer.
        if let Err(e) = unsafe { cu!(ctx.driver(), cuMemAlloc_v2(&mut scratch, 16)) } {
            // SAFETY: the module was loaded above and is not used again.
            let _ = unsafe { cu!(ctx.driver(), cuModuleUnload(module)) };
            return Err(e);
        }
        let mut k = Kernels {
            ctx: ctx.clone(),
            module,
            fill: UNLOADED,
            touch: UNLOADED,
            touch_read: UNLOADED,
            read: UNLOADED,
            check: UNLOADED,
            max_grid: 1,
            scratch,
        };
        // From here on `k` owns the module and scratch; its Drop frees them on any error.
        let max_grid = ctx
            .device()
            .attribute(sys::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?;
        k.max_grid = max_grid.clamp(1, i64::from(i32::MAX)) as u32;
        k.fill = k.function_with_block("cml_fill", k.largest_block("cml_fill")?)?;
        k.touch = k.function("cml_touch")?;
        k.touch_read = k.function("cml_touch_read")?;
        k.read = k.function("cml_read")?;
        k.check = k.function("cml_check")?;
        Ok(k)
    }

    fn function(&self, name: &str) -> Result<Function> {
        self.function_with_block(name, BLOCK)
    }

    pub(crate) fn raw_function(&self, name: &str) -> Result<sys::CUfunction> {
        let cname =
            CString::new(name).map_err(|_| Error::Invalid(format!("bad kernel name {name}")))?;
        let mut raw: sys::CUfunction = std::ptr::null_mut();
        // SAFETY: the module is loaded; `cname` is NUL-terminated; `raw` is an out-pointer.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuModuleGetFunction(&mut raw, self.module, cname.as_ptr())
            )
        }?;
        Ok(raw)
    }

    /// The largest block `name` runs with on this device: the device's maximum threads per block,
    /// halved until the occupancy calculator places at least one such block on a multiprocessor
    /// (the kernel's registers can forbid the largest), never below the warp size.
    fn largest_block(&self, name: &str) -> Result<u32> {
        let raw = self.raw_function(name)?;
        let dev = self.ctx.device();
        let warp = dev.attribute(sys::CU_DEVICE_ATTRIBUTE_WARP_SIZE)?.max(1);
        let mut block = dev
            .attribute(sys::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?
            .clamp(warp, 1 << 20);
        while block > warp && self.blocks_per_sm(raw, block as u32)? < 1 {
            block /= 2;
        }
        Ok(block as u32)
    }

    /// What the occupancy calculator says for `raw` with `block`-thread blocks.
    fn blocks_per_sm(&self, raw: sys::CUfunction, block: u32) -> Result<i32> {
        let mut per_sm = 0i32;
        // SAFETY: `raw` is a valid function of this context; `per_sm` is an out-pointer.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut per_sm, raw, block as i32, 0)
            )
        }?;
        Ok(per_sm)
    }

    /// `name` with `block`-thread blocks and the occupancy grid (multiprocessors times the blocks
    /// per multiprocessor the occupancy calculator allows).
    fn function_with_block(&self, name: &str, block: u32) -> Result<Function> {
        let raw = self.raw_function(name)?;
        let per_sm = self.blocks_per_sm(raw, block)?;
        let sms = self
            .ctx
            .device()
            .attribute(sys::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let grid = (sms.max(1) * i64::from(per_sm.max(1))).min(i64::from(u32::MAX)) as u32;
        Ok(Function { raw, grid, block })
    }

    /// `fill`'s launch for a buffer of `bytes` bytes: (grid, threads per block).
    pub fn fill_launch(&self, bytes: u64) -> (u32, u32) {
        let b = self.fill.block;
        (
            tiles_grid(bytes, b, FILL_VECTORS_PER_THREAD as u32, self.max_grid),
            b,
        )
    }

    /// The grid size used for each fixed-grid kernel (touch, read, check), for reports;
    /// `fill`'s grid follows the buffer size ([`Kernels::fill_launch`]).
    pub fn grid_sizes(&self) -> [(&'static str, u32); 3] {
        [
            ("touch", self.touch.grid),
            ("read", self.read.grid),
            ("check", self.check.grid),
        ]
    }

    /// Launches `f`; `params` points at each argument in order.
    fn launch(&self, f: &Function, stream: &Stream, params: &mut [*mut c_void]) -> Result<()> {
        // SAFETY: `params` holds one valid pointer per kernel parameter, of the right types (each
        // caller below matches the kernel's signature); the function and stream are live.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuLaunchKernel(
                    f.raw,
                    f.grid,
                    1,
                    1,
                    f.block,
                    1,
                    1,
                    0,
                    stream.raw(),
                    params.as_mut_ptr(),
                    std::ptr::null_mut()
                )
            )
        }
    }

    fn aligned(ptr: DevicePtr, what: &str) -> Result<()> {
        if !ptr.is_multiple_of(16) {
            return Err(Error::Invalid(format!(
                "{what}: buffer address {ptr:#x} is not 16-byte aligned"
            )));
        }
        Ok(())
    }

    fn reset_scratch(&self, first: u64) -> Result<()> {
        let init = [0u64, first];
        // SAFETY: scratch holds 16 bytes; `init` is 16 bytes of host memory.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemcpyHtoD_v2(self.scratch, init.as_ptr().cast(), 16)
            )
        }
    }

    fn scratch_values(&self) -> Result<[u64; 2]> {
        let mut out = [0u64; 2];
        // SAFETY: scratch holds 16 bytes; `out` is 16 bytes of host memory.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), self.scratch, 16)
            )
        }?;
        Ok(out)
    }

    /// Writes the pattern of `seed` over `bytes` bytes at `ptr` (16-byte stores); GPU ms.
    pub fn fill(&self, stream: &Stream, ptr: DevicePtr, bytes: u64, seed: u32) -> Result<f64> {
        let (grid, _) = self.fill_launch(bytes);
        let f = Function { grid, ..self.fill };
        self.launch_fill_shaped(&f, "fill", stream, ptr, bytes, seed)
    }

    /// Launches a kernel with `(base, bytes, seed)` parameters, timed.
    fn launch_fill_shaped(
        &self,
        f: &Function,
        what: &str,
        stream: &Stream,
        ptr: DevicePtr,
        bytes: u64,
        seed: u32,
    ) -> Result<f64> {
        Self::aligned(ptr, what)?;
        let (mut p, mut n, mut s) = (ptr, bytes, seed);
        let mut params = [ptr_of(&mut p), ptr_of(&mut n), ptr_of(&mut s)];
        Ok(stream.timed(|st| self.launch(f, st, &mut params))?.0)
    }

    /// Writes `value` into the first word of every `stride`-byte page; GPU ms.
    pub fn touch(
        &self,
        stream: &Stream,
        ptr: DevicePtr,
        bytes: u64,
        stride: u64,
        value: u32,
    ) -> Result<f64> {
        check_stride(stride)?;
        Self::aligned(ptr, "touch")?;
        let (mut p, mut n, mut st, mut v) = (ptr, bytes, stride, value);
        let mut params = [
            ptr_of(&mut p),
            ptr_of(&mut n),
            ptr_of(&mut st),
            ptr_of(&mut v),
        ];
        Ok(stream
            .timed(|s| self.launch(&self.touch, s, &mut params))?
            .0)
    }

    /// Reads the first word of every page; returns (GPU ms, sum of the words read).
    pub fn touch_read(
        &self,
        stream: &Stream,
        ptr: DevicePtr,
        bytes: u64,
        stride: u64,
    ) -> Result<(f64, u64)> {
        check_stride(stride)?;
        Self::aligned(ptr, "touch_read")?;
        self.reset_scratch(0)?;
        let (mut p, mut n, mut st, mut out) = (ptr, bytes, stride, self.scratch);
        let mut params = [
            ptr_of(&mut p),
            ptr_of(&mut n),
            ptr_of(&mut st),
            ptr_of(&mut out),
        ];
        let (ms, ()) = stream.timed(|s| self.launch(&self.touch_read, s, &mut params))?;
        Ok((ms, self.scratch_values()?[0]))
    }

    /// Sums every word; returns (GPU ms, sum). Compare with [`host_pattern_sum`].
    pub fn read(&self, stream: &Stream, ptr: DevicePtr, bytes: u64) -> Result<(f64, u64)> {
        Self::aligned(ptr, "read")?;
        self.reset_scratch(0)?;
        let (mut p, mut n, mut out) = (ptr, bytes, self.scratch);
        let mut params = [ptr_of(&mut p), ptr_of(&mut n), ptr_of(&mut out)];
        let (ms, ()) = stream.timed(|s| self.launch(&self.read, s, &mut params))?;
        Ok((ms, self.scratch_values()?[0]))
    }

    /// Counts the elements that differ from the pattern of `seed`; returns (GPU ms, result).
    pub fn check(
        &self,
        stream: &Stream,
        ptr: DevicePtr,
        bytes: u64,
        seed: u32,
    ) -> Result<(f64, CheckResult)> {
        Self::aligned(ptr, "check")?;
        self.reset_scratch(u64::MAX)?;
        let (mut p, mut n, mut s) = (ptr, bytes, seed);
        let (mut bad, mut first) = (self.scratch, self.scratch + 8);
        let mut params = [
            ptr_of(&mut p),
            ptr_of(&mut n),
            ptr_of(&mut s),
            ptr_of(&mut bad),
            ptr_of(&mut first),
        ];
        let (ms, ()) = stream.timed(|st| self.launch(&self.check, st, &mut params))?;
        let [mismatches, first] = self.scratch_values()?;
        Ok((
            ms,
            CheckResult {
                mismatches,
                first_bad_offset: (first != u64::MAX).then_some(first),
            },
        ))
    }

    /// `cuMemsetD32` over `bytes / 4` words (the memset baseline); GPU ms.
    pub fn memset_d32(
        &self,
        stream: &Stream,
        ptr: DevicePtr,
        bytes: u64,
        value: u32,
    ) -> Result<f64> {
        let words = (bytes / 4) as usize;
        // SAFETY: the caller's buffer holds at least `bytes` bytes at `ptr`.
        Ok(stream
            .timed(|_| unsafe { cu!(self.ctx.driver(), cuMemsetD32_v2(ptr, value, words)) })?
            .0)
    }

    /// `cuMemsetD8` (poison a buffer, or plant a wrong byte); synchronous.
    pub fn memset_d8(&self, ptr: DevicePtr, bytes: u64, value: u8) -> Result<()> {
        // SAFETY: the caller's buffer holds at least `bytes` bytes at `ptr`.
        unsafe { cu!(self.ctx.driver(), cuMemsetD8_v2(ptr, value, bytes as usize)) }?;
        self.ctx.synchronize()
    }

    /// Device-to-device `cuMemcpy` of `bytes` bytes (the copy baseline); GPU ms.
    pub fn copy(&self, stream: &Stream, dst: DevicePtr, src: DevicePtr, bytes: u64) -> Result<f64> {
        // SAFETY: both buffers hold at least `bytes` bytes and do not overlap (caller's contract).
        Ok(stream
            .timed(|_| unsafe {
                cu!(self.ctx.driver(), cuMemcpyDtoD_v2(dst, src, bytes as usize))
            })?
            .0)
    }

    /// Copies `out.len()` bytes from device memory at `src` to the host (tests, spot checks).
    pub fn download(&self, src: DevicePtr, out: &mut [u8]) -> Result<()> {
        // SAFETY: `out` is valid for its length; the caller's buffer holds that many bytes at `src`.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), src, out.len())
            )
        }
    }

    /// Copies `data` to device memory at `dst` (tests: plant a wrong value).
    pub fn upload(&self, dst: DevicePtr, data: &[u8]) -> Result<()> {
        // SAFETY: `data` is valid for its length; the caller's buffer holds that many bytes at `dst`.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemcpyHtoD_v2(dst, data.as_ptr().cast(), data.len())
            )
        }
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Times a fill-shaped kernel of the module by name (`(base, bytes, seed)` parameters)
    /// launched with `shape`: for comparing fill variants (kernels/fill_variants.cu). A block
    /// larger than the kernel allows is an error (named by the launch).
    pub fn time_fill_variant(
        &self,
        name: &str,
        shape: FillShape,
        stream: &Stream,
        ptr: DevicePtr,
        bytes: u64,
        seed: u32,
    ) -> Result<f64> {
        let f = match shape {
            FillShape::Occupancy { block, factor } => {
                let f = self.function_with_block(name, block)?;
                Function {
                    grid: f.grid.saturating_mul(factor.max(1)).min(self.max_grid),
                    ..f
                }
            }
            FillShape::OneBlockPerTile {
                block,
                vectors_per_thread,
            } => Function {
                raw: self.raw_function(name)?,
                grid: tiles_grid(bytes, block, vectors_per_thread, self.max_grid),
                block,
            },
        };
        self.launch_fill_shaped(&f, name, stream, ptr, bytes, seed)
    }
}

impl Drop for Kernels {
    fn drop(&mut self) {
        // SAFETY: scratch and module are owned by `self` and not used afterwards.
        if let Err(e) = unsafe { cu!(self.ctx.driver(), cuMemFree_v2(self.scratch)) } {
            record_drop_failure(format!("freeing the kernels' scratch buffer: {e}"));
        }
        // SAFETY: as above.
        if let Err(e) = unsafe { cu!(self.ctx.driver(), cuModuleUnload(self.module)) } {
            record_drop_failure(format!("unloading the kernel module: {e}"));
        }
    }
}

fn ptr_of<T>(v: &mut T) -> *mut c_void {
    (v as *mut T).cast()
}

fn check_stride(stride: u64) -> Result<()> {
    if stride == 0 || !stride.is_multiple_of(4) {
        return Err(Error::Invalid(format!(
            "page stride {stride} must be a positive multiple of 4 bytes"
        )));
    }
    Ok(())
}

/// The per-lane constants of the pattern (mirror of `CML_LANE*` in kernels/pattern.cuh).
const LANES: [u32; 4] = [0x0000_0000, 0x68E3_1DA4, 0xB529_7A4D, 0x1B56_C4E9];

/// Word `i` of the pattern of `seed` (mirror of `cml_pattern` in kernels/pattern.cuh): the hash
/// of its 16-byte vector `i / 4`, xor the constant of its lane `i % 4`.
pub fn host_pattern_word(i: u64, seed: u32) -> u32 {
    let j = i >> 2;
    let mut x = (j as u32) ^ ((j >> 32) as u32).wrapping_mul(0x85EB_CA6B) ^ seed;
    x = x.wrapping_mul(0x9E37_79B1);
    (x ^ (x >> 15)) ^ LANES[(i & 3) as usize]
}

/// Byte `k` of the pattern (mirror of `cml_pattern_byte`).
pub fn host_pattern_byte(k: u64, seed: u32) -> u8 {
    (host_pattern_word(k >> 2, seed) >> (8 * (k & 3))) as u8
}

/// What `read` returns for a buffer of `bytes` bytes filled with `seed`: the sum of the words of
/// the 16-byte part plus each tail byte. Computed on all cores (a 16 GiB buffer is 4 G words).
pub fn host_pattern_sum(bytes: u64, seed: u32) -> u64 {
    let nvec = bytes / 16;
    let words = nvec * 4;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
        .clamp(1, 64);
    let chunk = words.div_ceil(threads).max(1);
    let mut total = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let lo = (t * chunk).min(words);
                    let hi = ((t + 1) * chunk).min(words);
                    (lo..hi).fold(0u64, |acc, i| {
                        acc.wrapping_add(u64::from(host_pattern_word(i, seed)))
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .fold(0u64, |acc, h| acc.wrapping_add(h.join().unwrap_or(0)))
    });
    for k in nvec * 16..bytes {
        total = total.wrapping_add(u64::from(host_pattern_byte(k, seed)));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_catches_misplaced_words() {
        let seed = 0x1234_5678;
        let mut seen = std::collections::HashSet::new();
        // The vector hash is a bijection of the vector index: lane 0 never repeats...
        for j in 0..100_000u64 {
            assert!(
                seen.insert(host_pattern_word(4 * j, seed)),
                "vector hash repeats at {j}"
            );
            // ...the four words of a vector differ...
            let w: Vec<u32> = (0..4).map(|q| host_pattern_word(4 * j + q, seed)).collect();
            assert!(
                w[0] != w[1]
                    && w[0] != w[2]
                    && w[0] != w[3]
                    && w[1] != w[2]
                    && w[1] != w[3]
                    && w[2] != w[3]
            );
            // ...and each word differs from the same lane of the next vector (a misplaced store).
            assert!(
                (0..4).all(|q| host_pattern_word(4 * j + q, seed)
                    != host_pattern_word(4 * j + 4 + q, seed))
            );
        }
        assert_ne!(host_pattern_word(7, 1), host_pattern_word(7, 2));
        // Words above 2^32 differ from their low-half twins.
        assert_ne!(host_pattern_word(5, 9), host_pattern_word(5 + (1 << 34), 9));
    }

    #[test]
    fn one_block_per_tile() {
        // 2 vectors x 1024 threads = 32 KiB tiles.
        assert_eq!(tiles_grid(4 << 30, 1024, 2, i32::MAX as u32), 131_072);
        assert_eq!(tiles_grid(32 * 1024 + 16, 1024, 2, i32::MAX as u32), 2);
        // A tail shorter than a vector needs no block of its own (thread t writes tail byte t).
        assert_eq!(tiles_grid(32 * 1024 + 15, 1024, 2, i32::MAX as u32), 1);
        assert_eq!(tiles_grid(32 * 1024, 1024, 2, i32::MAX as u32), 1);
        // Nothing to write still launches one block (the kernel writes a tail, or nothing).
        assert_eq!(tiles_grid(0, 1024, 2, i32::MAX as u32), 1);
        assert_eq!(tiles_grid(15, 1024, 2, i32::MAX as u32), 1);
        // The device's grid limit caps it (the kernel's tile loop covers the rest).
        assert_eq!(tiles_grid(1 << 40, 128, 1, 65_535), 65_535);
    }

    #[test]
    fn bytes_are_little_endian_words() {
        let w = host_pattern_word(3, 77);
        let b: Vec<u8> = (12..16).map(|k| host_pattern_byte(k, 77)).collect();
        assert_eq!(w.to_le_bytes().to_vec(), b);
    }

    #[test]
    fn sum_counts_tail_bytes_once() {
        let seed = 42;
        let by_hand: u64 = (0..8u64)
            .map(|i| u64::from(host_pattern_word(i, seed)))
            .sum::<u64>()
            + (32..37u64)
                .map(|k| u64::from(host_pattern_byte(k, seed)))
                .sum::<u64>();
        assert_eq!(host_pattern_sum(37, seed), by_hand);
        assert_eq!(host_pattern_sum(0, seed), 0);
        assert_eq!(
            host_pattern_sum(15, seed),
            (0..15u64)
                .map(|k| u64::from(host_pattern_byte(k, seed)))
                .sum::<u64>()
        );
    }
}
