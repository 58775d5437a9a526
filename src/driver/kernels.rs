//! The tool's own CUDA kernels (`kernels/*.cu`, compiled by `build.rs` into one embedded fatbin),
//! loaded once per context, with typed launches. Every launch is timed with events on the caller's
//! stream and checked: a launch error names `cuLaunchKernel`, a fault during the kernel names the
//! synchronising call. Launch geometry comes from the device: multiprocessors times the blocks per
//! multiprocessor the occupancy calculator allows for each kernel, except `fill`, which runs one
//! block of the largest size the device and kernel allow per tile of its buffer (see [`FillShape`]).
//!
//! Every launch, set and copy takes its memory as a [`DeviceSpan`] borrowed from a live
//! allocation and works on exactly that span: the length cannot exceed the allocation, writes to
//! a read-only span are refused, and a copy's destination must hold its source without overlap.
//! Each kernel is checked at load to take parameters of the sizes its launch passes (where the
//! driver can say: `cuFuncGetParamInfo`, CUDA 12.4 and newer), so a kernel edited without its
//! launch fails to load instead of reading garbage addresses.
//! Kernels only tests and benchmarks use are not here: they are in `kernels/test/`, a fatbin of
//! their own that tests load as a [`Module`] and launch with [`Kernels::time_fill_variant`].
//!
//! Imports: the rest of the driver layer.

use std::ffi::c_void;
use std::sync::Arc;

use super::{Context, DeviceBuffer, DeviceSpan, Error, Module, Result, Stream, Untimed, cu, sys};

/// The fatbin `build.rs` produced from `kernels/*.cu`.
pub(super) const FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernels.fatbin"));

/// Threads per block for every kernel.
pub const BLOCK: u32 = 256;

/// 16-byte vectors each thread of `fill` writes per tile (`CML_FILL_VECTORS_PER_THREAD` in
/// kernels/fill.cu). On an H200 (scripts/fill-bench.cu, docs/results/h200-2026-11-30-fill/), one
/// block per tile wrote 101-103% of cuMemsetD32 at 1, 4 and 16 GiB with 1 or 2 vectors per thread
/// and any block size from 128 to 1024, 100-101% with 4, 98-100% with 8; the former persistent
/// grid-stride kernel reached 95% at its best grid (and 2 at 1024 threads was the best mean).
const FILL_VECTORS_PER_THREAD: u64 = 2;

/// The name every fill-shaped kernel starts with: such a kernel takes `(uint8_t* base, uint64_t
/// bytes, uint32_t seed)` and writes only `base[0 .. bytes)` (kernels/fill.cu,
/// kernels/test/fill_variants.cu). [`Kernels::time_fill_variant`] launches no other.
pub const FILL_PREFIX: &str = "cml_fill";

/// The sizes in bytes of a fill-shaped kernel's parameters: `(base, bytes, seed)`.
pub const FILL_PARAMS: [usize; 3] = [8, 8, 4];

/// Every production kernel with the sizes in bytes of the parameters its launch below passes:
/// checked at load where the driver can say, and against the fatbin's PTX by
/// tests/build_fatbin.rs (no GPU needed).
pub const KERNEL_PARAMS: [(&str, &[usize]); 5] = [
    ("cml_fill", &FILL_PARAMS),
    // (base, bytes, stride, value)
    ("cml_touch", &[8, 8, 8, 4]),
    // (base, bytes, stride, out)
    ("cml_touch_read", &[8, 8, 8, 8]),
    // (base, bytes, out)
    ("cml_read", &[8, 8, 8]),
    // (base, bytes, seed, bad, first)
    ("cml_check", &[8, 8, 4, 8, 8]),
];

/// The kernel `name` of `module`, checked against [`KERNEL_PARAMS`].
fn production_kernel(module: &Module, name: &str) -> Result<sys::CUfunction> {
    let params = KERNEL_PARAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .ok_or_else(|| Error::Invalid(format!("{name} is not a kernel of KERNEL_PARAMS")))?;
    module.kernel(name, params)
}

#[derive(Clone, Copy)]
struct Function {
    raw: sys::CUfunction,
    grid: u32,
    block: u32,
}

/// How a fill-shaped kernel is launched (`fill` and the variants in kernels/test/fill_variants.cu).
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
    fill: Function,
    touch: Function,
    touch_read: Function,
    read: Function,
    check: Function,
    /// The device's largest grid (x dimension).
    max_grid: u32,
    scratch: DeviceBuffer,
    // Last: the functions above are handles into it.
    module: Module,
}

/// `raw` with `block`-thread blocks and the occupancy grid (multiprocessors times the blocks per
/// multiprocessor the occupancy calculator allows).
fn with_block(module: &Module, raw: sys::CUfunction, block: u32) -> Result<Function> {
    let per_sm = module.blocks_per_sm(raw, block)?;
    let sms = module
        .context()
        .device()
        .attribute(sys::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let grid = (sms.max(1) * i64::from(per_sm.max(1))).min(i64::from(u32::MAX)) as u32;
    Ok(Function { raw, grid, block })
}

/// The largest block `raw` runs with on this device: the device's maximum threads per block,
/// halved until the occupancy calculator places at least one such block on a multiprocessor
/// (the kernel's registers can forbid the largest), never below the warp size.
fn largest_block(module: &Module, raw: sys::CUfunction) -> Result<u32> {
    let dev = module.context().device();
    let warp = dev.attribute(sys::CU_DEVICE_ATTRIBUTE_WARP_SIZE)?.max(1);
    let mut block = dev
        .attribute(sys::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?
        .clamp(warp, 1 << 20);
    while block > warp && module.blocks_per_sm(raw, block as u32)? < 1 {
        block /= 2;
    }
    Ok(block as u32)
}

impl Kernels {
    /// Loads the embedded fatbin into `ctx` (current on this thread) and looks up every kernel.
    pub fn load(ctx: &Arc<Context>) -> Result<Kernels> {
        let module = Module::load(ctx, FATBIN)?;
        let scratch = DeviceBuffer::alloc(ctx, 16, &mut Untimed)?;
        let max_grid = ctx
            .device()
            .attribute(sys::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?
            .clamp(1, i64::from(i32::MAX)) as u32;
        let function = |name: &str| with_block(&module, production_kernel(&module, name)?, BLOCK);
        let fill = production_kernel(&module, "cml_fill")?;
        Ok(Kernels {
            ctx: ctx.clone(),
            fill: with_block(&module, fill, largest_block(&module, fill)?)?,
            touch: function("cml_touch")?,
            touch_read: function("cml_touch_read")?,
            read: function("cml_read")?,
            check: function("cml_check")?,
            max_grid,
            scratch,
            module,
        })
    }

    /// The production module (for [`Kernels::time_fill_variant`] on `cml_fill`).
    pub fn module(&self) -> &Module {
        &self.module
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
        // caller below matches the kernel's signature, and every memory argument is a span the
        // kernel stays inside); the function and stream are live.
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

    fn aligned(span: DeviceSpan<'_>, what: &str) -> Result<()> {
        if !span.addr().is_multiple_of(16) {
            return Err(Error::Invalid(format!(
                "{what}: buffer address {:#x} is not 16-byte aligned",
                span.addr()
            )));
        }
        Ok(())
    }

    fn reset_scratch(&self, first: u64) -> Result<()> {
        let mut init = [0u8; 16];
        init[8..].copy_from_slice(&first.to_le_bytes());
        self.upload(self.scratch.span(), &init)
    }

    fn scratch_values(&self) -> Result<[u64; 2]> {
        let mut out = [0u8; 16];
        self.download(self.scratch.span(), &mut out)?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&out[8 * i..8 * i + 8]);
            u64::from_le_bytes(w)
        };
        Ok([word(0), word(1)])
    }

    /// Writes the pattern of `seed` over `span` (16-byte stores); GPU ms.
    pub fn fill(&self, stream: &Stream, span: DeviceSpan<'_>, seed: u32) -> Result<f64> {
        let (grid, _) = self.fill_launch(span.bytes());
        let f = Function { grid, ..self.fill };
        self.launch_fill_shaped(&f, "fill", stream, span, seed)
    }

    /// Launches a fill-shaped kernel with `(base, bytes, seed)` parameters over `span`, timed.
    fn launch_fill_shaped(
        &self,
        f: &Function,
        what: &str,
        stream: &Stream,
        span: DeviceSpan<'_>,
        seed: u32,
    ) -> Result<f64> {
        let span = span.writable_for(what)?;
        Self::aligned(span, what)?;
        let (mut p, mut n, mut s) = (span.addr(), span.bytes(), seed);
        let mut params = [ptr_of(&mut p), ptr_of(&mut n), ptr_of(&mut s)];
        Ok(stream.timed(|st| self.launch(f, st, &mut params))?.0)
    }

    /// Writes `value` into the first word of every `stride`-byte page of `span`; GPU ms.
    pub fn touch(
        &self,
        stream: &Stream,
        span: DeviceSpan<'_>,
        stride: u64,
        value: u32,
    ) -> Result<f64> {
        check_stride(stride)?;
        let span = span.writable_for("touch")?;
        Self::aligned(span, "touch")?;
        let (mut p, mut n, mut st, mut v) = (span.addr(), span.bytes(), stride, value);
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
        span: DeviceSpan<'_>,
        stride: u64,
    ) -> Result<(f64, u64)> {
        check_stride(stride)?;
        Self::aligned(span, "touch_read")?;
        self.reset_scratch(0)?;
        let (mut p, mut n, mut st) = (span.addr(), span.bytes(), stride);
        let mut out = self.scratch.span().addr();
        let mut params = [
            ptr_of(&mut p),
            ptr_of(&mut n),
            ptr_of(&mut st),
            ptr_of(&mut out),
        ];
        let (ms, ()) = stream.timed(|s| self.launch(&self.touch_read, s, &mut params))?;
        Ok((ms, self.scratch_values()?[0]))
    }

    /// Sums every word of `span`; returns (GPU ms, sum). Compare with [`super::host_pattern_sum`].
    pub fn read(&self, stream: &Stream, span: DeviceSpan<'_>) -> Result<(f64, u64)> {
        Self::aligned(span, "read")?;
        self.reset_scratch(0)?;
        let (mut p, mut n, mut out) = (span.addr(), span.bytes(), self.scratch.span().addr());
        let mut params = [ptr_of(&mut p), ptr_of(&mut n), ptr_of(&mut out)];
        let (ms, ()) = stream.timed(|s| self.launch(&self.read, s, &mut params))?;
        Ok((ms, self.scratch_values()?[0]))
    }

    /// Counts the elements of `span` that differ from the pattern of `seed`; returns (GPU ms,
    /// result).
    pub fn check(
        &self,
        stream: &Stream,
        span: DeviceSpan<'_>,
        seed: u32,
    ) -> Result<(f64, CheckResult)> {
        Self::aligned(span, "check")?;
        self.reset_scratch(u64::MAX)?;
        let (mut p, mut n, mut s) = (span.addr(), span.bytes(), seed);
        let mut bad = self.scratch.span().addr();
        let mut first = bad + 8;
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

    /// `cuMemsetD32` over the whole 4-byte words of `span` (the memset baseline); GPU ms.
    pub fn memset_d32(&self, stream: &Stream, span: DeviceSpan<'_>, value: u32) -> Result<f64> {
        let span = span.writable_for("cuMemsetD32")?;
        let words = (span.bytes() / 4) as usize;
        // SAFETY: `words * 4 <= span.bytes()`: the set stays inside the span's live memory.
        Ok(stream
            .timed(|_| unsafe {
                cu!(self.ctx.driver(), cuMemsetD32_v2(span.addr(), value, words))
            })?
            .0)
    }

    /// `cuMemsetD8` over `span` (poison a buffer, or plant a wrong byte); synchronous.
    pub fn memset_d8(&self, span: DeviceSpan<'_>, value: u8) -> Result<()> {
        let span = span.writable_for("cuMemsetD8")?;
        // SAFETY: the set covers exactly the span's live memory.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemsetD8_v2(span.addr(), value, span.bytes() as usize)
            )
        }?;
        self.ctx.synchronize()
    }

    /// Device-to-device `cuMemcpy` of all of `src` to the start of `dst` (the copy baseline); GPU
    /// ms. `dst` must hold `src` and not overlap it.
    pub fn copy(&self, stream: &Stream, dst: DeviceSpan<'_>, src: DeviceSpan<'_>) -> Result<f64> {
        let dst = dst.copy_target(&src, "cuMemcpyDtoD")?;
        // SAFETY: both spans are live memory; the copy reads all of `src` and writes as many
        // bytes inside `dst`, which do not overlap (checked above).
        Ok(stream
            .timed(|_| unsafe {
                cu!(
                    self.ctx.driver(),
                    cuMemcpyDtoD_v2(dst.addr(), src.addr(), src.bytes() as usize)
                )
            })?
            .0)
    }

    /// Copies the first `out.len()` bytes of `src` to the host (tests, spot checks).
    pub fn download(&self, src: DeviceSpan<'_>, out: &mut [u8]) -> Result<()> {
        let src = src.prefix(out.len() as u64)?;
        // SAFETY: `out` is valid for its length; `src` is live memory of exactly that length.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), src.addr(), out.len())
            )
        }
    }

    /// Copies `data` to the start of `dst` (tests: plant a wrong value).
    pub fn upload(&self, dst: DeviceSpan<'_>, data: &[u8]) -> Result<()> {
        let dst = dst
            .writable_for("cuMemcpyHtoD")?
            .prefix(data.len() as u64)?;
        // SAFETY: `data` is valid for its length; `dst` is live writable memory of that length.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuMemcpyHtoD_v2(dst.addr(), data.as_ptr().cast(), data.len())
            )
        }
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Times the fill-shaped kernel `name` of `module` (its name starts with [`FILL_PREFIX`]:
    /// `(base, bytes, seed)` parameters) over `span`, launched with `shape`: for comparing fill
    /// variants (`kernels/test/fill_variants.cu`, or `cml_fill` of [`Kernels::module`]). Another
    /// name, or parameters of other sizes (`cuFuncGetParamInfo`, where the driver has it), are
    /// refused before the launch. A block larger than the kernel allows is an error (named by the
    /// launch).
    pub fn time_fill_variant(
        &self,
        module: &Module,
        name: &str,
        shape: FillShape,
        stream: &Stream,
        span: DeviceSpan<'_>,
        seed: u32,
    ) -> Result<f64> {
        if !name.starts_with(FILL_PREFIX) {
            return Err(Error::Invalid(format!(
                "{name} is not a fill-shaped kernel (their names start with {FILL_PREFIX})"
            )));
        }
        let raw = module.kernel(name, &FILL_PARAMS)?;
        let f = match shape {
            FillShape::Occupancy { block, factor } => {
                let f = with_block(module, raw, block)?;
                Function {
                    grid: f.grid.saturating_mul(factor.max(1)).min(self.max_grid),
                    ..f
                }
            }
            FillShape::OneBlockPerTile {
                block,
                vectors_per_thread,
            } => Function {
                raw,
                grid: tiles_grid(span.bytes(), block, vectors_per_thread, self.max_grid),
                block,
            },
        };
        self.launch_fill_shaped(&f, name, stream, span, seed)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
