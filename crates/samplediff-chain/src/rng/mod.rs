//! Random numbers exactly as ComfyUI draws them.
//!
//! * [`prepare_noise`]: `comfy.sample.prepare_noise` — the KSampler's initial noise, i.e. PyTorch's
//!   CPU `torch.randn` ([`TorchCpuGenerator`], bit-exact for every seed and shape), including the
//!   `batch_index` rule of LATENTs that carry one.
//! * [`philox`]: an emulation of PyTorch's CUDA `torch.randn` (Philox4x32-10), which ancestral
//!   samplers use when the latent lives on an NVIDIA GPU; its layout depends on the GPU.
//!
//! All of it is plain sequential Rust (random streams are inherently serial); [`Noise::to_tensor`]
//! hands the result to burn on any device.

mod cephes;
pub mod mt19937;
pub mod philox;
pub mod torch_cpu;

use burn::tensor::{DType, Device, Tensor, TensorData};

pub use mt19937::Mt19937;
pub use philox::{CudaDevice, CudaPhiloxGenerator};
pub use torch_cpu::TorchCpuGenerator;

/// Why a noise request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    #[error("noise shape {0:?} has more elements than fit in memory addressing")]
    TooLarge(Vec<usize>),
    #[error("batch_index must not be empty")]
    EmptyBatchIndex,
    #[error("batch_index entries must be >= 0, got {0}")]
    NegativeBatchIndex(i64),
    #[error("batch_index needs a shape with a batch dimension")]
    BatchIndexWithoutBatchDim,
    #[error("noise has shape {shape:?} ({} dims) but a {want}-dimensional tensor was requested", shape.len())]
    RankMismatch { shape: Vec<usize>, want: usize },
}

/// Noise values in row-major order with their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Noise {
    /// The noise as a float32 burn tensor of rank `D` on `device`.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Result<Tensor<D>, NoiseError> {
        if self.shape.len() != D {
            return Err(NoiseError::RankMismatch { shape: self.shape.clone(), want: D });
        }
        let data = TensorData::new(self.data.clone(), self.shape.clone());
        Ok(Tensor::from_data(data, (device, DType::F32)))
    }
}

/// Element count of `shape`, refusing overflow.
fn numel(shape: &[usize]) -> Result<usize, NoiseError> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| NoiseError::TooLarge(shape.to_vec()))
}

/// `torch.randn(shape, generator=torch.manual_seed(seed))` on the CPU, float32.
pub fn torch_cpu_randn(seed: u64, shape: &[usize]) -> Result<Vec<f32>, NoiseError> {
    Ok(TorchCpuGenerator::manual_seed(seed).randn(numel(shape)?))
}

/// `comfy.sample.prepare_noise(latent, seed, noise_inds)` for a latent of `shape`.
///
/// Without `batch_index` this is one `randn` of the whole shape. With it (ComfyUI's LATENT
/// `batch_index`, e.g. after "Latent From Batch"), ComfyUI draws one `randn([1, ...])` per batch
/// slot `0..=max(batch_index)` from the same generator, keeps the slots that are named and
/// returns them in `batch_index` order — so the result has `batch_index.len()` batch entries and
/// repeated indices repeat the same noise.
pub fn prepare_noise(seed: u64, shape: &[usize], batch_index: Option<&[i64]>) -> Result<Noise, NoiseError> {
    let Some(batch_index) = batch_index else {
        return Ok(Noise { shape: shape.to_vec(), data: torch_cpu_randn(seed, shape)? });
    };
    if shape.is_empty() {
        return Err(NoiseError::BatchIndexWithoutBatchDim);
    }
    let max = *batch_index.iter().max().ok_or(NoiseError::EmptyBatchIndex)?;
    if let Some(&neg) = batch_index.iter().find(|&&i| i < 0) {
        return Err(NoiseError::NegativeBatchIndex(neg));
    }
    let per_item = numel(&shape[1..])?;
    let slots = usize::try_from(max).map_err(|_| NoiseError::TooLarge(shape.to_vec()))? + 1;
    let out_len = per_item.checked_mul(batch_index.len()).ok_or_else(|| NoiseError::TooLarge(shape.to_vec()))?;

    // Every slot up to the largest index is drawn (in order) even if unused: that is what
    // advances the generator the way ComfyUI does.
    let mut generator = TorchCpuGenerator::manual_seed(seed);
    let mut drawn: Vec<Option<Vec<f32>>> = Vec::new();
    for slot in 0..slots {
        let draw = generator.randn(per_item);
        let wanted = batch_index.iter().any(|&i| i as usize == slot);
        drawn.push(wanted.then_some(draw));
    }
    let mut data = Vec::with_capacity(out_len);
    for &i in batch_index {
        let draw = drawn[i as usize].as_ref().expect("every named slot was kept");
        data.extend_from_slice(draw);
    }
    let mut out_shape = shape.to_vec();
    out_shape[0] = batch_index.len();
    Ok(Noise { shape: out_shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_index_draws_every_slot_and_reorders() {
        let shape = [3, 2, 4, 4];
        let got = prepare_noise(5, &shape, Some(&[2, 0, 2])).unwrap();
        assert_eq!(got.shape, vec![3, 2, 4, 4]);
        let mut g = TorchCpuGenerator::manual_seed(5);
        let s0 = g.randn(32);
        let _s1 = g.randn(32);
        let s2 = g.randn(32);
        assert_eq!(&got.data[..32], &s2[..]);
        assert_eq!(&got.data[32..64], &s0[..]);
        assert_eq!(&got.data[64..], &s2[..]);
    }

    #[test]
    fn batch_index_bad_input_is_an_error() {
        assert_eq!(prepare_noise(0, &[1, 4], Some(&[])), Err(NoiseError::EmptyBatchIndex));
        assert_eq!(prepare_noise(0, &[1, 4], Some(&[0, -1])), Err(NoiseError::NegativeBatchIndex(-1)));
        assert!(matches!(prepare_noise(0, &[usize::MAX, 4], None), Err(NoiseError::TooLarge(_))));
    }
}
