//! The small building blocks, each with torch's operation order.
//!
//! In bf16 the activations that torch computes inside one kernel in float32 (GELU, SiLU, RMSNorm)
//! are computed here in float32 too and rounded to bf16 once, as torch does; everything else runs
//! natively in the compute dtype, one rounding per operation, as torch does as well.

use burn::tensor::{DType, Tensor};

/// `nn.Linear` with the weight stored as `[in, out]` (burn's layout; the checkpoint's `[out, in]`
/// is transposed once on load).
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::linear(x, self.weight.clone(), self.bias.clone())
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// Runs `f` in float32 when `x` is a narrower float, then rounds back once.
fn in_f32<const D: usize>(x: Tensor<D>, f: impl FnOnce(Tensor<D>) -> Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    if dtype == DType::F32 || dtype == DType::F64 { f(x) } else { f(x.cast(DType::F32)).cast(dtype) }
}

/// `F.rms_norm` over the last dimension: `(x · 1/sqrt(mean(x²) + eps))` in float32, rounded to the
/// input dtype, then times the weight (torch's composite `rms_norm`).
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: &Tensor<1>, eps: f64) -> Tensor<D> {
    let normed = in_f32(x, |x| {
        let inv = x.clone().square().mean_dim(D - 1).add_scalar(eps).sqrt().recip();
        x * inv
    });
    normed * weight.clone().unsqueeze()
}

/// `nn.LayerNorm(elementwise_affine=False)` over the last dimension.
pub fn layer_norm<const D: usize>(x: Tensor<D>, ones: &Tensor<1>, eps: f64) -> Tensor<D> {
    burn::tensor::module::layer_norm(x, ones.clone(), None, eps)
}

/// `F.silu` = `x / (1 + exp(-x))`, torch's CPU formula.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    in_f32(x, |x| x.clone() / x.neg().exp().add_scalar(1.0))
}

/// `F.gelu(approximate="tanh")`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, torch's order.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const BETA: f64 = std::f64::consts::SQRT_2 * std::f64::consts::FRAC_2_SQRT_PI * 0.5;
    const KAPPA: f64 = 0.044715;
    in_f32(x, |x| {
        let cube = x.clone() * x.clone() * x.clone();
        let inner = (x.clone() + cube.mul_scalar(KAPPA as f32)).mul_scalar(BETA as f32);
        x.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
    })
}

/// `torch.addcmul(shift, x, 1 + scale)` with `shift`, `scale` of shape `[B, C]` broadcast over the
/// tokens of `x: [B, N, C]`.
pub fn modulate(x: Tensor<3>, shift: Tensor<2>, scale: Tensor<2>) -> Tensor<3> {
    x * scale.add_scalar(1.0).unsqueeze_dim(1) + shift.unsqueeze_dim(1)
}
