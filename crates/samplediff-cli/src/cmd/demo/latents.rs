//! The demo's two latents, made on the spot: the seed report's situation in miniature.
//!
//! The sampler state x is a synthetic, deterministic 1x16x1x147x110 field (smooth structure
//! plus normal-ish noise from a fixed-seed generator, about unit variance like a real sampler
//! output). Side B is what ComfyUI's workflow saves: its LATENT, `process_out(x) = x*std + mean`
//! with the Wan 2.1 constants, computed by samplediff-chain's ComfyUI-faithful latent format.
//! Side A is what the user's microservice returned: the raw normalised x.

use burn::tensor::{Device, Tensor, TensorData};
use samplediff_chain::latent_format::LatentFormat;
use samplediff_formats::{DType, RawTensor, TensorFile};

/// The seed report's latent shape.
pub const SHAPE: [usize; 5] = [1, 16, 1, 147, 110];
const SEED: u64 = 12345;

/// SplitMix64: tiny, fast, and the same numbers on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Normal-ish with unit variance and bounded tails (|v| <= 3): twice the centred sum of
    /// three uniforms. Real sampler outputs have lighter tails than a Gaussian, and so does this.
    fn normalish(&mut self) -> f64 {
        2.0 * (self.uniform() + self.uniform() + self.uniform() - 1.5)
    }
}

/// The synthetic sampler state x, C order.
pub fn sampler_state() -> Vec<f32> {
    let [_, c, _, h, w] = SHAPE;
    let mut rng = Rng(SEED);
    let mut x = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        let (fx, fy, phase) = (0.03 + 0.004 * ch as f64, 0.05 - 0.002 * ch as f64, ch as f64 * 0.7);
        for y in 0..h {
            for xx in 0..w {
                // Smooth "picture" structure (variance ~0.37) plus noise: total variance ~0.95.
                let blob = (fx * xx as f64 + phase).sin() * (fy * y as f64 - phase).cos() * 1.2;
                x.push((blob + 0.76 * rng.normalish()) as f32);
            }
        }
    }
    x
}

/// (A, B): the microservice's raw x and the workflow's LATENT, as one-tensor files.
pub fn seed_pair() -> anyhow::Result<(TensorFile, TensorFile)> {
    let x = sampler_state();
    let device = Device::flex();
    let t = Tensor::<5>::from_data(TensorData::new(x.clone(), SHAPE), (&device, burn::tensor::DType::F32));
    let latent = LatentFormat::Wan21.process_out(t).map_err(|e| anyhow::anyhow!("process_out: {e}"))?;
    let b = samplediff_tensor::to_raw("samples", latent, DType::F32)?;
    let a = RawTensor::from_f32("samples", SHAPE.to_vec(), &x);
    let file = |t: RawTensor, what: &str| TensorFile {
        tensors: vec![t],
        metadata: [("demo".to_string(), what.to_string())].into_iter().collect(),
    };
    Ok((file(a, "microservice output: raw sampler state x"), file(b, "ComfyUI workflow LATENT: process_out(x)")))
}
