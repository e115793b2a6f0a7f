//! The user's case (seed report): a 1x16x1x147x110 latent where one side is ComfyUI's LATENT,
//! x*std + mean with the Wan 2.1 constants, and the other the raw normalised sampler state x.
//! The per-channel fit must recover std and mean with R^2 > 0.99, and the hint must name it.

use burn::tensor::Device;
use samplediff_formats::RawTensor;
use samplediff_metrics::hints::WAN21;
use samplediff_metrics::{CompareOptions, Engine, compare_tensors};

mod common;

/// A deterministic roughly-normal field (sum of uniforms) with some spatial structure.
fn sampler_state(shape: [usize; 5]) -> Vec<f32> {
    let mut s = 0x9E3779B97F4A7C15u64;
    let mut uni = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let [_, c, _, h, w] = shape;
    let mut v = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let noise: f64 = (0..4).map(|_| uni()).sum::<f64>() - 2.0; // var 1/3
                let smooth = ((x as f64 / 9.0 + ch as f64).sin() * (y as f64 / 13.0).cos()) * 0.8;
                v.push((noise * 1.2 + smooth) as f32);
            }
        }
    }
    v
}

#[test]
fn per_channel_fit_recovers_the_wan21_denormalisation() {
    let shape = [1, 16, 1, 147, 110];
    let x = sampler_state(shape);
    let hw = 147 * 110;
    // ComfyUI's process_out in fp32: (x * std) / 1.0 + mean
    let latent: Vec<f32> =
        x.iter().enumerate().map(|(i, &v)| v * WAN21.std[i / hw] as f32 + WAN21.mean[i / hw] as f32).collect();
    let a = RawTensor::from_f32("latent", shape.to_vec(), &x);
    let b = RawTensor::from_f32("latent", shape.to_vec(), &latent);
    let r = compare_tensors(&a, &b, &Device::flex(), &CompareOptions::default()).unwrap();
    common::assert_equivalent(&Engine::host().compare(&a, &b, &CompareOptions::default()).unwrap(), &r);

    assert!(!r.values_match);
    let mean_abs = r.mean_abs.unwrap();
    assert!((0.8..1.4).contains(&mean_abs), "seed-like mean abs, got {mean_abs}");
    assert_eq!(r.per_channel.len(), 16);
    for (c, ch) in r.per_channel.iter().enumerate() {
        let (scale, shift, r2) = (ch.scale.unwrap(), ch.shift.unwrap(), ch.r2.unwrap());
        assert!(r2 > 0.99, "channel {c}: R^2 {r2}");
        assert!((scale - WAN21.std[c]).abs() < 1e-4, "channel {c}: scale {scale} vs std {}", WAN21.std[c]);
        assert!((shift - WAN21.mean[c]).abs() < 1e-4, "channel {c}: shift {shift} vs mean {}", WAN21.mean[c]);
    }
    let kinds: Vec<&str> = r.hints.iter().map(|h| h.kind.as_str()).collect();
    assert!(kinds.contains(&"channel_affine") && kinds.contains(&"latent_denormalisation_missing"), "{kinds:?}");

    // The other way round (A is the LATENT, B the raw state): the inverse map is recognised.
    let r = compare_tensors(&b, &a, &Device::flex(), &CompareOptions::default()).unwrap();
    assert!(r.hints.iter().any(|h| h.kind == "latent_denormalisation_extra"));
    assert!((r.per_channel[8].scale.unwrap() - 1.0 / WAN21.std[8]).abs() < 1e-5);
}
