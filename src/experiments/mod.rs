//! Experiments: one module per command that measures something. Each follows plan -> run ->
//! rows: options are parsed and checked first (bad input fails before the GPU is touched), then
//! the experiment runs phase by phase, streaming rows into a [`crate::report::ResultSink`].
//!
//! This module holds what they share: opening a GPU ([`Gpu`]) and the interruption flag
//! (Ctrl-C/SIGTERM end the current phase, free everything, write what was measured, exit 130).
//! Choosing devices (`--device`) is `crate::cli::DeviceSel` and the environment recorded in every
//! result file is `crate::env`, both below the experiments (re-exported here under their old paths).

pub mod cache;
pub mod compare;
pub mod cost;
pub mod info;
pub mod lab;
pub mod layout;
pub mod load;
pub mod probe;
pub mod selftest;
pub mod sweep;
pub mod visibility;
pub mod watch;

/// `--device` moved to the command-line layer; the old path stays valid.
pub use crate::cli::DeviceSel;
/// The environment moved below the experiments (`crate::env`, the planner reads it too); the
/// old path stays valid.
pub use crate::env;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::driver::{Context, Device, DeviceAttributes, Driver, Kernels, Stream};
use crate::error::{Error, Result};
use crate::memory::arch::MemoryArchitecture;

static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
/// Set while nothing is measured or held (rendering a report): then the first signal exits.
static AT_ONCE: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Installs the SIGINT/SIGTERM/SIGHUP handlers: the first signal sets the flag that experiments check
/// between phases; a second one exits at once with 130 (the driver frees a dead process's memory).
pub fn install_interrupt_handlers() {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let at_once = AT_ONCE.get_or_init(|| Arc::new(AtomicBool::new(false)));
        // SIGHUP (the terminal closed) is handled like SIGTERM, so a held fill file is removed.
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, at_once.clone());
            // Order matters: the conditional exit sees the flag as it was before this signal.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
            let _ = signal_hook::flag::register(sig, flag.clone());
        }
        // Rust ignores SIGPIPE, so printing into a closed pipe (`cumemlab compare ... | head`)
        // would panic; die quietly instead, as command-line tools do.
        let _ = signal_hook::flag::register_conditional_default(
            signal_hook::consts::SIGPIPE,
            Arc::new(AtomicBool::new(true)),
        );
        flag
    });
}

/// From now on the first Ctrl-C or SIGTERM exits at once with 130: for work that holds nothing and
/// measures nothing (rendering figures and reports), so that `timeout` and Ctrl-C always end it.
pub fn exit_on_first_signal() {
    if let Some(f) = AT_ONCE.get() {
        f.store(true, Ordering::Relaxed);
    }
}

/// True once Ctrl-C, SIGTERM or SIGHUP arrived.
pub fn interrupted() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Returns `Err(Interrupted)` when a signal arrived: call between phases.
pub fn check_interrupt() -> Result<()> {
    if interrupted() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Loads the driver for a command that needs a GPU. A missing driver or a failing `cuInit` is a
/// failure of the machine, not of the user's input: exit 1, naming why.
pub fn require_driver() -> Result<Driver> {
    Driver::load().map_err(|e| Error::Failed(format!("this command needs a GPU: {e}")))
}

/// A context (with its stream and the kernel module) needs a few hundred MiB of device memory.
/// When another process (a second probe, a framework that took everything) holds it all for a
/// moment, the driver answers out-of-memory: retry for up to 5 s before giving up with a sentence
/// that says why.
fn open_context(device: &Device) -> Result<(Arc<Context>, Arc<Stream>, Kernels)> {
    let attempt = || -> crate::driver::Result<(Arc<Context>, Arc<Stream>, Kernels)> {
        let ctx = Context::new(device)?;
        let stream = Arc::new(Stream::new(&ctx)?);
        let kernels = Kernels::load(&ctx)?;
        Ok((ctx, stream, kernels))
    };
    let mut last = None;
    for _ in 0..20 {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_out_of_memory() => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Failed(format!(
        "device {} has no memory left for a CUDA context (another process holds it; retried for 5 s): {}",
        device.ordinal(),
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

/// Everything a GPU experiment needs on one device, opened once.
pub struct Gpu {
    pub driver: Driver,
    pub device: Device,
    pub name: String,
    pub ctx: Arc<Context>,
    pub stream: Arc<Stream>,
    pub kernels: Kernels,
    pub attrs: DeviceAttributes,
    pub arch: MemoryArchitecture,
}

impl Gpu {
    /// Opens device `ordinal`: primary context (current on this thread), a stream, the kernels.
    pub fn open(driver: &Driver, ordinal: i32) -> Result<Gpu> {
        let count = driver.device_count()?;
        DeviceSel::One(ordinal).resolve(count)?;
        let device = driver.device(ordinal)?;
        let (ctx, stream, kernels) = open_context(&device)?;
        let attrs = device.attributes();
        let arch = MemoryArchitecture::classify(&attrs);
        Ok(Gpu {
            driver: driver.clone(),
            name: device.name()?,
            device,
            ctx,
            stream,
            kernels,
            attrs,
            arch,
        })
    }

    /// `cuMemGetInfo` free bytes.
    pub fn free_bytes(&self) -> Result<u64> {
        Ok(self.ctx.mem_info()?.0)
    }

    /// The host's accounting now (`host::Accounting`), with this device's `cuMemGetInfo` free
    /// and total: the one snapshot sweep, probe, layout and `info --who-sees` take.
    pub fn accounting(&self) -> Result<crate::host::Accounting> {
        let (free, total) = self.ctx.mem_info()?;
        Ok(crate::host::Accounting::host()
            .map_err(Error::Failed)?
            .with_device(free, Some(total)))
    }
}
