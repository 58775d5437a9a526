//! The safe layer over the CUDA driver API.
//!
//! Contract (the three-layer split of well-regarded Rust CUDA bindings):
//! - [`sys`] is raw and generated; nothing outside this layer and `memory` touches it.
//! - Everything here returns [`Result`]; a failed call is an [`Error::Call`] naming the call.
//! - RAII types own handles; children keep their parent alive through `Arc` (a stream keeps its
//!   context, a function its module); `Drop` never panics: a failed release is recorded with
//!   [`record_drop_failure`] and reported by the command at exit, not thrown.
//! - The library is opened at run time ([`Driver::load`]); a missing libcuda or symbol is an error
//!   naming what was searched, so host-side commands run on machines with no GPU.

pub mod sys;

mod context;
pub mod copy;
mod device;
mod error;
mod kernels;
pub mod load_kernels;

use std::ffi::CStr;
use std::sync::{Arc, Mutex};

pub use context::{Context, Event, Stream};
pub use device::{ATTRIBUTES, Attribute, Device, DeviceAttributes};
pub use error::{DriverError, Error, Result};
pub use kernels::{
    CheckResult, FillShape, Kernels, host_pattern_byte, host_pattern_sum, host_pattern_word,
};

/// A device address (`CUdeviceptr`).
pub type DevicePtr = sys::CUdeviceptr;

/// Calls a driver function through the loaded library and turns its `CUresult` into a `Result`.
/// The expansion calls an `unsafe` function without an `unsafe` block of its own, so every use
/// must sit inside the caller's `unsafe { }` with the caller's `// SAFETY:` reasoning.
macro_rules! cu {
    ($drv:expr, $f:ident ( $($arg:expr),* $(,)? )) => {{
        let drv: &$crate::driver::Driver = $drv;
        match drv.lib().$f.as_ref() {
            Ok(func) => drv.check(stringify!($f), func($($arg),*)),
            Err(e) => Err($crate::driver::Error::MissingSymbol {
                symbol: stringify!($f),
                reason: e.to_string(),
            }),
        }
    }};
}
pub(crate) use cu;

/// Where libcuda is looked for, in order, after `$CUMEMLAB_LIBCUDA`.
const LIBCUDA_CANDIDATES: &[&str] = &[
    "libcuda.so.1",
    "libcuda.so",
    "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
    "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
    "/usr/lib64/libcuda.so.1",
    "/usr/local/nvidia/lib64/libcuda.so.1",
    "/usr/lib/wsl/lib/libcuda.so.1",
];

static VERBOSE_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes a missing driver print its long form (every path tried and the loader's message) instead
/// of the one short line; `-v`/`--verbose` on the command line sets it.
pub fn set_verbose_errors(on: bool) {
    VERBOSE_ERRORS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `-v`/`--verbose` asked for the long form of a missing-driver error.
pub fn verbose_errors() -> bool {
    VERBOSE_ERRORS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The one short line for "there is no CUDA driver here" that every command, the lab's report
/// and the tests' SKIP lines print; the long form (`{:#}` or `-v`) lists every path tried. The
/// hint names a whole command because the line also appears where `-v` cannot be passed (a
/// report, a test's SKIP line).
pub fn no_driver_line(tried: &[String], reason: &str) -> String {
    let first = tried.first().map(String::as_str).unwrap_or("libcuda.so.1");
    let what = if reason.contains("No such file") || reason.contains("cannot open shared object") {
        format!("{first} not found")
    } else {
        let short: String = reason.chars().take(120).collect();
        format!("cannot open {first}: {short}")
    };
    format!("no CUDA driver ({what}); `cumemlab -v info` lists the paths tried")
}

struct DriverInner {
    lib: sys::CudaDriver,
    path: String,
    version: i32,
}

/// The loaded and initialised driver library. Cheap to clone.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<DriverInner>,
}

// SAFETY: the CUDA driver API is thread-safe; the library handle and function pointers are
// immutable after loading.
unsafe impl Send for DriverInner {}
// SAFETY: as above.
unsafe impl Sync for DriverInner {}

impl Driver {
    /// Opens libcuda (`$CUMEMLAB_LIBCUDA` first, then the usual names and paths), calls `cuInit`
    /// and reads the driver version.
    pub fn load() -> Result<Driver> {
        let mut tried = Vec::new();
        let mut first_error: Option<String> = None;
        let mut candidates: Vec<String> = Vec::new();
        if let Ok(p) = std::env::var("CUMEMLAB_LIBCUDA")
            && !p.is_empty()
        {
            candidates.push(p);
        }
        candidates.extend(LIBCUDA_CANDIDATES.iter().map(|s| s.to_string()));
        for path in candidates {
            // SAFETY: opening libcuda runs its initialisers, which have no preconditions; the
            // library stays loaded as long as the `CudaDriver` that owns it.
            match unsafe { sys::CudaDriver::new(&path) } {
                Ok(lib) if lib.cuInit.is_err() => {
                    // A library without cuInit is not an old driver but not a CUDA driver at all.
                    return Err(Error::Invalid(format!(
                        "{path} is not a CUDA driver library (it has no cuInit): set CUMEMLAB_LIBCUDA to the path of libcuda.so.1"
                    )));
                }
                Ok(lib) => {
                    let mut d = Driver {
                        inner: Arc::new(DriverInner {
                            lib,
                            path,
                            version: 0,
                        }),
                    };
                    // SAFETY: cuInit takes flags by value (0 is the only valid value).
                    unsafe { cu!(&d, cuInit(0)) }?;
                    let mut v = 0i32;
                    // SAFETY: `v` is a valid out-pointer for the call.
                    unsafe { cu!(&d, cuDriverGetVersion(&mut v)) }?;
                    if let Some(inner) = Arc::get_mut(&mut d.inner) {
                        inner.version = v;
                    }
                    return Ok(d);
                }
                Err(e) => {
                    // The first candidate (libcuda.so.1 through the loader's search path) gives the
                    // telling message; later ones are fallbacks.
                    first_error.get_or_insert_with(|| match std::error::Error::source(&e) {
                        Some(src) => src.to_string(),
                        None => e.to_string(),
                    });
                    tried.push(path);
                }
            }
        }
        Err(Error::Load {
            tried,
            reason: first_error.unwrap_or_else(|| "not found".into()),
        })
    }

    pub(crate) fn lib(&self) -> &sys::CudaDriver {
        &self.inner.lib
    }

    /// The path libcuda was opened from.
    pub fn library_path(&self) -> &str {
        &self.inner.path
    }

    /// The CUDA version the driver supports, as `1000 * major + 10 * minor` (13000 = 13.0).
    pub fn version(&self) -> i32 {
        self.inner.version
    }

    /// "13.0" from 13000.
    pub fn version_string(&self) -> String {
        format!(
            "{}.{}",
            self.inner.version / 1000,
            (self.inner.version % 1000) / 10
        )
    }

    /// Number of CUDA devices.
    pub fn device_count(&self) -> Result<i32> {
        let mut n = 0;
        // SAFETY: `n` is a valid out-pointer.
        unsafe { cu!(self, cuDeviceGetCount(&mut n)) }?;
        Ok(n)
    }

    /// The device of this ordinal.
    pub fn device(&self, ordinal: i32) -> Result<Device> {
        Device::new(self.clone(), ordinal)
    }

    /// Turns a `CUresult` into a `Result`, fetching the driver's name and description on error.
    pub(crate) fn check(&self, call: &'static str, code: sys::CUresult) -> Result<()> {
        if code == sys::CUDA_SUCCESS {
            return Ok(());
        }
        Err(Error::Call(DriverError {
            call,
            code,
            name: self
                .error_text(code, true)
                .unwrap_or_else(|| format!("CUresult {code}")),
            description: self
                .error_text(code, false)
                .unwrap_or_else(|| "unknown error".into()),
        }))
    }

    fn error_text(&self, code: sys::CUresult, name: bool) -> Option<String> {
        let mut p: *const std::os::raw::c_char = std::ptr::null();
        let f = if name {
            self.lib().cuGetErrorName.as_ref().ok()?
        } else {
            self.lib().cuGetErrorString.as_ref().ok()?
        };
        // SAFETY: `p` is a valid out-pointer; on success the driver sets it to a static string.
        let r = unsafe { f(code, &mut p) };
        if r != sys::CUDA_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: the driver returned a NUL-terminated static string.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

static DROP_FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a release that failed inside `Drop` (which must not panic or return an error).
pub fn record_drop_failure(what: String) {
    if let Ok(mut v) = DROP_FAILURES.lock() {
        v.push(what);
    }
}

/// Takes the releases that failed since the last call, for the command to report.
pub fn take_drop_failures() -> Vec<String> {
    DROP_FAILURES
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
}
