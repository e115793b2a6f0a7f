//! `prepare_noise` against real ComfyUI/torch output (`tests/fixtures/comfyui/noise.*`), plus
//! properties over seeds and shapes the golden file does not cover.

use std::path::PathBuf;

use samplediff_chain::rng::{TorchCpuGenerator, prepare_noise, torch_cpu_randn};
use samplediff_formats::{Bytes, safetensors};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui")
}

#[derive(serde::Deserialize)]
struct Case {
    key: String,
    seed: u64,
    shape: Vec<usize>,
}

#[test]
fn every_golden_noise_case_is_bit_exact() {
    let cases: Vec<Case> = serde_json::from_slice(&std::fs::read(fixtures().join("noise.json")).unwrap()).unwrap();
    let file = safetensors::read(Bytes::new(std::fs::read(fixtures().join("noise.safetensors")).unwrap())).unwrap();
    assert!(cases.len() >= 20);
    let mut exact = 0;
    for case in &cases {
        let want = file.get(&case.key).unwrap_or_else(|| panic!("{} missing", case.key));
        assert_eq!(want.shape, case.shape, "{}", case.key);
        let got = prepare_noise(case.seed, &case.shape, None).unwrap();
        let want = want.to_f32_vec();
        assert_eq!(got.data.len(), want.len(), "{}", case.key);
        let mismatches = got.data.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(mismatches, 0, "{}: {mismatches} of {} values differ", case.key, want.len());
        exact += 1;
    }
    eprintln!("noise: {exact}/{} golden cases bit-exact", cases.len());
}

#[test]
fn seeds_at_and_above_two_to_the_32_use_only_the_low_bits() {
    let shape = [1, 16, 1, 5, 7]; // 560 elements: vector path with a tail
    assert_eq!(torch_cpu_randn((1 << 32) + 42, &shape).unwrap(), torch_cpu_randn(42, &shape).unwrap());
    assert_eq!(torch_cpu_randn(u64::MAX, &shape).unwrap(), torch_cpu_randn(0xFFFF_FFFF, &shape).unwrap());
    assert_eq!(torch_cpu_randn(1 << 32, &[5]).unwrap(), torch_cpu_randn(0, &[5]).unwrap());
    assert_ne!(torch_cpu_randn(1, &shape).unwrap(), torch_cpu_randn(0, &shape).unwrap());
}

/// A tiny deterministic source of test seeds and sizes (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// For random seeds and sizes (both paths, with and without a tail), every output must be the
/// textbook Box–Muller value of the uniforms torch would consume for that slot, to within the
/// accuracy of the polynomial approximations — an oracle independent of the bit-level details
/// that catches wrong pairing, wrong uniforms, wrong tail handling or wrong quadrants.
#[test]
fn random_shapes_follow_box_muller_of_the_right_uniforms() {
    let mut rng = SplitMix(0x5EED);
    for _ in 0..200 {
        let seed = rng.next();
        let n = 1 + (rng.next() % 700) as usize;
        let got = torch_cpu_randn(seed, &[n]).unwrap();
        let want = reference_randn(seed, n);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = 2e-6 * (1.0 + w.abs());
            assert!((*g as f64 - w).abs() <= tol, "seed {seed} n {n} i {i}: {g} vs {w}");
        }
    }
}

/// torch's randn layout with exact (f64) Box–Muller, written independently of the library.
fn reference_randn(seed: u64, n: usize) -> Vec<f64> {
    let mut g = TorchCpuGenerator::manual_seed(seed);
    let tau = std::f64::consts::TAU;
    if n < 16 {
        let mut out = Vec::new();
        while out.len() < n {
            let u1 = g.uniform_f64();
            let u2 = g.uniform_f64();
            let r = (-2.0 * (1.0 - u2).ln()).sqrt();
            out.push(r * (tau * u1).cos());
            out.push(r * (tau * u1).sin());
        }
        out.truncate(n);
        return out;
    }
    let transform = |u: &[f32]| -> Vec<f64> {
        let mut out = vec![0.0; 16];
        for j in 0..8 {
            let r = (-2.0 * (1.0 - u[j] as f64).ln()).sqrt();
            let theta = (std::f32::consts::TAU * u[j + 8]) as f64;
            out[j] = r * theta.cos();
            out[j + 8] = r * theta.sin();
        }
        out
    };
    let uniforms: Vec<f32> = (0..n).map(|_| g.uniform_f32()).collect();
    let mut out: Vec<f64> = uniforms.chunks_exact(16).flat_map(transform).collect();
    out.resize(n, 0.0);
    if !n.is_multiple_of(16) {
        let tail: Vec<f32> = (0..16).map(|_| g.uniform_f32()).collect();
        out[n - 16..].copy_from_slice(&transform(&tail));
    }
    out
}

#[test]
fn noise_becomes_a_burn_tensor_of_the_right_shape() {
    let device = burn::tensor::Device::flex();
    let noise = prepare_noise(0, &[1, 16, 1, 3, 5], None).unwrap();
    let tensor = noise.to_tensor::<5>(&device).unwrap();
    assert_eq!(tensor.dims(), [1, 16, 1, 3, 5]);
    let back: Vec<f32> = tensor.into_data().try_to_vec().unwrap();
    assert_eq!(back, noise.data);
    assert!(noise.to_tensor::<4>(&device).is_err());
}
