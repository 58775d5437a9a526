//! A model file's tensors, read from its safetensors header with the `safetensors` crate (the
//! format's reference implementation, which validates the header: sizes, dtypes, contiguous
//! offsets, and that the data section ends where the file ends). A malformed or truncated file is
//! refused with one sentence (exit 2). Imports: the memory layer's read-only file map only.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::SafeTensorError;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::memory::filemap::FileMap;

/// One tensor of the file: byte range relative to the start of the data section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub start: u64,
    pub end: u64,
}

impl Tensor {
    pub fn bytes(&self) -> u64 {
        self.end - self.start
    }
}

/// A parsed safetensors file.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub path: PathBuf,
    /// Byte offset of the data section in the file (8 + header length).
    pub data_offset: u64,
    /// Bytes of the data section (every tensor, back to back).
    pub data_bytes: u64,
    /// Tensors in file order.
    pub tensors: Vec<Tensor>,
}

impl ModelFile {
    /// Reads and checks the header of `path`; every refusal is one sentence naming the file.
    pub fn open(path: &Path) -> Result<ModelFile> {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::usage(format!(
                "{}: cannot read it ({e}); give the path of a .safetensors file",
                path.display()
            ))
        })?;
        if !meta.is_file() || meta.len() < 8 {
            return Err(Error::usage(format!(
                "{} is not a safetensors file: it is {} bytes long, shorter than the 8-byte header length",
                path.display(),
                meta.len()
            )));
        }
        let map = FileMap::open(path, 0).map_err(|e| Error::io(path, e))?;
        Self::parse(path, map.as_slice())
    }

    /// Parses a whole file's bytes (the file mapped, or a buffer in tests).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<ModelFile> {
        let (n, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| {
            Error::usage(format!(
                "{} is not a valid safetensors file: {}",
                path.display(),
                why(&e)
            ))
        })?;
        let mut tensors = Vec::new();
        for name in metadata.offset_keys() {
            let Some(info) = metadata.info(&name) else {
                continue;
            };
            tensors.push(Tensor {
                name,
                dtype: format!("{:?}", info.dtype),
                shape: info.shape.clone(),
                start: info.data_offsets.0 as u64,
                end: info.data_offsets.1 as u64,
            });
        }
        tensors.sort_by_key(|t| (t.start, t.end));
        if tensors.is_empty() {
            return Err(Error::usage(format!(
                "{} holds no tensors: there is nothing to load",
                path.display()
            )));
        }
        Ok(ModelFile {
            path: path.to_path_buf(),
            data_offset: 8 + n as u64,
            data_bytes: metadata.data_len() as u64,
            tensors,
        })
    }
}

/// The crate's error in words a user can act on.
fn why(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::MetadataIncompleteBuffer => {
            "its header describes more (or fewer) data bytes than the file holds, so it is truncated or has trailing bytes".into()
        }
        SafeTensorError::HeaderTooLarge | SafeTensorError::InvalidHeaderLength => {
            "its first 8 bytes give a header length longer than the file or the format allows".into()
        }
        SafeTensorError::HeaderTooSmall => "it is shorter than the 8-byte header length".into(),
        SafeTensorError::InvalidHeader(_) => "its header is not UTF-8 text".into(),
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            format!("its header is not the JSON the format expects ({e})")
        }
        other => format!("its header is inconsistent ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend(std::iter::repeat_n(7u8, data));
        v
    }

    #[test]
    fn parses_and_refuses() {
        let h = r#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#;
        let m = ModelFile::parse(Path::new("x"), &file(h, 12)).unwrap();
        assert_eq!(m.data_bytes, 12);
        assert_eq!(m.data_offset, 8 + h.len() as u64);
        assert_eq!(m.tensors[0].name, "a");
        assert_eq!(m.tensors[1].dtype, "F32");
        assert_eq!(m.tensors[1].bytes(), 8);
        let e = ModelFile::parse(Path::new("x"), &file(h, 11)).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = ModelFile::parse(Path::new("x"), &file("{nope", 0)).unwrap_err();
        assert!(e.to_string().contains("JSON"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
