//! The load paths, listed once in [`PATHS`]: each has a key, a description, the memory its data
//! lands in, a support check (skipped with the reason when the device or file system lacks what
//! it needs) and a run function that moves the file's data section into that memory, timed by the
//! caller from start to "ready for a kernel" (every path synchronises before it returns).
//! A new path is one function (here or in `stream_paths.rs`) plus one entry.
//! Imports: the driver's safe copies, the memory layer's allocations, host facts.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use super::header::ModelFile;
use super::stream_paths;
use crate::driver::copy::htod_chunks;
use crate::driver::load_kernels::LoadKernels;
use crate::error::{Error, Result};
use crate::experiments::Gpu;
use crate::memory::filemap::FileMap;
use crate::memory::{Allocation, Strategy, prefetch_to_device};
use crate::units::MIB;

/// Size of each `read()` and staging buffer.
pub const CHUNK: u64 = 64 * MIB;

/// What a run needs: the GPU, the file, when the clock started.
pub struct RunCtx<'a> {
    pub gpu: &'a Gpu,
    pub file: &'a ModelFile,
    pub t0: Instant,
    /// The device-side copy kernel.
    pub k: &'a LoadKernels,
}

impl RunCtx<'_> {
    /// Bytes `[0, first tensor's end)` of the data section.
    pub fn first_end(&self) -> u64 {
        self.file.tensors.first().map_or(0, |t| t.end)
    }

    /// Host ms since the start, after the device has finished what was queued.
    pub fn mark(&self) -> Result<f64> {
        self.gpu.ctx.synchronize()?;
        Ok(self.t0.elapsed().as_secs_f64() * 1e3)
    }
}

/// What a path reports besides its wall time.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Host ms from the start until the first tensor was in device memory.
    pub first_ms: f64,
    /// Host memory the path page-locked.
    pub pinned_bytes: u64,
    /// How it ran, where it chose (registration mode, prefetch).
    pub note: String,
}

type RunFn = fn(&RunCtx, &mut dyn Allocation) -> Result<Loaded>;

/// One registry entry.
pub struct PathInfo {
    pub key: &'static str,
    pub description: &'static str,
    /// The memory the data lands in (`Device`, or `Managed` for the managed paths).
    pub dest: Strategy,
    /// Ok, or the reason the path cannot run here.
    pub supported: fn(&Gpu, &ModelFile) -> std::result::Result<(), String>,
    /// Host memory it page-locks (checked against the safety ceiling first).
    pub pins: Pins,
    pub run: RunFn,
}

/// The host memory a path pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pins {
    None,
    /// Two staging buffers of [`CHUNK`] bytes.
    Staging,
    /// The whole file (registered).
    WholeFile,
}

impl Pins {
    /// (strategy the safety rule applies to, bytes) for `file`.
    pub fn request(self, file: &ModelFile) -> Option<(Strategy, u64)> {
        match self {
            Pins::None => None,
            Pins::Staging => Some((Strategy::Pinned, 2 * CHUNK)),
            Pins::WholeFile => Some((Strategy::Registered, file.data_offset + file.data_bytes)),
        }
    }
}

fn always(_: &Gpu, _: &ModelFile) -> std::result::Result<(), String> {
    Ok(())
}

fn registered_ok(gpu: &Gpu, _: &ModelFile) -> std::result::Result<(), String> {
    Strategy::Registered.supported(&gpu.attrs)
}

fn pageable_ok(gpu: &Gpu, _: &ModelFile) -> std::result::Result<(), String> {
    if gpu.attrs.flag("pageable_memory_access") {
        Ok(())
    } else {
        Err("the GPU cannot read pageable memory (CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS = 0: no HMM or ATS on this host)".into())
    }
}

fn managed_ok(gpu: &Gpu, _: &ModelFile) -> std::result::Result<(), String> {
    Strategy::Managed.supported(&gpu.attrs)
}

fn prefetch_ok(gpu: &Gpu, _: &ModelFile) -> std::result::Result<(), String> {
    Strategy::ManagedPrefetch.supported(&gpu.attrs)
}

/// Every path, in the order they run.
pub const PATHS: &[PathInfo] = &[
    PathInfo {
        key: "mmap-copy",
        description: "mmap the file, cuMemcpyHtoD each tensor from the mapping (pageable source)",
        dest: Strategy::Device,
        supported: always,
        pins: Pins::None,
        run: mmap_copy,
    },
    PathInfo {
        key: "read-copy",
        description: "read() 64 MiB pieces into a pageable buffer, cuMemcpyHtoD each",
        dest: Strategy::Device,
        supported: always,
        pins: Pins::None,
        run: read_copy,
    },
    PathInfo {
        key: "pinned-staging",
        description: "read() into two 64 MiB pinned buffers, double-buffered cuMemcpyHtoDAsync",
        dest: Strategy::Device,
        supported: always,
        pins: Pins::Staging,
        run: stream_paths::pinned_staging,
    },
    PathInfo {
        key: "registered-file",
        description: "mmap the file, cuMemHostRegister it (read-only where supported), a copy kernel reads each tensor over the bus",
        dest: Strategy::Device,
        supported: registered_ok,
        pins: Pins::WholeFile,
        run: registered_file,
    },
    PathInfo {
        key: "odirect-pinned",
        description: "O_DIRECT reads (page cache bypassed) into two aligned pinned buffers, async copies",
        dest: Strategy::Device,
        supported: stream_paths::odirect_ok,
        pins: Pins::Staging,
        run: stream_paths::odirect_pinned,
    },
    PathInfo {
        key: "pageable-direct",
        description: "a copy kernel reads each tensor from the file's plain mapping (the GPU reads pageable memory)",
        dest: Strategy::Device,
        supported: pageable_ok,
        pins: Pins::None,
        run: pageable_direct,
    },
    PathInfo {
        key: "managed",
        description: "read() into managed memory; no prefetch (the first kernel migrates it: see kernel ms)",
        dest: Strategy::Managed,
        supported: managed_ok,
        pins: Pins::None,
        run: managed,
    },
    PathInfo {
        key: "managed-prefetch",
        description: "read() into managed memory, then cuMemPrefetchAsync to the device",
        dest: Strategy::Managed,
        supported: prefetch_ok,
        pins: Pins::None,
        run: managed_prefetch,
    },
];

/// `all` or a comma-separated list of keys; one sentence on an unknown key.
pub fn parse_paths(s: &str) -> std::result::Result<Vec<&'static PathInfo>, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(PATHS.iter().collect());
    }
    let mut out: Vec<&'static PathInfo> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some(p) = PATHS.iter().find(|p| p.key.eq_ignore_ascii_case(part)) else {
            return Err(format!(
                "--paths: unknown path `{part}`; choose from {} (or `all`)",
                PATHS.iter().map(|p| p.key).collect::<Vec<_>>().join(", ")
            ));
        };
        if !out.iter().any(|q| q.key == p.key) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err("--paths is empty; give path keys or `all`".into());
    }
    Ok(out)
}

fn open(ctx: &RunCtx) -> Result<File> {
    File::open(&ctx.file.path).map_err(|e| Error::io(&ctx.file.path, e))
}

fn map(ctx: &RunCtx) -> Result<FileMap> {
    FileMap::open(&ctx.file.path, 0).map_err(|e| Error::io(&ctx.file.path, e))
}

/// Copies each tensor from `src(offset in the data section)` to the destination, with `copy`.
fn per_tensor(
    ctx: &RunCtx,
    dst: &dyn Allocation,
    mut copy: impl FnMut(u64, u64, u64) -> Result<()>,
) -> Result<f64> {
    let mut first = 0.0;
    for (k, t) in ctx.file.tensors.iter().enumerate() {
        copy(dst.device_ptr() + t.start, t.start, t.bytes())?;
        if k == 0 {
            first = ctx.mark()?;
        }
    }
    Ok(first)
}

fn mmap_copy(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<Loaded> {
    let m = map(ctx)?;
    let data = m.as_slice();
    let off = ctx.file.data_offset as usize;
    let c = &ctx.gpu.ctx;
    let first = per_tensor(ctx, dst, |d, s, n| {
        let src = &data[off + s as usize..off + (s + n) as usize];
        Ok(htod_chunks(c, None, d, src, usize::MAX)?)
    })?;
    Ok(Loaded {
        first_ms: first,
        ..Loaded::default()
    })
}

fn read_copy(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<Loaded> {
    let f = open(ctx)?;
    let mut buf = vec![0u8; CHUNK as usize];
    let (first_end, total) = (ctx.first_end(), ctx.file.data_bytes);
    let mut done = 0u64;
    let mut first = None;
    let base = ctx.file.data_offset;
    while done < total {
        let n = (total - done).min(CHUNK) as usize;
        f.read_exact_at(&mut buf[..n], base + done)
            .map_err(|e| Error::io(&ctx.file.path, e))?;
        htod_chunks(&ctx.gpu.ctx, None, dst.device_ptr() + done, &buf[..n], n)?;
        done += n as u64;
        if first.is_none() && done >= first_end {
            first = Some(ctx.mark()?);
        }
    }
    Ok(Loaded {
        first_ms: first.unwrap_or_default(),
        ..Loaded::default()
    })
}

fn registered_file(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<Loaded> {
    let len = ctx.file.data_offset + ctx.file.data_bytes;
    let opts = crate::memory::AllocOptions {
        file: Some(ctx.file.path.clone()),
        ..Default::default()
    };
    let reg = crate::memory::allocate(
        &ctx.gpu.ctx,
        &ctx.gpu.stream,
        Strategy::Registered,
        len,
        &opts,
    )?;
    let src = reg.device_ptr() + ctx.file.data_offset;
    let first = per_tensor(ctx, dst, |d, s, n| {
        Ok(ctx.k.copy(&ctx.gpu.stream, d, src + s, n).map(|_| ())?)
    })?;
    Ok(Loaded {
        first_ms: first,
        pinned_bytes: len,
        note: format!("registered {}", reg.registration_mode().unwrap_or("?")),
    })
}

fn pageable_direct(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<Loaded> {
    let m = map(ctx)?;
    let src = m.device_ptr() + ctx.file.data_offset;
    let first = per_tensor(ctx, dst, |d, s, n| {
        Ok(ctx.k.copy(&ctx.gpu.stream, d, src + s, n).map(|_| ())?)
    })?;
    Ok(Loaded {
        first_ms: first,
        ..Loaded::default()
    })
}

/// Reads the data section into managed memory's host view, 64 MiB at a time.
fn read_into_managed(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<()> {
    let mut f = open(ctx)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(ctx.file.data_offset))
        .map_err(|e| Error::io(&ctx.file.path, e))?;
    let n = ctx.file.data_bytes as usize;
    let Some(host) = dst.host_slice() else {
        return Err(Error::Failed("managed memory has no host view".into()));
    };
    for piece in host[..n].chunks_mut(CHUNK as usize) {
        f.read_exact(piece)
            .map_err(|e| Error::io(&ctx.file.path, e))?;
    }
    Ok(())
}

fn managed(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<Loaded> {
    read_into_managed(ctx, dst)?;
    Ok(Loaded {
        first_ms: ctx.mark()?,
        note: "no prefetch: data still on the host side".into(),
        ..Loaded::default()
    })
}

fn managed_prefetch(ctx: &RunCtx, dst: &mut dyn Allocation) -> Result<Loaded> {
    read_into_managed(ctx, dst)?;
    let first_end = ctx.first_end();
    prefetch_to_device(&ctx.gpu.stream, dst.device_ptr(), first_end)?;
    let first = ctx.mark()?;
    let rest = ctx.file.data_bytes - first_end;
    if rest > 0 {
        prefetch_to_device(&ctx.gpu.stream, dst.device_ptr() + first_end, rest)?;
    }
    Ok(Loaded {
        first_ms: first,
        note: "prefetched".into(),
        ..Loaded::default()
    })
}
