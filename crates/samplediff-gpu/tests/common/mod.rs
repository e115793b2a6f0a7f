//! What the GPU tests share: the GPU, made once per test binary, and their data.

use std::sync::OnceLock;

use samplediff_formats::DType;
use samplediff_gpu::GpuMetrics;
use samplediff_metrics::TensorReport;

pub fn gpu() -> &'static GpuMetrics {
    static GPU: OnceLock<GpuMetrics> = OnceLock::new();
    GPU.get_or_init(|| GpuMetrics::new().expect("a wgpu adapter (lavapipe will do)"))
}

/// splitmix64: the tests' data, the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Little-endian bytes of `v` in `dtype` (F32, F16 or BF16).
pub fn encode(dtype: DType, v: &[f32]) -> Vec<u8> {
    match dtype {
        DType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::F16 => v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        DType::BF16 => v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        other => panic!("{other:?}"),
    }
}

/// `gpu` within `rel` of `cpu` (relative), or both absent.
pub fn near(what: &str, gpu: Option<f64>, cpu: Option<f64>, rel: f64) {
    match (gpu, cpu) {
        (Some(g), Some(c)) => assert!((g - c).abs() <= rel * c.abs(), "{what}: gpu {g} vs cpu {c}"),
        (g, c) => assert_eq!(g.is_some(), c.is_some(), "{what}: gpu {g:?} vs cpu {c:?}"),
    }
}

/// The report fields made of the main pass's sums, GPU within 1e-5 of CPU.
pub fn sums_near(what: &str, g: &TensorReport, c: &TensorReport) {
    for (name, x, y) in [
        ("mean_abs", g.mean_abs, c.mean_abs),
        ("rmse", g.rmse, c.rmse),
        ("rms_a", g.rms_a, c.rms_a),
        ("rms_b", g.rms_b, c.rms_b),
        ("mean_rel", g.mean_rel, c.mean_rel),
        ("cosine", g.cosine, c.cosine),
        ("pearson", g.pearson, c.pearson),
        ("snr_db", g.snr_db, c.snr_db),
    ] {
        near(&format!("{what}: {name}"), x, y, 1e-5);
    }
}
