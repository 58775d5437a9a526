//! The page-cache controls: build real cache pressure (a temporary file written and read back,
//! removed by its guard on every path), evict one file's pages without root
//! (`posix_fadvise(DONTNEED)` after `fdatasync`, since dirty pages cannot be dropped), and drop the
//! whole cache as root (`sync`, then `3` into `/proc/sys/vm/drop_caches`). On GB10 the page cache
//! is what makes `cuMemGetInfo` look small; these are the levers that change it.
//!
//! Nothing here touches the GPU. `CUMEMLAB_DROP_CACHES_PATH` replaces the drop_caches path (tests
//! point it at a file that refuses writes to check the refusal without dropping anything).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::units::{GIB, MIB, fmt_bytes};

/// The kernel's switch.
pub const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// File names of fills start with this (so `--evict --remove` deletes only the tool's files).
pub const FILL_PREFIX: &str = "cumemlab-fill-";

/// Free space a fill must leave on its filesystem.
pub const DISK_MARGIN_BYTES: u64 = GIB;

/// The I/O block of fills and warm reads.
const BLOCK_BYTES: usize = 8 * MIB as usize;

/// The sentence every refusal of `--drop` ends with.
pub const DROP_FIX: &str = "run `sudo cumemlab cache --drop` or `sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'`, or evict one file without root with `cumemlab cache --evict PATH`";

/// The drop_caches path: `$CUMEMLAB_DROP_CACHES_PATH` or [`DROP_CACHES`].
pub fn drop_caches_path() -> PathBuf {
    std::env::var_os("CUMEMLAB_DROP_CACHES_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DROP_CACHES))
}

/// `drop_caches`, opened for writing: holding one means the refusals are behind.
pub struct DropSwitch {
    file: File,
    path: PathBuf,
}

/// Checks root and opens `path` for writing, changing nothing: not root, or an open the kernel
/// refuses (a read-only `/proc/sys` in a container), is a usage error naming the fix.
pub fn open_drop_switch(path: &Path, is_root: bool) -> Result<DropSwitch> {
    if !is_root {
        return Err(Error::usage(format!(
            "dropping the page cache needs root (writing {}): {DROP_FIX}",
            path.display()
        )));
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    {
        Ok(file) => Ok(DropSwitch {
            file,
            path: path.to_path_buf(),
        }),
        Err(e) if is_permission(&e) => Err(Error::usage(format!(
            "the kernel refused to open {} for writing ({e}), even as root (a read-only /proc/sys in a container?): {DROP_FIX} on the host itself",
            path.display()
        ))),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl DropSwitch {
    /// `sync`, then `3`: drops the page cache, dentries and inodes.
    pub fn drop_caches(mut self) -> Result<()> {
        nix::unistd::sync();
        match self.file.write_all(b"3\n") {
            Ok(()) => Ok(()),
            Err(e) if is_permission(&e) => Err(Error::usage(format!(
                "the kernel refused the write to {} ({e}): {DROP_FIX}",
                self.path.display()
            ))),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

/// [`open_drop_switch`], then [`DropSwitch::drop_caches`].
pub fn drop_caches(path: &Path, is_root: bool) -> Result<()> {
    open_drop_switch(path, is_root)?.drop_caches()
}

fn is_permission(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
        || matches!(
            e.raw_os_error(),
            Some(libc::EPERM | libc::EACCES | libc::EROFS)
        )
}

/// Writes a file's dirty pages (`fdatasync`) and asks the kernel to drop its cached pages
/// (`posix_fadvise(DONTNEED)` over the whole file). No root needed. Pages another process maps or
/// locks stay; measure with [`crate::memory::filemap::resident_bytes`].
pub fn evict(path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    evict_file(&f).map_err(|e| Error::io(path, e))
}

fn evict_file(f: &File) -> std::io::Result<()> {
    f.sync_data()?;
    nix::fcntl::posix_fadvise(f, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED)
        .map_err(std::io::Error::from)
}

/// Reads a whole file (so its pages are cached); returns (bytes read, ms).
pub fn read_through(path: &Path) -> Result<(u64, f64)> {
    let t = Instant::now();
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; BLOCK_BYTES];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    Ok((n, t.elapsed().as_secs_f64() * 1e3))
}

/// The default folder of fills: the temporary folder (`$TMPDIR`, `/tmp`) unless it is a tmpfs,
/// whose pages are shared memory rather than page cache; then the current folder.
pub fn default_fill_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    if is_tmpfs(&tmp).unwrap_or(false) {
        PathBuf::from(".")
    } else {
        tmp
    }
}

fn is_tmpfs(dir: &Path) -> std::io::Result<bool> {
    let s = nix::sys::statfs::statfs(dir).map_err(std::io::Error::from)?;
    Ok(s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// Free bytes for an unprivileged user on the filesystem of `dir`.
pub fn free_disk_bytes(dir: &Path) -> Result<u64> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(|e| Error::io(dir, std::io::Error::from(e)))?;
    Ok((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

/// Checks that a fill of `bytes` can be made in `dir` and held by the page cache whose
/// MemAvailable is `mem_available`; each refusal is one sentence naming the fix.
pub fn check_fill(dir: &Path, bytes: u64, mem_available: u64) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "--dir {}: no such folder; give an existing folder on a disk filesystem",
            dir.display()
        )));
    }
    if is_tmpfs(dir).unwrap_or(false) {
        return Err(Error::usage(format!(
            "--dir {} is on tmpfs, whose pages are shared memory that cannot be evicted, not page cache: give --dir on a disk filesystem",
            dir.display()
        )));
    }
    let free = free_disk_bytes(dir)?;
    if bytes.saturating_add(DISK_MARGIN_BYTES) > free {
        return Err(Error::usage(format!(
            "--fill {}: the filesystem of {} has {} free, less than the fill plus a {} margin; give a smaller --fill or a --dir with more space",
            fmt_bytes(bytes),
            dir.display(),
            fmt_bytes(free),
            fmt_bytes(DISK_MARGIN_BYTES)
        )));
    }
    if bytes > mem_available {
        return Err(Error::usage(format!(
            "--fill {}: the page cache cannot hold it (MemAvailable is {}); give a smaller --fill",
            fmt_bytes(bytes),
            fmt_bytes(mem_available)
        )));
    }
    Ok(())
}

/// True for names the tool gives its fill files.
pub fn is_fill_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(FILL_PREFIX))
}

/// A temporary file of known content whose pages fill the page cache. Removed when dropped (on
/// success, on error and on Ctrl-C alike), unless [`FillFile::keep`] hands it over.
pub struct FillFile {
    file: Option<tempfile::NamedTempFile>,
    path: PathBuf,
    bytes: u64,
    seed: u32,
    /// Host clock to write it (including `fdatasync`), ms.
    pub write_ms: f64,
}

impl FillFile {
    /// Writes `bytes` bytes of the data pattern of `seed` (the words `read` sums, so a GPU read
    /// of the file can be verified) into a new file in `dir`, then `fdatasync`s it so its pages are
    /// clean (evictable) and cached. `progress` gets the bytes written so far; `stop` is polled
    /// between blocks and aborts the fill (the file is removed) with [`Error::Interrupted`].
    pub fn create(
        dir: &Path,
        bytes: u64,
        seed: u32,
        mut progress: impl FnMut(u64),
        stop: impl Fn() -> bool,
    ) -> Result<FillFile> {
        let t = Instant::now();
        let tmp = tempfile::Builder::new()
            .prefix(FILL_PREFIX)
            .suffix(".bin")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        let path = tmp.path().to_path_buf();
        let mut fill = FillFile {
            file: Some(tmp),
            path,
            bytes,
            seed,
            write_ms: 0.0,
        };
        let mut buf = vec![0u8; BLOCK_BYTES];
        let mut done = 0u64;
        while done < bytes {
            if stop() {
                return Err(Error::Interrupted);
            }
            let n = (bytes - done).min(BLOCK_BYTES as u64) as usize;
            pattern_into(&mut buf[..n], done, seed);
            fill.handle()?
                .write_all(&buf[..n])
                .map_err(|e| Error::io(&fill.path, e))?;
            done += n as u64;
            progress(done);
        }
        fill.handle()?
            .sync_data()
            .map_err(|e| Error::io(&fill.path, e))?;
        fill.write_ms = t.elapsed().as_secs_f64() * 1e3;
        Ok(fill)
    }

    fn handle(&mut self) -> Result<&mut File> {
        match self.file.as_mut() {
            Some(f) => Ok(f.as_file_mut()),
            None => Err(Error::Failed(format!(
                "{}: the fill file was already handed over",
                self.path.display()
            ))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The pattern seed of the content.
    pub fn seed(&self) -> u32 {
        self.seed
    }

    /// Reads the whole file so that its pages are cached (after an eviction); ms.
    pub fn warm(&self) -> Result<f64> {
        Ok(read_through(&self.path)?.1)
    }

    /// Drops the file's pages from the page cache.
    pub fn evict(&self) -> Result<()> {
        evict(&self.path)
    }

    /// Leaves the file in place (it is no longer removed) and returns its path.
    pub fn keep(mut self) -> Result<PathBuf> {
        let Some(tmp) = self.file.take() else {
            return Ok(self.path.clone());
        };
        let (_, path) = tmp.keep().map_err(|e| Error::io(&self.path, e.error))?;
        Ok(path)
    }

    /// Removes the file now, reporting a failure (Drop does the same silently).
    pub fn remove(mut self) -> Result<()> {
        match self.file.take() {
            Some(tmp) => tmp.close().map_err(|e| Error::io(&self.path, e)),
            None => Ok(()),
        }
    }
}

/// Writes the pattern bytes starting at byte offset `offset` (a multiple of 4) into `buf`.
fn pattern_into(buf: &mut [u8], offset: u64, seed: u32) {
    let first_word = offset / 4;
    for (i, chunk) in buf.chunks_mut(4).enumerate() {
        let w = crate::driver::host_pattern_word(first_word + i as u64, seed).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_writes_the_pattern_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = 3 * BLOCK_BYTES as u64 + 4100;
        let mut seen = Vec::new();
        let f = FillFile::create(dir.path(), bytes, 42, |d| seen.push(d), || false).unwrap();
        let path = f.path().to_path_buf();
        assert!(is_fill_file(&path), "{}", path.display());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes);
        assert_eq!(seen.last(), Some(&bytes));
        let data = std::fs::read(&path).unwrap();
        for k in [0u64, 1, 2, 3, 4, 8 * MIB + 5, bytes - 1] {
            assert_eq!(
                data[k as usize],
                crate::driver::host_pattern_byte(k, 42),
                "byte {k}"
            );
        }
        // The sum the GPU's `read` kernel computes over this file.
        let words: u64 = data[..(bytes / 16 * 16) as usize]
            .chunks(4)
            .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .sum::<u64>()
            + data[(bytes / 16 * 16) as usize..]
                .iter()
                .map(|b| u64::from(*b))
                .sum::<u64>();
        assert_eq!(words, crate::driver::host_pattern_sum(bytes, 42));
        drop(f);
        assert!(!path.exists(), "the fill file is removed when dropped");
    }

    #[test]
    fn interrupted_fill_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let calls = std::cell::Cell::new(0);
        let r = FillFile::create(
            dir.path(),
            4 * BLOCK_BYTES as u64,
            1,
            |_| {},
            || {
                calls.set(calls.get() + 1);
                calls.get() > 2
            },
        );
        assert!(matches!(r, Err(Error::Interrupted)));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn keep_hands_the_file_over() {
        let dir = tempfile::tempdir().unwrap();
        let f = FillFile::create(dir.path(), 4096, 7, |_| {}, || false).unwrap();
        let p = f.keep().unwrap();
        assert!(p.exists());
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn fill_refusals_name_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_fill(&dir.path().join("nope"), GIB, 100 * GIB)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such folder"), "{e}");
        let e = check_fill(dir.path(), u64::MAX / 2, u64::MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("free") && e.contains("smaller --fill"), "{e}");
        let e = check_fill(dir.path(), MIB, MIB / 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("MemAvailable"), "{e}");
        assert!(check_fill(dir.path(), MIB, 100 * GIB).is_ok());
        if Path::new("/dev/shm").is_dir() && is_tmpfs(Path::new("/dev/shm")).unwrap_or(false) {
            let e = check_fill(Path::new("/dev/shm"), MIB, 100 * GIB)
                .unwrap_err()
                .to_string();
            assert!(e.contains("tmpfs"), "{e}");
        }
    }

    #[test]
    fn drop_without_root_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("drop_caches");
        std::fs::write(&p, "untouched").unwrap();
        let e = drop_caches(&p, false).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("needs root") && msg.contains("sudo cumemlab cache --drop"),
            "{msg}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "untouched");
        // As root, into a stand-in file: writes 3.
        drop_caches(&p, true).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "3\n");
        // A missing path is an I/O error naming it, not a usage error about root.
        let e = drop_caches(&dir.path().join("missing/x"), true).unwrap_err();
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn pattern_is_continuous_across_blocks() {
        let mut a = vec![0u8; 64];
        pattern_into(&mut a, 0, 9);
        let mut b = vec![0u8; 32];
        pattern_into(&mut b, 32, 9);
        assert_eq!(&a[32..], &b[..]);
    }
}
