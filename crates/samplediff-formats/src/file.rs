use std::collections::BTreeMap;

use crate::{Bytes, DType};

/// One tensor of a file: its name, dtype, shape and raw little-endian, C-contiguous bytes.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Bytes,
}

impl RawTensor {
    /// A tensor that owns its bytes.
    pub fn from_vec(name: impl Into<String>, dtype: DType, shape: Vec<usize>, data: Vec<u8>) -> Self {
        Self { name: name.into(), dtype, shape, data: Bytes::new(data) }
    }

    /// A float32 tensor from values.
    pub fn from_f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::from_vec(name, DType::F32, shape, bytes)
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Every element decoded to f64 (exact for all float dtypes).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let s = self.dtype.size();
        self.data.chunks_exact(s).map(|c| self.dtype.decode(c)).collect()
    }

    /// Every element as f32 (exact for F32 and narrower floats; F64 and I64 are rounded).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        if self.dtype == DType::F32 {
            return self.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        }
        let s = self.dtype.size();
        self.data.chunks_exact(s).map(|c| self.dtype.decode(c) as f32).collect()
    }
}

/// A file's tensors in file order plus its string metadata (safetensors `__metadata__`, or
/// structure descriptions for pickles).
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    pub tensors: Vec<RawTensor>,
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    pub fn get(&self, name: &str) -> Option<&RawTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|t| t.name.as_str())
    }
}
