//! Errors of the driver layer. A failed call names itself (`cuMemAlloc_v2`), its numeric code, the
//! driver's name for it and the driver's description, so that a user can look it up; a missing
//! library or symbol names what was searched. `CUDA_ERROR_OUT_OF_MEMORY` is an ordinary value here:
//! experiments treat it as a result.

use std::fmt;

use super::sys;

/// One failed driver call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverError {
    /// The exported symbol that failed, for example `cuMemAlloc_v2`.
    pub call: &'static str,
    /// The `CUresult` value.
    pub code: u32,
    /// The driver's name for the code, for example `CUDA_ERROR_OUT_OF_MEMORY`.
    pub name: String,
    /// The driver's one-line description.
    pub description: String,
}

impl DriverError {
    /// True for `CUDA_ERROR_OUT_OF_MEMORY`: a result during probes, not a fault.
    pub fn is_out_of_memory(&self) -> bool {
        self.code == sys::CUDA_ERROR_OUT_OF_MEMORY
    }

    /// True for `CUDA_ERROR_NOT_SUPPORTED` (for example `cuMemHostRegister` on GB10: antirez/ds4
    /// PR #158): a reason to skip, not a fault.
    pub fn is_not_supported(&self) -> bool {
        self.code == sys::CUDA_ERROR_NOT_SUPPORTED
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} ({}): {}",
            self.call, self.name, self.code, self.description
        )
    }
}

/// Everything the driver layer can fail with.
#[derive(Debug, Clone)]
pub enum Error {
    /// libcuda could not be opened; `tried` lists every path, `reason` the last loader message.
    Load { tried: Vec<String>, reason: String },
    /// The library opened but lacks a symbol this call needs (an older driver).
    MissingSymbol {
        symbol: &'static str,
        reason: String,
    },
    /// A driver call returned an error.
    Call(DriverError),
    /// A host (operating-system) call of the memory layer failed, for example `mmap`.
    Os {
        call: &'static str,
        message: String,
        out_of_memory: bool,
    },
    /// A request the layer refuses before calling the driver (bad alignment, empty size...).
    Invalid(String),
}

impl Error {
    /// True when the failure is `CUDA_ERROR_OUT_OF_MEMORY`.
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            Error::Call(e) => e.is_out_of_memory(),
            Error::Os { out_of_memory, .. } => *out_of_memory,
            _ => false,
        }
    }

    /// True when the failure is `CUDA_ERROR_NOT_SUPPORTED`.
    pub fn is_not_supported(&self) -> bool {
        self.driver_error()
            .is_some_and(DriverError::is_not_supported)
    }

    /// The failed call, when there is one.
    pub fn driver_error(&self) -> Option<&DriverError> {
        match self {
            Error::Call(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Load { tried, reason } if f.alternate() || super::verbose_errors() => write!(
                f,
                "cannot load the CUDA driver library (tried {}): {reason}; install the NVIDIA driver or set \
                 CUMEMLAB_LIBCUDA to the path of libcuda.so.1",
                tried.join(", ")
            ),
            Error::Load { tried, reason } => f.write_str(&super::no_driver_line(tried, reason)),
            Error::MissingSymbol { symbol, reason } => write!(
                f,
                "the CUDA driver has no {symbol} ({reason}): it is older than this tool needs (CUDA 12.8 \
                 driver or newer)"
            ),
            Error::Call(e) => e.fmt(f),
            Error::Os { call, message, .. } => write!(f, "{call} failed: {message}"),
            Error::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Self {
        Error::Call(e)
    }
}

/// Result of the driver layer.
pub type Result<T> = std::result::Result<T, Error>;
