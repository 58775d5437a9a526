//! A loaded CUDA module ([`Module`]): a fatbin image given to `cuModuleLoadData`, its kernels
//! looked up by name, unloaded on drop. The production kernels come from the fatbin the binary
//! embeds (`kernels.rs`); the kernels only tests and benchmarks use (`kernels/test/*.cu`) are in a
//! second fatbin that build.rs writes next to it and that only the tests embed and load here.
//!
//! The image is checked to be a whole fatbin (magic and size) before the driver reads it, so the
//! driver never reads past the bytes given.
//!
//! Imports: the rest of the driver layer.

use std::ffi::CString;
use std::sync::Arc;

use super::{Context, Error, Result, cu, record_drop_failure, sys};

/// The magic number a fatbin starts with.
const FATBIN_MAGIC: u32 = 0xBA55_ED50;

/// Ok when `image` is one whole fatbin: its magic, and a header whose sizes cover exactly the
/// bytes given (nvcc's layout: magic u32, version u16, header size u16, payload size u64).
pub fn check_fatbin(image: &[u8]) -> Result<()> {
    let bad = |why: &str| Err(Error::Invalid(format!("not a kernel fatbin: {why}")));
    let (Some(magic), Some(head), Some(size)) =
        (image.get(0..4), image.get(6..8), image.get(8..16))
    else {
        return bad(&format!(
            "{} bytes are shorter than its header",
            image.len()
        ));
    };
    let word = |b: &[u8]| {
        b.iter()
            .rev()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
    };
    if word(magic) != u64::from(FATBIN_MAGIC) {
        return bad("wrong magic number");
    }
    let total = word(head).checked_add(word(size));
    if total != Some(image.len() as u64) {
        return bad(&format!(
            "its header describes {total:?} bytes, the image has {}",
            image.len()
        ));
    }
    Ok(())
}

/// A module loaded into a context.
pub struct Module {
    ctx: Arc<Context>,
    raw: sys::CUmodule,
}

// SAFETY: a module handle may be used from any thread on which its context is current; the
// driver synchronises access to it, and the handle is not changed after loading.
unsafe impl Send for Module {}
// SAFETY: as above.
unsafe impl Sync for Module {}

impl Module {
    /// Loads a fatbin image into `ctx` (current on this thread).
    pub fn load(ctx: &Arc<Context>, image: &[u8]) -> Result<Module> {
        check_fatbin(image)?;
        // The fatbin header wants 8-byte alignment, which a byte slice does not promise.
        let mut aligned = vec![0u64; image.len().div_ceil(8)];
        for (i, b) in image.iter().enumerate() {
            aligned[i / 8] |= u64::from(*b) << (8 * (i % 8));
        }
        let mut raw: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: `aligned` holds the checked fatbin (little-endian words, so its bytes are the
        // image's) and lives across the call; `raw` is an out-pointer.
        unsafe {
            cu!(
                ctx.driver(),
                cuModuleLoadData(&mut raw, aligned.as_ptr().cast())
            )
        }?;
        Ok(Module {
            ctx: ctx.clone(),
            raw,
        })
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The kernel `name` of this module.
    pub(super) fn function(&self, name: &str) -> Result<sys::CUfunction> {
        let cname =
            CString::new(name).map_err(|_| Error::Invalid(format!("bad kernel name {name}")))?;
        let mut raw: sys::CUfunction = std::ptr::null_mut();
        // SAFETY: the module is loaded; `cname` is NUL-terminated; `raw` is an out-pointer.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuModuleGetFunction(&mut raw, self.raw, cname.as_ptr())
            )
        }?;
        Ok(raw)
    }

    /// What the occupancy calculator allows for `raw` (a function of this module) with
    /// `block`-thread blocks: blocks per multiprocessor.
    pub(super) fn blocks_per_sm(&self, raw: sys::CUfunction, block: u32) -> Result<i32> {
        let mut per_sm = 0i32;
        let block = i32::try_from(block)
            .map_err(|_| Error::Invalid(format!("a block of {block} threads is too large")))?;
        // SAFETY: `raw` is a valid function of this context; `per_sm` is an out-pointer.
        unsafe {
            cu!(
                self.ctx.driver(),
                cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut per_sm, raw, block, 0)
            )
        }?;
        Ok(per_sm)
    }
}

impl Module {
    /// The sizes in bytes of `raw`'s first `n` parameters, in order (`cuFuncGetParamInfo`, CUDA
    /// 12.4 and newer): fewer when the kernel has fewer; `None` where the driver cannot say (too
    /// old, or it refuses the question, also for the first parameter: every kernel here has one,
    /// so that answer is taken as "cannot say" rather than as a kernel without parameters).
    /// Only indices the launch uses are asked about: asking past the last parameter is how one
    /// would count them, but the driver answers that with an API error, which compute-sanitizer
    /// reports as an error of the program (seen on the H200: memcheck exit 99 on every module
    /// load). A kernel with extra trailing parameters is caught at build time instead
    /// (tests/build_fatbin.rs compares every launch table with the PTX declarations).
    fn param_sizes(&self, raw: sys::CUfunction, n: usize) -> Option<Vec<usize>> {
        let drv = self.ctx.driver();
        drv.lib().cuFuncGetParamInfo.as_ref().ok()?;
        let mut sizes = Vec::new();
        for i in 0..n {
            let (mut offset, mut size) = (0usize, 0usize);
            // SAFETY: `raw` is a function of this loaded module; both out-pointers are valid.
            match unsafe { cu!(drv, cuFuncGetParamInfo(raw, i, &mut offset, &mut size)) } {
                Ok(()) => sizes.push(size),
                Err(Error::Call(e)) if e.code == sys::CUDA_ERROR_INVALID_VALUE && i > 0 => break,
                Err(_) => return None,
            }
        }
        Some(sizes)
    }

    /// The kernel `name`, checked to take parameters of the sizes `want` (in bytes, in order)
    /// where the driver can say: a launch passing other arguments would have the kernel read
    /// garbage addresses.
    pub(super) fn kernel(&self, name: &str, want: &[usize]) -> Result<sys::CUfunction> {
        let raw = self.function(name)?;
        match self.param_sizes(raw, want.len()) {
            Some(sizes) if sizes != want => Err(Error::Invalid(format!(
                "kernel {name} takes parameters of {sizes:?} bytes, not the {want:?} its launch passes"
            ))),
            _ => Ok(raw),
        }
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: the module is owned by `self` and not used afterwards (functions looked up in it
        // are held only by values that hold the module).
        if let Err(e) = unsafe { cu!(self.ctx.driver(), cuModuleUnload(self.raw)) } {
            record_drop_failure(format!("unloading a kernel module: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_fatbin_is_loaded() {
        let fatbin = super::super::kernels::FATBIN;
        assert!(check_fatbin(fatbin).is_ok());
        let mut bad_magic = fatbin.to_vec();
        bad_magic[0] ^= 0xff;
        let short = &fatbin[..fatbin.len() - 1];
        let mut long = fatbin.to_vec();
        long.push(0);
        for (what, b) in [
            ("magic", &bad_magic[..]),
            ("short", short),
            ("long", &long[..]),
            ("empty", &[][..]),
            ("header only", &fatbin[..12]),
        ] {
            let e = check_fatbin(b).unwrap_err().to_string();
            assert!(e.starts_with("not a kernel fatbin"), "{what}: {e}");
        }
    }
}
