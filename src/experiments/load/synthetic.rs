//! The synthetic model file: the tensors of a planner model at bf16 (the same list `layout`
//! allocates), scaled to `--size`, written as a valid safetensors file of pseudo-random bytes
//! into a temporary file that is removed when dropped: after the run, on error and after Ctrl-C
//! (the interrupt flag is polled between blocks). The header is written here rather than with
//! `safetensors::serialize_to_file`, which needs every tensor's bytes in memory at once (16 GiB);
//! the crate's own parser reads the result back before it is used.
//! Imports: layout's preset list, the planner's models, host facts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::experiments::check_interrupt;
use crate::experiments::layout::from_architecture;
use crate::plan::{Precision, find_model};
use crate::units::{MIB, fmt_bytes};

/// Name prefix of the tool's synthetic files.
pub const PREFIX: &str = "cumemlab-load-";
/// Free disk space kept beyond the file.
const DISK_MARGIN: u64 = 1 << 30;
const BLOCK: usize = 8 * MIB as usize;

/// (name, elements) of `preset`'s bf16 tensors scaled so that they hold about `size` bytes; every
/// tensor keeps at least 8 elements and a multiple of 8 (16 bytes), so each starts 16-byte aligned.
pub fn scaled_tensors(preset: &str, size: u64) -> Result<Vec<(String, u64)>> {
    let model = find_model(preset).map_err(|e| Error::usage(format!("--preset: {e}")))?;
    let layout = from_architecture(&model.architecture(), Precision::Bf16, None);
    let total: u64 = layout.tensors.iter().map(|t| t.bytes).sum();
    if total == 0 {
        return Err(Error::usage(format!(
            "--preset {preset}: the model has no tensors"
        )));
    }
    let f = size as f64 / total as f64;
    Ok(layout
        .tensors
        .iter()
        .map(|t| {
            let elems = (t.bytes as f64 / 2.0 * f / 8.0).round().max(1.0) as u64 * 8;
            (t.name.clone(), elems)
        })
        .collect())
}

/// The safetensors header (JSON padded with spaces to a multiple of 8 bytes) and the data bytes.
pub fn header_for(tensors: &[(String, u64)], preset: &str) -> (Vec<u8>, u64) {
    let mut map = serde_json::Map::new();
    let mut off = 0u64;
    for (name, elems) in tensors {
        let end = off + elems * 2;
        map.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": [elems], "data_offsets": [off, end]}),
        );
        off = end;
    }
    map.insert(
        "__metadata__".into(),
        serde_json::json!({"generator": "cumemlab load", "preset": preset, "content": "pseudo-random"}),
    );
    let mut h = serde_json::Value::Object(map).to_string().into_bytes();
    // The data section starts 8-byte aligned, as the crate's own writer pads it.
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    (h, off)
}

/// Fills `buf` with the content of data bytes starting at `offset` (a multiple of 8).
fn content(buf: &mut [u8], offset: u64) {
    for (i, c) in (offset / 8..).zip(buf.chunks_mut(8)) {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 31)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        c.copy_from_slice(&z.to_le_bytes()[..c.len()]);
    }
}

/// A synthetic file on disk; removed when dropped.
pub struct SyntheticFile {
    file: tempfile::NamedTempFile,
    pub bytes: u64,
    pub write_ms: f64,
}

impl SyntheticFile {
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Writes `preset` scaled to `size` into `dir` (checked first), `fdatasync`ed so that its
    /// pages are clean and can be evicted. `progress` gets the bytes written so far.
    pub fn create(
        dir: &Path,
        preset: &str,
        size: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<SyntheticFile> {
        let tensors = scaled_tensors(preset, size)?;
        let (header, data) = header_for(&tensors, preset);
        let total = 8 + header.len() as u64 + data;
        check_dir(dir, total)?;
        let t = Instant::now();
        let mut file = tempfile::Builder::new()
            .prefix(PREFIX)
            .suffix(".safetensors")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        let path = file.path().to_path_buf();
        let io = |e| Error::io(&path, e);
        let f = file.as_file_mut();
        f.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        f.write_all(&header).map_err(io)?;
        let mut buf = vec![0u8; BLOCK];
        let mut done = 0u64;
        while done < data {
            check_interrupt()?;
            let n = (data - done).min(BLOCK as u64) as usize;
            content(&mut buf[..n], done);
            f.write_all(&buf[..n]).map_err(io)?;
            done += n as u64;
            progress(done);
        }
        f.sync_data().map_err(io)?;
        Ok(SyntheticFile {
            file,
            bytes: total,
            write_ms: t.elapsed().as_secs_f64() * 1e3,
        })
    }
}

/// The folder must exist, not be tmpfs (its pages cannot be evicted, so "cold" would be a lie)
/// and have room for the file plus a margin.
fn check_dir(dir: &Path, bytes: u64) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "--dir {}: no such folder; give an existing folder on a disk filesystem",
            dir.display()
        )));
    }
    let tmpfs = nix::sys::statfs::statfs(dir)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    if tmpfs {
        return Err(Error::usage(format!(
            "--dir {} is on tmpfs, whose pages cannot be evicted (no cold load): give --dir on a disk filesystem",
            dir.display()
        )));
    }
    let free = crate::host::cache::free_disk_bytes(dir)?;
    if bytes.saturating_add(DISK_MARGIN) > free {
        return Err(Error::usage(format!(
            "--size {}: {} has {} free, less than the file plus a {} margin; give a smaller --size or a --dir with more space",
            fmt_bytes(bytes),
            dir.display(),
            fmt_bytes(free),
            fmt_bytes(DISK_MARGIN)
        )));
    }
    Ok(())
}

/// `--dir`, or the default folder for temporary data files.
pub fn dir_or_default(dir: Option<&Path>) -> PathBuf {
    dir.map_or_else(crate::host::cache::default_fill_dir, Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::load::header::ModelFile;

    #[test]
    fn scaled_llama_is_close_to_the_size_and_parses() {
        let t = scaled_tensors("llama-3.1-8b", 64 * MIB).unwrap();
        let (h, data) = header_for(&t, "llama-3.1-8b");
        assert!(t.len() > 100, "{}", t.len());
        assert!(
            (data as f64 - (64 * MIB) as f64).abs() < 0.01 * (64 * MIB) as f64,
            "{data}"
        );
        let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&h);
        bytes.resize(bytes.len() + data as usize, 0);
        let m = ModelFile::parse(Path::new("s"), &bytes).unwrap();
        assert_eq!(m.data_bytes, data);
        assert_eq!(m.tensors.len(), t.len());
        assert!(m.data_offset.is_multiple_of(8));
        assert!(m.tensors.iter().all(|x| x.start % 16 == 0));
        assert!(scaled_tensors("no-such-model", MIB).is_err());
    }
}
