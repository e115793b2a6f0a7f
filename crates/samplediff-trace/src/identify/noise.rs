//! Which initial noise a run started from: ComfyUI's CPU noise for some seed (bit-exact, see
//! `samplediff_chain::rng`), CUDA Philox noise (emulated, within about 2e-5 of a real GPU), or
//! something else.

use burn::tensor::{Device, Tensor, TensorData};
use samplediff_chain::ksampler::{fix_empty_latent_channels, has_nonzero, noise_scaling};
use samplediff_chain::latent_format::LatentFormat;
use samplediff_chain::rng::{CudaDevice, CudaPhiloxGenerator, prepare_noise};

use super::push_unique;
use crate::names::call_name;
use crate::numeric::{bit_equal, fmt, max_abs};
use crate::trace::{Trace, host};

/// Largest |difference| at which the Philox emulation is taken to be the GPU's noise (the
/// emulation is within 2.3e-5 of torch on an H100, see `samplediff_chain::rng::philox`).
pub const PHILOX_TOLERANCE: f64 = 1e-4;

/// A noise generator and seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSource {
    /// `torch.randn` on the CPU generator (`comfy.sample.prepare_noise`): ComfyUI's default.
    TorchCpu { seed: u64 },
    /// `torch.randn` on a CUDA device (Philox4x32-10), as a latent drawn on the GPU would be.
    CudaPhilox { seed: u64 },
    /// No noise (`add_noise = disable`).
    Zeros,
}

impl NoiseSource {
    pub fn describe(&self) -> String {
        match self {
            NoiseSource::TorchCpu { seed } => format!("ComfyUI's CPU noise (torch CPU randn) for seed {seed}"),
            NoiseSource::CudaPhilox { seed } => format!("CUDA (Philox) GPU noise for seed {seed}"),
            NoiseSource::Zeros => "zeros (no noise added)".into(),
        }
    }
}

/// The identified noise of one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseId {
    /// The generator that reproduces it, if any did.
    pub source: Option<NoiseSource>,
    /// Bit for bit (else within [`PHILOX_TOLERANCE`]).
    pub exact: bool,
    /// Largest |difference| to the reproduced noise (or to the closest candidate).
    pub max_abs: f64,
    /// Where the noise was read: the `noise` tensor or the noise-scaled `call000.x`.
    pub from: &'static str,
    /// Mean and standard deviation of the noise itself, when it is known.
    pub stats: Option<(f64, f64)>,
}

/// The run's initial noise when it can be read off the trace: the `noise` tensor, or
/// `call000.x` when the first sigma is 1 (then `x = 1·noise + 0·latent` is the noise exactly).
pub fn initial_noise(trace: &Trace) -> Option<(Vec<f32>, Vec<usize>)> {
    if let Some(t) = trace.get("noise") {
        return Some((t.to_f32_vec(), t.shape.clone()));
    }
    let sigma0 = trace.call_sigmas().first().copied()?;
    let x = trace.get(&call_name(0, "x"))?;
    (sigma0 == 1.0).then(|| (x.to_f32_vec(), x.shape.clone()))
}

/// Identifies `trace`'s initial noise, trying its own seed and then `other`'s.
pub fn identify_noise(trace: &Trace, other: Option<&Trace>, device: &Device) -> Option<NoiseId> {
    let explicit = trace.get("noise");
    let target_name = if explicit.is_some() { "noise" } else { "call000.x" };
    let target = trace.get(target_name)?;
    let shape = target.shape.clone();
    let numel: usize = shape.iter().product();
    let recorded = target.to_f32_vec();

    let mut seeds = Vec::new();
    if let Some(s) = trace.seed() {
        seeds.push(s);
    }
    if let Some(s) = other.and_then(Trace::seed) {
        push_unique(&mut seeds, s);
    }
    let mut candidates: Vec<(NoiseSource, Vec<f32>)> = Vec::new();
    for &seed in &seeds {
        if let Ok(n) = prepare_noise(seed, &shape, None) {
            candidates.push((NoiseSource::TorchCpu { seed }, n.data));
        }
    }
    for &seed in &seeds {
        // The layout depends on the GPU only when the tensor outnumbers its resident threads.
        candidates.push((NoiseSource::CudaPhilox { seed }, CudaPhiloxGenerator::manual_seed(seed).randn_f32(numel, CudaDevice::H100_SXM)));
    }
    candidates.push((NoiseSource::Zeros, vec![0.0; numel]));

    // Without a `noise` tensor, compare in x space: x_T = sigma0·noise + (1 − sigma0)·latent.
    let to_x: Option<ToRecorded> = match explicit {
        Some(_) => None,
        None => Some(x_from_noise(trace, &shape, device)?),
    };
    let sigma0 = if explicit.is_some() { 1.0 } else { trace.call_sigmas().first().copied().unwrap_or(1.0) as f64 };

    let mut best: Option<(NoiseSource, f64)> = None;
    for (source, noise) in &candidates {
        let produced = match &to_x {
            Some(f) => f(noise)?,
            None => noise.clone(),
        };
        if bit_equal(&produced, &recorded) {
            let stats = initial_noise(trace).map(|(n, _)| mean_std(&n)).or_else(|| Some(mean_std(noise)));
            return Some(NoiseId { source: Some(*source), exact: true, max_abs: 0.0, from: target_name, stats });
        }
        let d = max_abs(&produced, &recorded);
        if best.is_none_or(|(_, b)| d < b) {
            best = Some((*source, d));
        }
    }
    let stats = initial_noise(trace).map(|(n, _)| mean_std(&n));
    let (source, d) = best?;
    let close = matches!(source, NoiseSource::CudaPhilox { .. }) && d <= PHILOX_TOLERANCE * sigma0.max(1e-3);
    Some(NoiseId { source: close.then_some(source), exact: false, max_abs: d, from: target_name, stats })
}

impl NoiseId {
    pub fn describe(&self) -> String {
        match (&self.source, self.exact) {
            (Some(s), true) => format!("{} (bit-exact, read from {})", s.describe(), self.from),
            (Some(s), false) => format!("{} (max |Δ| {} to the emulation, read from {})", s.describe(), fmt(self.max_abs), self.from),
            (None, _) => {
                let stats = self.stats.map(|(m, s)| format!("; mean {}, std {}", fmt(m), fmt(s))).unwrap_or_default();
                format!("no known generator/seed reproduces it (closest candidate max |Δ| {}{stats})", fmt(self.max_abs))
            }
        }
    }
}

/// Maps candidate noise values to what the trace recorded.
type ToRecorded = Box<dyn Fn(&[f32]) -> Option<Vec<f32>>>;

/// `noise -> call000.x` as ComfyUI computes it for this trace.
fn x_from_noise(trace: &Trace, shape: &[usize], device: &Device) -> Option<ToRecorded> {
    let sigma0 = trace.call_sigmas().first().copied()?;
    let shape5: [usize; 5] = shape.try_into().ok()?;
    let latent = match trace.latent_in(device) {
        Some(l) => {
            let fixed = fix_empty_latent_channels(LatentFormat::Wan21, &l);
            if fixed.dims() != shape5 {
                return None;
            }
            if has_nonzero(&fixed) { LatentFormat::Wan21.process_in(fixed).ok()? } else { fixed }
        }
        None => Tensor::zeros(shape5, device),
    };
    let device = device.clone();
    Some(Box::new(move |noise: &[f32]| {
        let n = Tensor::<5>::from_data(TensorData::new(noise.to_vec(), shape5), &device);
        host(&noise_scaling(sigma0, n, latent.clone())).ok()
    }))
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
