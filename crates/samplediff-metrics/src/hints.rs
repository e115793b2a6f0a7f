//! Plain-language observations drawn from a tensor's metrics.
//!
//! The one that matters most for diffusion latents: when, channel by channel, B is almost
//! exactly an affine function of A (R^2 close to 1) but not the identity, the two tensors hold
//! the same picture in two encodings, typically one side missing the latent (de-)normalisation.
//! When the fitted scales and shifts are a known latent format's std and mean, the hint says so.

use crate::report::{ChannelStats, Hint, TensorReport};

/// R^2 every channel must reach for the affine hint.
pub const AFFINE_R2: f64 = 0.99;

/// A latent format's per-channel normalisation: `process_in(z) = (z - mean) / std`,
/// `process_out(x) = x * std + mean` (ComfyUI `comfy/latent_formats.py`, scale_factor 1).
pub struct LatentNorm {
    pub name: &'static str,
    pub mean: &'static [f64],
    pub std: &'static [f64],
}

/// ComfyUI's `Wan21` latent format (also Qwen-Image's): `latents_mean` and `latents_std`.
pub const WAN21: LatentNorm = LatentNorm {
    name: "Wan 2.1",
    mean: &[
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632, -0.1922,
        -0.9497, 0.2503, -0.2921,
    ],
    std: &[
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253,
        2.8251, 1.9160,
    ],
};

pub const KNOWN_LATENT_NORMS: &[LatentNorm] = &[WAN21];

/// Relative tolerance when matching fitted scales/shifts against a format's constants.
const FORMAT_MATCH_TOL: f64 = 0.02;

pub fn hints(r: &TensorReport) -> Vec<Hint> {
    let mut out = Vec::new();
    if r.values_match {
        return out;
    }
    if let Some(h) = channel_affine(&r.per_channel) {
        out.push(h);
        out.extend(known_normalisation(&r.per_channel));
    }
    if r.nan_position_mismatch.unwrap_or(0) > 0 {
        out.push(Hint {
            kind: "nan_mismatch".into(),
            message: format!(
                "{} element(s) are NaN on one side only; NaNs are excluded from the value metrics",
                r.nan_position_mismatch.unwrap_or(0)
            ),
        });
    }
    if r.rel_zero_b.unwrap_or(0) > 0 && r.max_rel.is_some() {
        out.push(Hint {
            kind: "rel_zero_b".into(),
            message: format!(
                "{} element(s) with b == 0 are left out of max_rel/mean_rel; see max_rel_floored",
                r.rel_zero_b.unwrap_or(0)
            ),
        });
    }
    out
}

/// Every channel fits b ~ scale*a + shift with R^2 >= AFFINE_R2, and the fit is not the identity.
fn channel_affine(ch: &[ChannelStats]) -> Option<Hint> {
    if ch.is_empty() {
        return None;
    }
    let mut scales = Vec::with_capacity(ch.len());
    let mut shifts = Vec::with_capacity(ch.len());
    let mut min_r2 = f64::INFINITY;
    for c in ch {
        let (scale, shift, r2) = (c.scale?, c.shift?, c.r2?);
        if r2 < AFFINE_R2 {
            return None;
        }
        min_r2 = min_r2.min(r2);
        scales.push(scale);
        shifts.push(shift);
    }
    let identity = ch
        .iter()
        .zip(scales.iter().zip(&shifts))
        .all(|(c, (&k, &t))| (k - 1.0).abs() < 1e-3 && t.abs() < 1e-3 * c.std_b.max(f64::MIN_POSITIVE).max(1e-12));
    if identity {
        return None;
    }
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.4}..{hi:.4}")
    };
    Some(Hint {
        kind: "channel_affine".into(),
        message: format!(
            "per channel, B = scale*A + shift explains the difference (R^2 >= {min_r2:.4}; scale {}, shift {}): \
             the same content in two encodings, not numerical drift",
            range(&scales),
            range(&shifts)
        ),
    })
}

/// Does the channel fit equal a known latent format's de-normalisation (B = A*std + mean) or
/// normalisation (B = (A - mean)/std)?
fn known_normalisation(ch: &[ChannelStats]) -> Option<Hint> {
    let close = |x: f64, want: f64| (x - want).abs() <= FORMAT_MATCH_TOL * want.abs().max(0.1);
    for f in KNOWN_LATENT_NORMS {
        if ch.len() != f.std.len() {
            continue;
        }
        let fits = |scale: &dyn Fn(usize) -> f64, shift: &dyn Fn(usize) -> f64| {
            ch.iter().enumerate().all(|(i, c)| match (c.scale, c.shift) {
                (Some(k), Some(t)) => close(k, scale(i)) && close(t, shift(i)),
                _ => false,
            })
        };
        if fits(&|i| f.std[i], &|i| f.mean[i]) {
            return Some(Hint {
                kind: "latent_denormalisation_missing".into(),
                message: format!(
                    "B = A*latents_std + latents_mean with the {} constants: A is the raw normalised sampler state, \
                     B is ComfyUI's LATENT (process_out applied). Looks like a missing latent de-normalisation \
                     ({} process_out) on A's side",
                    f.name, f.name
                ),
            });
        }
        if fits(&|i| 1.0 / f.std[i], &|i| -f.mean[i] / f.std[i]) {
            return Some(Hint {
                kind: "latent_denormalisation_extra".into(),
                message: format!(
                    "A = B*latents_std + latents_mean with the {} constants: A is ComfyUI's LATENT (process_out \
                     applied), B is the raw normalised sampler state. Looks like a missing latent de-normalisation \
                     ({} process_out) on B's side",
                    f.name, f.name
                ),
            });
        }
    }
    None
}
