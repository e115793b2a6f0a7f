//! ComfyUI's model-sampling objects for flow models: the σ table, σ ↔ timestep, and the CONST
//! (rectified-flow) parameterisation (`comfy/model_sampling.py`).
//!
//! Every tensor operation of the Python code is a separate float32 kernel with its Python-float
//! operands rounded to f32 first, and there is no FMA fusion between kernels; the functions here
//! spell that out operation by operation, because schedulers index and interpolate this table and
//! the golden schedules are compared bit for bit.

/// Which shift formula maps t ∈ (0, 1] to σ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShiftKind {
    /// `ModelSamplingDiscreteFlow` (nodes ModelSamplingAuraFlow, ModelSamplingSD3):
    /// `σ = shift·t / (1 + (shift−1)·t)`, 1000 table entries.
    DiscreteFlow,
    /// `ModelSamplingFlux` (Qwen-Image and Flux without a ModelSampling node):
    /// `σ = e^shift / (e^shift + (1/t − 1))`, 10000 table entries, `timestep(σ) = σ`.
    Flux,
}

/// A `ModelSampling… + CONST` object: its parameters and its float32 σ table (ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSampling {
    kind: ShiftKind,
    shift: f64,
    multiplier: f64,
    sigmas: Vec<f32>,
}

impl ModelSampling {
    /// `ModelSamplingDiscreteFlow.set_parameters(shift, timesteps=1000, multiplier)`.
    pub fn discrete_flow(shift: f64, multiplier: f64) -> Self {
        let mut ms = Self { kind: ShiftKind::DiscreteFlow, shift, multiplier, sigmas: Vec::new() };
        // ts = (arange(1, 1001) / 1000) * multiplier; sigmas = sigma(ts)
        let m = multiplier as f32;
        ms.sigmas = (1..=1000).map(|i| ms.sigma(div_f32(i as f32, 1000.0) * m)).collect();
        ms
    }

    /// What the ModelSamplingAuraFlow node installs: discrete flow with multiplier 1.
    pub fn aura_flow(shift: f64) -> Self {
        Self::discrete_flow(shift, 1.0)
    }

    /// What the ModelSamplingSD3 node installs: discrete flow with multiplier 1000.
    pub fn sd3(shift: f64) -> Self {
        Self::discrete_flow(shift, 1000.0)
    }

    /// `ModelSamplingFlux.set_parameters(shift, timesteps=10000)`.
    pub fn flux(shift: f64) -> Self {
        let mut ms = Self { kind: ShiftKind::Flux, shift, multiplier: 1.0, sigmas: Vec::new() };
        ms.sigmas = (1..=10_000).map(|i| ms.sigma(div_f32(i as f32, 10_000.0))).collect();
        ms
    }

    /// Qwen-Image's own sampling when no ModelSampling node is used
    /// (`supported_models.QwenImage.sampling_settings`: shift 1.15, model type FLUX).
    pub fn qwen_image_default() -> Self {
        Self::flux(1.15)
    }

    pub fn kind(&self) -> ShiftKind {
        self.kind
    }

    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// The timestep multiplier (1 for AuraFlow and Flux, 1000 for SD3).
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The float32 σ table, ascending (`model_sampling.sigmas`).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// `sigma_min = sigmas[0]`.
    pub fn sigma_min(&self) -> f32 {
        self.sigmas[0]
    }

    /// `sigma_max = sigmas[-1]`.
    pub fn sigma_max(&self) -> f32 {
        self.sigmas[self.sigmas.len() - 1]
    }

    /// `timestep(σ)`: what the network is given. Discrete flow: `σ·multiplier` (no un-shifting);
    /// Flux: `σ`.
    pub fn timestep(&self, sigma: f32) -> f32 {
        match self.kind {
            ShiftKind::DiscreteFlow => sigma * self.multiplier as f32,
            ShiftKind::Flux => sigma,
        }
    }

    /// `sigma(timestep)` on a float32 tensor element.
    pub fn sigma(&self, timestep: f32) -> f32 {
        match self.kind {
            ShiftKind::DiscreteFlow => time_snr_shift_f32(self.shift, div_f32(timestep, self.multiplier as f32)),
            ShiftKind::Flux => flux_time_shift_f32(self.shift, timestep),
        }
    }

    /// `percent_to_sigma(p)` (Python float math): 1 at p ≤ 0, 0 at p ≥ 1, else the shift of 1−p.
    pub fn percent_to_sigma(&self, percent: f64) -> f64 {
        if percent <= 0.0 {
            return 1.0;
        }
        if percent >= 1.0 {
            return 0.0;
        }
        let t = 1.0 - percent;
        match self.kind {
            ShiftKind::DiscreteFlow => time_snr_shift_f64(self.shift, t),
            ShiftKind::Flux => flux_time_shift_f64(self.shift, t),
        }
    }
}

/// A float32 tensor division (`a / b` as one correctly rounded f32 op). Named so the op-by-op
/// transcriptions below read like the Python they mirror.
#[inline]
fn div_f32(a: f32, b: f32) -> f32 {
    a / b
}

/// `time_snr_shift(alpha, t)` on a float32 tensor element:
/// `f32(f32(α)·t) / f32(1 + f32(f32(α−1)·t))` — `α−1` is a Python (f64) subtraction rounded once
/// to f32, and each tensor op rounds separately.
pub fn time_snr_shift_f32(alpha: f64, t: f32) -> f32 {
    if alpha == 1.0 {
        return t;
    }
    let num = alpha as f32 * t;
    let den = 1.0 + (alpha - 1.0) as f32 * t;
    num / den
}

/// `time_snr_shift` on Python floats.
pub fn time_snr_shift_f64(alpha: f64, t: f64) -> f64 {
    if alpha == 1.0 {
        return t;
    }
    alpha * t / (1.0 + (alpha - 1.0) * t)
}

/// `flux_time_shift(mu, 1.0, t)` on a float32 tensor element, as torch evaluates
/// `math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** 1.0)`: `1/t` and `e/x` are `reciprocal()`
/// followed by a multiplication (`Tensor.__rtruediv__`), `** 1.0` is a copy, and `e^mu` is a
/// Python float rounded to f32 by each op.
pub fn flux_time_shift_f32(mu: f64, t: f32) -> f32 {
    let e = mu.exp() as f32;
    let inv_t = (1.0 / t) * 1.0;
    let base = inv_t - 1.0;
    let den = e + base;
    (1.0 / den) * e
}

/// `flux_time_shift(mu, 1.0, t)` on Python floats.
pub fn flux_time_shift_f64(mu: f64, t: f64) -> f64 {
    let e = mu.exp();
    e / (e + (1.0 / t - 1.0))
}

/// The CONST (rectified flow) parameterisation, `x_σ = σ·ε + (1−σ)·x₀`, as per-element float32
/// reference functions. Each mirrors the exact op order of `comfy/model_sampling.py:CONST`, so the
/// tensor code of the samplers can apply the same sequence on burn tensors (and tests can check
/// it element by element).
pub mod constant {
    /// `noise_scaling(σ, ε, latent)`: `σ·ε + (1−σ)·latent` — two f32 products, one f32 sum.
    pub fn noise_scaling(sigma: f32, noise: f32, latent: f32) -> f32 {
        sigma * noise + one_minus(sigma) * latent
    }

    /// `inverse_noise_scaling(σ, x)`: `x / (1−σ)` (σ = the last schedule value, normally 0).
    pub fn inverse_noise_scaling(sigma: f32, x: f32) -> f32 {
        x / one_minus(sigma)
    }

    /// `calculate_denoised(σ, v, x)`: `x − v·σ` — the x₀ prediction from the velocity `v`.
    pub fn calculate_denoised(sigma: f32, model_output: f32, x: f32) -> f32 {
        x - model_output * sigma
    }

    /// `calculate_input(σ, x)`: CONST feeds `x` unchanged.
    pub fn calculate_input(_sigma: f32, x: f32) -> f32 {
        x
    }

    /// The f32 scalar `1.0 − σ` that `noise_scaling` and `inverse_noise_scaling` multiply or
    /// divide by (a float32 `rsub`, rounded once).
    pub fn one_minus(sigma: f32) -> f32 {
        1.0 - sigma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §2.2 of the spec: shift 3.1 gives σ_min = 0.0030935036 and σ_max = 1.0 (torch printout).
    #[test]
    fn shift_3_1_table_ends() {
        let ms = ModelSampling::aura_flow(3.1);
        assert_eq!(ms.sigmas().len(), 1000);
        assert_eq!(ms.sigma_min(), "0.0030935036".parse::<f32>().unwrap());
        assert_eq!(ms.sigma_max(), 1.0);
        assert!(ms.sigmas().windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn timestep_does_not_unshift() {
        let aura = ModelSampling::aura_flow(3.0);
        let sd3 = ModelSampling::sd3(3.0);
        assert_eq!(aura.timestep(0.5), 0.5);
        assert_eq!(sd3.timestep(0.5), 500.0);
        assert_eq!(aura.sigma(aura.timestep(0.5)), time_snr_shift_f32(3.0, 0.5));
    }

    #[test]
    fn shift_one_is_the_identity() {
        let ms = ModelSampling::aura_flow(1.0);
        assert_eq!(ms.sigmas()[499], 0.5);
        assert_eq!(ms.percent_to_sigma(0.25), 0.75);
    }

    #[test]
    fn percent_to_sigma_edges() {
        let ms = ModelSampling::aura_flow(3.1);
        assert_eq!(ms.percent_to_sigma(0.0), 1.0);
        assert_eq!(ms.percent_to_sigma(-1.0), 1.0);
        assert_eq!(ms.percent_to_sigma(1.0), 0.0);
        let p = ms.percent_to_sigma(0.5);
        assert_eq!(p, 3.1 * 0.5 / (1.0 + 2.1 * 0.5));
    }

    #[test]
    fn qwen_default_is_flux_with_shift_1_15() {
        let ms = ModelSampling::qwen_image_default();
        assert_eq!(ms.kind(), ShiftKind::Flux);
        assert_eq!(ms.sigmas().len(), 10_000);
        assert_eq!(ms.timestep(0.25), 0.25);
        // Table entry i is e^1.15 / (e^1.15 + 1/t − 1) up to float32 rounding.
        let e = 1.15f64.exp();
        for (i, &s) in ms.sigmas().iter().enumerate().step_by(997) {
            let t = (i + 1) as f64 / 10_000.0;
            assert!((s as f64 - e / (e + 1.0 / t - 1.0)).abs() < 1e-6);
        }
        assert!((ms.sigma_max() - 1.0).abs() <= f32::EPSILON);
    }

    #[test]
    fn const_parameterisation_round_trips() {
        use constant::*;
        let (sigma, eps, x0) = (0.75f32, 0.3f32, -1.25f32);
        let x = noise_scaling(sigma, eps, x0);
        assert_eq!(x, 0.75 * 0.3 + 0.25 * -1.25);
        let v = eps - x0;
        assert!((calculate_denoised(sigma, v, x) - x0).abs() < 1e-6);
        assert_eq!(inverse_noise_scaling(0.0, x), x);
        assert_eq!(calculate_input(sigma, x), x);
    }
}
