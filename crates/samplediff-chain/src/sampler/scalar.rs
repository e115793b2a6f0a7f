//! Float32 scalar math as torch does it on 0-d float32 tensors.
//!
//! `+ - * /` are single IEEE operations in both worlds. For `sqrt`, `log`, `exp` and `expm1` torch's
//! CPU kernels call MKL's vector math (high-accuracy mode) or SLEEF, which are accurate to 1 ulp but
//! not correctly rounded. Measured with `tests/gen/scalar_math_check.py` on 10^6 inputs (torch 2.11,
//! x86-64 with MKL; 0-d tensors give the same bits as vectors): sqrt differs from the correctly
//! rounded result for 0.66% of sigmas in (1e-4, 1], exp for 1.07% of arguments in (-12, 12),
//! expm1 0.08%, log 0.011%, logit 0.0098% — always by exactly 1 ulp.
//!
//! The chain uses the correctly rounded result on every platform (IEEE `sqrt`; float64 evaluation
//! and one rounding for the others), so native and wasm builds agree and a sampler coefficient
//! matches torch's except in those rare cases. Every coefficient of the golden workflows and of 10
//! of the 11 sampler reference cases matches; `res_multistep_ancestral` hits one torch `sqrt` that
//! is 1 ulp low (see `tests/sampler_refs.rs`).

/// `torch.log` of a float32 scalar (`log(0) = -inf`).
pub fn ln(x: f32) -> f32 {
    (x as f64).ln() as f32
}

/// `torch.exp` of a float32 scalar.
pub fn exp(x: f32) -> f32 {
    (x as f64).exp() as f32
}

/// `torch.expm1` of a float32 scalar.
pub fn expm1(x: f32) -> f32 {
    (x as f64).exp_m1() as f32
}

/// `torch.logit` of a float32 scalar: `log(x / (1 - x))`, the quotient rounded to float32 first.
pub fn logit(x: f32) -> f32 {
    if x == 1.0 {
        return f32::INFINITY;
    }
    ln(x / (1.0 - x))
}

/// `torch.nan_to_num(x, nan=0.0)`: NaN becomes 0, infinities the largest finite values.
pub fn nan_to_num(x: f32) -> f32 {
    if x.is_nan() {
        0.0
    } else if x == f32::INFINITY {
        f32::MAX
    } else if x == f32::NEG_INFINITY {
        f32::MIN
    } else {
        x
    }
}

/// k-diffusion's `get_ancestral_step(sigma_from, sigma_to, eta)` on float32 sigmas:
/// `(sigma_down, sigma_up)`. `eta == 0` returns `(sigma_to, 0)` without arithmetic.
pub fn ancestral_step(sigma_from: f32, sigma_to: f32, eta: f64) -> (f32, f32) {
    if eta == 0.0 {
        return (sigma_to, 0.0);
    }
    // sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2, then **0.5, then eta * that.
    let to2 = sigma_to * sigma_to;
    let from2 = sigma_from * sigma_from;
    let inner = (to2 * (from2 - to2) / from2).sqrt();
    let candidate = eta as f32 * inner;
    // Python's min(a, b) keeps a unless b < a.
    let sigma_up = if candidate < sigma_to { candidate } else { sigma_to };
    let sigma_down = (to2 - sigma_up * sigma_up).sqrt();
    (sigma_down, sigma_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_of_zero_and_one_are_the_limits_torch_returns() {
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(-ln(0.0), f32::INFINITY);
        assert_eq!(exp(-f32::INFINITY), 0.0);
        assert_eq!(expm1(-f32::INFINITY), -1.0);
        assert_eq!(logit(1.0), f32::INFINITY);
        assert_eq!(logit(0.0), f32::NEG_INFINITY);
    }

    #[test]
    fn nan_to_num_maps_like_torch() {
        assert_eq!(nan_to_num(f32::NAN), 0.0);
        assert_eq!(nan_to_num(f32::INFINITY), f32::MAX);
        assert_eq!(nan_to_num(f32::NEG_INFINITY), f32::MIN);
        assert_eq!(nan_to_num(-2.5), -2.5);
    }

    #[test]
    fn ancestral_step_without_eta_is_a_plain_step() {
        assert_eq!(ancestral_step(0.8, 0.5, 0.0), (0.5, 0.0));
    }

    #[test]
    fn ancestral_step_splits_the_target_variance() {
        let (down, up) = ancestral_step(0.8, 0.5, 1.0);
        // sigma_down^2 + sigma_up^2 = sigma_to^2 (to float32 rounding).
        assert!((down * down + up * up - 0.25).abs() < 1e-6);
        assert!(up <= 0.5 && down > 0.0);
        // sigma_to = 0 gives no noise and no remaining sigma.
        assert_eq!(ancestral_step(0.8, 0.0, 1.0), (0.0, 0.0));
    }
}
