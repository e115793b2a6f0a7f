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

#[derive(Clone, Debug)]
pub struct TimestepEmbedding {
    pub frequencies: Tensor<2>,
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn new(linear_1: Linear, linear_2: Linear, channels: usize, device: &Device) -> Self {
        let half = channels / 2;
        let frequencies = Tensor::from_data(TensorData::new(timestep_frequencies(half), [1, half]), (device, DType::F32));
        Self { frequencies, linear_1, linear_2 }
    }

    /// `timestep: [B]` float32 → `[B, inner]` in `dtype`. The sinusoid is float32
    /// (`1000 · (t · f)`, then `[cos, sin]`) and is cast to the compute dtype before the MLP.
    pub fn forward(&self, timestep: Tensor<1>, dtype: DType) -> Tensor<2> {
        let args = (timestep.cast(DType::F32).unsqueeze_dim::<2>(1) * self.frequencies.clone()).mul_scalar(1000.0f32);
        let emb = Tensor::cat(vec![args.clone().cos(), args.sin()], 1).cast(dtype);
        self.linear_2.forward(silu(self.linear_1.forward(emb)))
    }
}
