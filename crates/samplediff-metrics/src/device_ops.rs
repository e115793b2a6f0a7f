//! Small helpers over burn tensors: batched read-backs and typed constants.
//!
//! Every read-back is a device synchronisation, so scalars are concatenated and read in one go.

use burn::tensor::{Device, Int, Tensor, TensorData};
use samplediff_tensor::{read_f64, read_i64};

use crate::Result;

/// Read many one-element (or same-shaped) float tensors at once.
pub fn read_floats<const D: usize>(parts: Vec<Tensor<D>>) -> Result<Vec<f64>> {
    Ok(read_f64(Tensor::cat(parts, 0))?)
}

/// Read many int tensors (counts) at once; counts are never negative.
pub fn read_counts<const D: usize>(parts: Vec<Tensor<D, Int>>) -> Result<Vec<u64>> {
    Ok(read_i64(Tensor::cat(parts, 0))?.into_iter().map(|v| v.max(0) as u64).collect())
}

/// Host values as a float tensor of the same dtype as `like` (so ops never mix precisions).
pub fn floats_like<const D: usize>(values: Vec<f64>, shape: [usize; D], like: &Tensor<1>) -> Tensor<D> {
    let device = like.device();
    Tensor::<D>::from_data(TensorData::new(values, shape), (&device, like.dtype()))
}

/// Host indices as an int tensor.
pub fn indices(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::<1, Int>::from_data(TensorData::new(values, [n]), device)
}
