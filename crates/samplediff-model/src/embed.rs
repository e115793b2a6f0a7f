//! The timestep embedding: diffusers' `Timesteps(256, flip_sin_to_cos=True, shift=0, scale=1000)`
//! followed by `TimestepEmbedding` (Linear → SiLU → Linear).

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::layers::{Linear, silu};

/// The sinusoid's frequencies `exp(-ln(10000)·k / half)` for `k < half`, computed with torch's
/// float32 steps: `f32(-ln 10000) · k` rounded, divided by `half` rounded, then `exp`. The exp is
/// taken in f64 and rounded once, i.e. correctly rounded, which is what torch's float32 exp returns
/// for these arguments in all but (rarely) a last-ulp case.
pub fn timestep_frequencies(half: usize) -> Vec<f32> {
    let neg_log = -(10000f64.ln()) as f32;
    (0..half)
        .map(|k| {
            let exponent = (neg_log * k as f32) / half as f32;
            (exponent as f64).exp() as f32
        })
        .collect()
}

/// diffusers' `Timesteps` sinusoid, `[B, 2·half]` row-major: `[cos(a), sin(a)]` per timestep with
/// `a = 1000 · (t · f)` in float32 (torch's order).
///
/// Computed on the host, where the timesteps are (the chain's sigmas), because GPU `sin`/`cos`
/// are approximations: WGSL and Vulkan promise only 2^-11 absolute error on [-π, π] and nothing
/// beyond, and these arguments reach 1000 (SwiftShader's WebGPU is off by 2e-4, which moved the
/// final latent by 5e-4). On the CPU backend this is the same float32 arithmetic and the same
/// `f32::cos`/`f32::sin` as burn's tensor ops, so the bits are unchanged there.
pub fn timestep_sinusoid(timesteps: &[f32], frequencies: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(timesteps.len() * 2 * frequencies.len());
    for &t in timesteps {
        let args = frequencies.iter().map(|&f| (t * f) * 1000.0f32);
        out.extend(args.clone().map(f32::cos));
        out.extend(args.map(f32::sin));
    }
    out
}

#[derive(Clone, Debug)]
pub struct TimestepEmbedding {
    /// [`timestep_frequencies`] of half the channel count.
    pub frequencies: Vec<f32>,
    pub linear_1: Linear,
    pub linear_2: Linear,
    device: Device,
}

impl TimestepEmbedding {
    pub fn new(linear_1: Linear, linear_2: Linear, channels: usize, device: &Device) -> Self {
        Self { frequencies: timestep_frequencies(channels / 2), linear_1, linear_2, device: device.clone() }
    }

    /// `timesteps` (one float32 per batch item) → `[B, inner]` in `dtype`: the float32
    /// [`timestep_sinusoid`], cast to the compute dtype before the MLP.
    pub fn forward(&self, timesteps: &[f32], dtype: DType) -> Tensor<2> {
        let shape = [timesteps.len(), 2 * self.frequencies.len()];
        let sinusoid = timestep_sinusoid(timesteps, &self.frequencies);
        let emb = Tensor::<2>::from_data(TensorData::new(sinusoid, shape), (&self.device, DType::F32)).cast(dtype);
        self.linear_2.forward(silu(self.linear_1.forward(emb)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host sinusoid is bit for bit what burn's CPU backend computes from the same timesteps
    /// with tensor ops (the form this module had before it moved to the host).
    #[test]
    fn host_sinusoid_equals_the_cpu_backends_tensor_ops() {
        let device = Device::flex();
        let timesteps = [1.0f32, 0.9572, 0.5, 0.0317, 0.0];
        let frequencies = timestep_frequencies(128);
        let t = Tensor::<1>::from_data(TensorData::new(timesteps.to_vec(), [5]), &device);
        let f = Tensor::<2>::from_data(TensorData::new(frequencies.clone(), [1, 128]), &device);
        let args = (t.unsqueeze_dim::<2>(1) * f).mul_scalar(1000.0f32);
        let on_device = Tensor::cat(vec![args.clone().cos(), args.sin()], 1).into_data().try_into_vec::<f32>().unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&timestep_sinusoid(&timesteps, &frequencies)), bits(&on_device));
    }
}
