//! Small host-side measures of how two arrays differ. The full metrics live in
//! `samplediff-metrics`; these are the few numbers the diagnosis itself decides with.

use half::{bf16, f16};

/// `2^-24`: the unit roundoff of float32 (half an ulp of 1.0).
pub const F32_UNIT_ROUNDOFF: f64 = 5.960_464_477_539_063e-8;

/// Bitwise-equal values (NaN equals NaN with the same bits, -0 differs from +0).
pub fn bit_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Equal as numbers (`-0 == +0`, NaN equals NaN).
pub fn value_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

/// Root mean square of the values (f64 accumulation).
pub fn rms(a: &[f32]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    (a.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / a.len() as f64).sqrt()
}

/// `RMS(a - b) / RMS(b)` (or over `RMS(a)` when `b` is all zeros); 0 for equal arrays,
/// infinity for a length mismatch or when one side is zero and the other not.
pub fn rel_rms(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let diff = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>();
    if diff == 0.0 {
        return 0.0;
    }
    if diff.is_nan() {
        return f64::NAN;
    }
    let scale = if rms(b) > 0.0 { rms(b) } else { rms(a) };
    if scale == 0.0 {
        return f64::INFINITY;
    }
    (diff / a.len() as f64).sqrt() / scale
}

/// Largest absolute difference (NaN when either side has a NaN the other lacks).
pub fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let mut worst = 0.0f64;
    for (&x, &y) in a.iter().zip(b) {
        if x.is_nan() && y.is_nan() {
            continue;
        }
        let d = (x as f64 - y as f64).abs();
        if d.is_nan() {
            return f64::NAN;
        }
        worst = worst.max(d);
    }
    worst
}

/// Number of elements that differ.
pub fn count_different(a: &[f32], b: &[f32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count() + a.len().abs_diff(b.len())
}

/// A narrower float format a tensor may have been rounded through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Narrow {
    F16,
    BF16,
}

impl Narrow {
    pub fn name(self) -> &'static str {
        match self {
            Narrow::F16 => "float16",
            Narrow::BF16 => "bfloat16",
        }
    }

    /// Round-to-nearest-even through the format and back.
    pub fn round(self, v: f32) -> f32 {
        match self {
            Narrow::F16 => f16::from_f32(v).to_f32(),
            Narrow::BF16 => bf16::from_f32(v).to_f32(),
        }
    }

    /// The format's ulp at `v` (spacing of representable values around |v|).
    pub fn ulp(self, v: f32) -> f64 {
        let mantissa_bits = match self {
            Narrow::F16 => 10,
            Narrow::BF16 => 7,
        };
        let min_exp = match self {
            Narrow::F16 => -14,
            Narrow::BF16 => -126,
        };
        let a = (v as f64).abs();
        let e = if a == 0.0 { min_exp } else { (a.log2().floor() as i32).max(min_exp) };
        2f64.powi(e - mantissa_bits)
    }
}

/// How one array relates to another through a round trip in a narrower format.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundTrip {
    pub format: Narrow,
    /// Which side is the rounded one: `true` when `b == round(a)`, `false` when `a == round(b)`.
    pub b_is_rounded: bool,
    /// Largest difference in ulps of the narrow format (at most 0.5 for a round trip).
    pub max_ulps: f64,
    /// Elements that differ.
    pub changed: usize,
}

/// Detects `b == round_to(a)` or `a == round_to(b)` for float16 then bfloat16, with at least one
/// element changed (equal arrays are no round trip).
pub fn narrow_round_trip(a: &[f32], b: &[f32]) -> Option<RoundTrip> {
    if a.len() != b.len() || bit_equal(a, b) {
        return None;
    }
    for format in [Narrow::F16, Narrow::BF16] {
        for b_is_rounded in [true, false] {
            let (full, rounded) = if b_is_rounded { (a, b) } else { (b, a) };
            if full.iter().zip(rounded).all(|(&f, &r)| format.round(f).to_bits() == r.to_bits()) {
                let max_ulps = full
                    .iter()
                    .zip(rounded)
                    .map(|(&f, &r)| (f as f64 - r as f64).abs() / format.ulp(r))
                    .fold(0.0, f64::max);
                return Some(RoundTrip { format, b_is_rounded, max_ulps, changed: count_different(a, b) });
            }
        }
    }
    None
}

/// Compact number formatting for evidence text: 4 significant digits.
pub fn fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        format!("{v}")
    } else if (1e-3..1e4).contains(&v.abs()) {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trip_is_recognised() {
        let a: Vec<f32> = (0..100).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
        let b: Vec<f32> = a.iter().map(|&v| Narrow::F16.round(v)).collect();
        let rt = narrow_round_trip(&a, &b).unwrap();
        assert_eq!(rt.format, Narrow::F16);
        assert!(rt.b_is_rounded);
        assert!(rt.max_ulps <= 0.5);
        assert!(narrow_round_trip(&b, &a).is_some_and(|r| !r.b_is_rounded));
        // A perturbation that is not a rounding is not mistaken for one.
        let c: Vec<f32> = a.iter().map(|&v| v * 1.001).collect();
        assert!(narrow_round_trip(&a, &c).is_none());
        assert!(narrow_round_trip(&a, &a).is_none());
    }

    #[test]
    fn rel_rms_basics() {
        assert_eq!(rel_rms(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((rel_rms(&[1.1, 2.2], &[1.0, 2.0]) - 0.1).abs() < 1e-6);
        assert_eq!(rel_rms(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }
}
