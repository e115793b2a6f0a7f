//! Scalar, lane-exact emulation of PyTorch's `avx_mathfun.h` (`log256_ps`, `sincos256_ps`) as the
//! x86-64 wheels compile it.
//!
//! The header is written with separate `_mm256_mul_ps` / `_mm256_add_ps` intrinsics, but GCC
//! contracts many mul+add pairs into FMAs. Which pairs get fused changes last bits, so every
//! `mul_add` below marks a place where the compiled kernel has a fused multiply-add and every
//! plain `*`/`+` one where it does not (the pattern was checked bit-for-bit against torch, see
//! the spec §10.4 and this crate's golden tests). Constants are the header's decimal literals
//! rounded to `f32`, exactly as the C compiler rounds them.

// Constants transcribed digit for digit from `avx_mathfun.h`; each rounds to the intended f32 either way.
#![allow(clippy::excessive_precision)]

// log256_ps
const MIN_NORM_POS: f32 = f32::from_bits(0x0080_0000);
// The header's literal, kept as written (not `FRAC_1_SQRT_2`) so it reads like the source it mirrors.
#[allow(clippy::approx_constant)]
const SQRTHF: f32 = 0.707_106_781_186_547_524;
const LOG_P: [f32; 9] = [
    7.037_683_629_2E-2,
    -1.151_461_031_0E-1,
    1.167_699_874_0E-1,
    -1.242_014_084_6E-1,
    1.424_932_278_7E-1,
    -1.666_805_766_5E-1,
    2.000_071_476_5E-1,
    -2.499_999_399_3E-1,
    3.333_333_117_4E-1,
];
const LOG_Q1: f32 = -2.121_944_40e-4;
const LOG_Q2: f32 = 0.693_359_375;

// sincos256_ps
const FOPI: f32 = 1.273_239_544_735_16; // 4/pi
const MINUS_DP1: f32 = -0.785_156_25;
const MINUS_DP2: f32 = -2.418_756_484_985_351_562_5e-4;
const MINUS_DP3: f32 = -3.774_894_977_445_941_08e-8;
const SINCOF: [f32; 3] = [-1.951_529_589_1E-4, 8.332_160_873_6E-3, -1.666_665_461_1E-1];
const COSCOF: [f32; 3] = [2.443_315_711_809_948E-5, -1.388_731_625_493_765E-3, 4.166_664_568_298_827E-2];

const SIGN: u32 = 0x8000_0000;

/// Lane-wise `_mm256_and_ps(value, mask)`: the value where the mask is set, else `+0.0`.
#[inline]
fn select(mask: bool, value: f32) -> f32 {
    if mask { value } else { 0.0 }
}

/// Cephes natural log as `log256_ps` computes one lane. NaN for `x <= 0`.
pub fn log_ps(x: f32) -> f32 {
    let invalid = x <= 0.0;
    let x = if x > MIN_NORM_POS { x } else { MIN_NORM_POS }; // _mm256_max_ps(x, min_norm)
    let bits = x.to_bits();
    let exponent = (bits >> 23) as i32 - 0x7f;
    // Mantissa with the exponent of 0.5: a value in [0.5, 1).
    let mut x = f32::from_bits((bits & !0x7F80_0000) | 0.5f32.to_bits());
    let mut e = exponent as f32 + 1.0;

    let below = x < SQRTHF;
    let tmp = select(below, x);
    x -= 1.0;
    e -= select(below, 1.0);
    x += tmp;

    let z = x * x;
    let mut y = LOG_P[0];
    for &p in &LOG_P[1..] {
        y = y.mul_add(x, p);
    }
    y *= x;
    y = y.mul_add(z, e * LOG_Q1);
    y -= z * 0.5;
    x += y;
    x = e.mul_add(LOG_Q2, x);
    if invalid { f32::NAN } else { x }
}

/// Cephes sine and cosine as `sincos256_ps` computes one lane: `(sin x, cos x)`.
pub fn sincos_ps(x: f32) -> (f32, f32) {
    let mut sign_sin = x.to_bits() & SIGN;
    let mut x = x.abs();

    let j = (x * FOPI) as i32; // _mm256_cvttps_epi32 truncates
    let j = j.wrapping_add(1) & !1;
    let y = j as f32;
    let swap_sin = ((j & 4) as u32) << 29;
    let poly = (j & 2) == 0;

    // "Extended precision modular arithmetic": x - y*pi/4 in three pieces.
    x = y.mul_add(MINUS_DP1, x);
    x = y.mul_add(MINUS_DP2, x);
    x = y.mul_add(MINUS_DP3, x);

    let sign_cos = ((!j.wrapping_sub(2) & 4) as u32) << 29;
    sign_sin ^= swap_sin;

    let z = x * x;
    let mut yc = COSCOF[0];
    yc = yc.mul_add(z, COSCOF[1]);
    yc = yc.mul_add(z, COSCOF[2]);
    yc *= z;
    yc = yc.mul_add(z, -(z * 0.5));
    yc += 1.0;

    let mut ys = SINCOF[0];
    ys = ys.mul_add(z, SINCOF[1]);
    ys = ys.mul_add(z, SINCOF[2]);
    ys *= z;
    ys = ys.mul_add(x, x);

    // The header selects with and/andnot and then adds/subtracts the masked parts; the adds of
    // +0.0 are kept because they turn a -0.0 into +0.0 exactly as the vector code does.
    let ysin2 = select(poly, ys);
    let ysin1 = select(!poly, yc);
    let ys_rest = ys - ysin2;
    let yc_rest = yc - ysin1;
    let sin = ysin1 + ysin2;
    let cos = yc_rest + ys_rest;
    (f32::from_bits(sin.to_bits() ^ sign_sin), f32::from_bits(cos.to_bits() ^ sign_cos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_close_to_the_true_log_on_the_unit_interval() {
        let mut worst = 0.0f64;
        for i in 1..=(1 << 16) {
            let x = i as f32 / 65536.0;
            let exact = (x as f64).ln();
            // Relative to the result's magnitude (at least 1): the polynomial is good to ~1 ulp.
            worst = worst.max((log_ps(x) as f64 - exact).abs() / exact.abs().max(1.0));
        }
        assert!(worst < 1.5e-7, "worst scaled error {worst}");
        assert!(log_ps(0.0).is_nan() && log_ps(-1.0).is_nan());
        assert_eq!(log_ps(1.0), 0.0);
    }

    #[test]
    fn sincos_is_close_to_the_true_values_over_a_full_turn() {
        let mut worst = 0.0f64;
        for i in 0..(1 << 16) {
            let x = i as f32 / 65536.0 * std::f32::consts::TAU;
            let (s, c) = sincos_ps(x);
            worst = worst.max((s as f64 - (x as f64).sin()).abs()).max((c as f64 - (x as f64).cos()).abs());
        }
        assert!(worst < 2e-7, "worst abs error {worst}");
        let (s, c) = sincos_ps(-0.5);
        assert!((s as f64 - (-0.5f64).sin()).abs() < 1e-7 && (c as f64 - 0.5f64.cos()).abs() < 1e-7);
    }
}
