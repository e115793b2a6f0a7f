//! Which output convention a run's `latent_out` follows: ComfyUI's LATENT (the sampler's result
//! after inverse noise scaling and the latent format's `process_out`, always applied by
//! KSampler) or the raw, still-normalised sampler state.

use burn::tensor::{Device, Tensor};
use samplediff_chain::ksampler::inverse_noise_scaling;
use samplediff_chain::latent_format::LatentFormat;

use crate::names::step_name;
use crate::numeric::{bit_equal, fmt, rel_rms};
use crate::trace::{Trace, host, to_tensor5};

/// Relative RMS within which an estimate of the final state identifies a convention.
pub const ESTIMATE_TOLERANCE: f64 = 1e-3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// ComfyUI's: `process_out(x / (1 − σ_last))` (the Wan 2.1 de-normalisation for Qwen-Image).
    ProcessOut,
    /// The sampler's normalised state, `process_out` missing.
    Raw,
}

impl Convention {
    pub fn describe(self) -> &'static str {
        match self {
            Convention::ProcessOut => "ComfyUI's LATENT (Wan 2.1 process_out applied)",
            Convention::Raw => "the raw normalised sampler state (process_out NOT applied)",
        }
    }
}

/// The identified output convention of one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputId {
    pub convention: Convention,
    /// Bit for bit against the sampler's replayed final state (else against an estimate).
    pub exact: bool,
    /// Relative RMS between `latent_out` and the convention's prediction.
    pub rel: f64,
    /// What the final state was: `replayed` or `estimated from the last denoised`.
    pub basis: &'static str,
}

impl OutputId {
    pub fn describe(&self) -> String {
        if self.exact {
            format!("{} (bit-exact from the replayed final state)", self.convention.describe())
        } else {
            format!("{} (relative RMS {} from the {})", self.convention.describe(), fmt(self.rel), self.basis)
        }
    }
}

/// Identifies the convention of `trace`'s `latent_out`. `samples` is the sampler's final state
/// when a sampler replay produced it; otherwise the last step's `denoised` stands in for it (a
/// step to sigma 0 lands on its denoised prediction up to rounding).
pub fn identify_output(trace: &Trace, samples: Option<&Tensor<5>>, last_sigma: f32, device: &Device) -> Option<OutputId> {
    let out = trace.get("latent_out")?;
    let recorded = out.to_f32_vec();
    let (state, basis) = match samples {
        Some(s) => (s.clone(), "replayed final state"),
        None => {
            let n = trace.step_count().checked_sub(1)?;
            (trace.tensor5(&step_name(n, "denoised"), device)?, "last step's denoised (an estimate of the final state)")
        }
    };
    let y = inverse_noise_scaling(last_sigma, state);
    if y.dims()[1] != LatentFormat::Wan21.latent_channels() {
        return None;
    }
    let comfy = host(&LatentFormat::Wan21.process_out(y.clone()).ok()?).ok()?;
    let raw = host(&y).ok()?;
    // Compare values only: shapes may differ by the T = 1 axis.
    to_tensor5(&recorded, &out.shape, device)?;
    if samples.is_some() {
        if bit_equal(&recorded, &comfy) {
            return Some(OutputId { convention: Convention::ProcessOut, exact: true, rel: 0.0, basis });
        }
        if bit_equal(&recorded, &raw) {
            return Some(OutputId { convention: Convention::Raw, exact: true, rel: 0.0, basis });
        }
    }
    let (rc, rr) = (rel_rms(&recorded, &comfy), rel_rms(&recorded, &raw));
    let (convention, rel) = if rc <= rr { (Convention::ProcessOut, rc) } else { (Convention::Raw, rr) };
    (rel <= ESTIMATE_TOLERANCE).then_some(OutputId { convention, exact: false, rel, basis })
}
