//! `.safetensors` (and ComfyUI `.latent`, which is a safetensors file holding `latent_tensor`).
//!
//! Parsing and validation (header size, offsets that must tile the data exactly, shape
//! arithmetic) are the `safetensors` crate's; we map its dtypes and share the buffer.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};

use crate::{Bytes, DType, FormatError, RawTensor, Result, TensorFile, bail};

fn map_dtype(d: Dtype) -> Result<DType> {
    Ok(match d {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F8_E4M3 => DType::F8_E4M3,
        Dtype::F8_E5M2 => DType::F8_E5M2,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::BOOL,
        other => bail!("unsupported safetensors dtype {other:?}"),
    })
}

fn unmap_dtype(d: DType) -> Dtype {
    match d {
        DType::F64 => Dtype::F64,
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F8_E4M3 => Dtype::F8_E4M3,
        DType::F8_E5M2 => Dtype::F8_E5M2,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U8 => Dtype::U8,
        DType::BOOL => Dtype::BOOL,
    }
}

/// Parse a whole safetensors file held in `buf`. Tensors come in file (offset) order.
pub fn read(buf: Bytes) -> Result<TensorFile> {
    let st = SafeTensors::deserialize(&buf).map_err(|e| FormatError::new(format!("invalid safetensors: {e}")))?;
    let (header_len, meta) =
        SafeTensors::read_metadata(&buf).map_err(|e| FormatError::new(format!("invalid safetensors: {e}")))?;
    let data_start = 8 + header_len;
    let mut tensors = Vec::new();
    for name in meta.offset_keys() {
        let info = meta.info(&name).expect("offset_keys lists known tensors");
        let dtype = map_dtype(info.dtype).map_err(|e| FormatError::new(format!("tensor '{name}': {e}")))?;
        let (a, b) = info.data_offsets;
        tensors.push(RawTensor {
            name,
            dtype,
            shape: info.shape.clone(),
            data: buf.slice(data_start + a..data_start + b),
        });
    }
    drop(st);
    let metadata: BTreeMap<String, String> = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok(TensorFile { tensors, metadata })
}

/// Serialise tensors (in the given order) and metadata to safetensors bytes.
pub fn write(tensors: &[RawTensor], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(unmap_dtype(t.dtype), t.shape.clone(), &t.data)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| FormatError::new(format!("tensor '{}': {e}", t.name)))
        })
        .collect::<Result<_>>()?;
    let meta = if metadata.is_empty() { None } else { Some(metadata.clone().into_iter().collect()) };
    safetensors::serialize(views, meta).map_err(|e| FormatError::new(format!("cannot write safetensors: {e}")))
}
