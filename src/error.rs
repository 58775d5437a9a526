//! The crate's error type and how it maps to exit codes: bad input is exit 2 (one sentence naming
//! the input and the fix), an interrupted run is exit 130, a closed standard output a quiet 141,
//! everything else exit 1.

use std::fmt;
use std::path::PathBuf;

use crate::driver;

#[derive(Debug)]
pub enum Error {
    /// Bad input from the user: exit 2.
    Usage(String),
    /// A driver failure (the call is named): exit 1.
    Driver(driver::Error),
    /// A file could not be read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Ctrl-C or SIGTERM: what was measured has been written; exit 130.
    Interrupted,
    /// A measurement that came out wrong (for example data that did not verify): exit 1.
    Failed(String),
    /// Standard output was closed by its reader (`cumemlab ... | head`): a quiet exit, 141 as a
    /// shell reports a process ended by SIGPIPE.
    OutputClosed,
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Interrupted => 130,
            Error::OutputClosed => 141,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Failed(m) => f.write_str(m),
            Error::Driver(e) => e.fmt(f),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Interrupted => f.write_str("interrupted: finished rows were written"),
            Error::OutputClosed => f.write_str("standard output was closed"),
        }
    }
}

impl std::error::Error for Error {}

impl From<driver::Error> for Error {
    fn from(e: driver::Error) -> Self {
        Error::Driver(e)
    }
}

impl From<crate::units::SizeError> for Error {
    fn from(e: crate::units::SizeError) -> Self {
        Error::Usage(e.0)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
