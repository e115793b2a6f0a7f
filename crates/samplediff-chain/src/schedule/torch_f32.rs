//! torch's float32 CPU `pow`, `exp` and `tan` as the karras, exponential and kl_optimal schedulers
//! meet them.
//!
//! * `tensor ** 7.0` (karras) runs `pow_tensor_scalar_optimized_kernel` through `cpu_kernel_vec`:
//!   whole chunks of two vectors go through SLEEF's `Sleef_powf16_u10` (AVX-512: chunks of 32
//!   floats), the remainder through the scalar lambda `std::pow(float, double)` — an f64 `pow`
//!   rounded to f32. Both are reproduced exactly here ([`pow_scalar`], [`sleef_powf`]); the chunk
//!   size is that of an AVX-512 CPU, which is what produced the project's golden data (an
//!   AVX2-only CPU splits at multiples of 16 instead). Result: karras is bit-exact.
//! * `tensor.exp()` / `tensor.tan_()` go through `at::vml`, which x86 wheels build on Intel MKL
//!   VML (`vmsExp`/`vmsTan`, high-accuracy mode). Those are not reproducible in portable code, so
//!   [`exp`] and [`tan`] return the **correctly rounded** result instead; MKL's HA results are
//!   within 1 ulp of it, which bounds the difference to torch at 1 ulp (exponential and
//!   kl_optimal are asserted against the golden data with exactly that tolerance).

/// One `std::pow(float, double)` of the scalar loop: f64 pow, rounded once.
pub fn pow_scalar(base: f32, exponent: f64) -> f32 {
    (base as f64).powf(exponent) as f32
}

/// float32 `tensor.exp()`, correctly rounded (within 1 ulp of torch/MKL).
pub fn exp(x: f32) -> f32 {
    (x as f64).exp() as f32
}

/// float32 `tensor.tan()`, correctly rounded (within 1 ulp of torch/MKL).
pub fn tan(x: f32) -> f32 {
    (x as f64).tan() as f32
}

/// Floats handled per vectorised step of `cpu_kernel_vec` on an AVX-512 CPU (2 × 16 lanes).
pub const AVX512_CHUNK: usize = 32;

/// `tensor ** exponent` over a contiguous float32 tensor, element by element as torch's
/// `cpu_kernel_vec` splits it (see the module docs).
pub fn pow_tensor_scalar(values: &[f32], exponent: f64) -> Vec<f32> {
    let vectorised = values.len() / AVX512_CHUNK * AVX512_CHUNK;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| if i < vectorised { sleef_powf(v, exponent as f32) } else { pow_scalar(v, exponent) })
        .collect()
}

/// A float pair `hi + lo` (SLEEF's `vfloat2`) for double-float arithmetic.
#[derive(Clone, Copy)]
struct Df(f32, f32);

fn fmapn(x: f32, y: f32, z: f32) -> f32 {
    x.mul_add(y, -z)
}

fn fmanp(x: f32, y: f32, z: f32) -> f32 {
    (-x).mul_add(y, z)
}

// SLEEF's df.h helpers (the ENABLE_FMA_SP variants, as built for AVX2/AVX-512).
fn dfadd2_f_f(x: f32, y: f32) -> Df {
    let s = x + y;
    let v = s - x;
    Df(s, (x - (s - v)) + (y - v))
}

fn dfadd2_df_f(x: Df, y: f32) -> Df {
    let s = x.0 + y;
    let v = s - x.0;
    let t = (x.0 - (s - v)) + (y - v);
    Df(s, t + x.1)
}

fn dfadd2_df_df(x: Df, y: Df) -> Df {
    let s = x.0 + y.0;
    let v = s - x.0;
    let t = (x.0 - (s - v)) + (y.0 - v);
    Df(s, t + (x.1 + y.1))
}

fn dfadd_df_df(x: Df, y: Df) -> Df {
    let s = x.0 + y.0;
    Df(s, (((x.0 - s) + y.0) + x.1) + y.1)
}

fn dfadd_f_df(x: f32, y: Df) -> Df {
    let s = x + y.0;
    Df(s, ((x - s) + y.0) + y.1)
}

fn dfdiv(n: Df, d: Df) -> Df {
    let t = 1.0 / d.0;
    let s = n.0 * t;
    let u = fmapn(t, n.0, s);
    let v = fmanp(d.1, t, fmanp(d.0, t, 1.0));
    Df(s, s.mul_add(v, n.1.mul_add(t, u)))
}

fn dfsqu(x: Df) -> Df {
    let s = x.0 * x.0;
    Df(s, (x.0 + x.0).mul_add(x.1, fmapn(x.0, x.0, s)))
}

fn dfmul_df_f(x: Df, y: f32) -> Df {
    let s = x.0 * y;
    Df(s, x.1.mul_add(y, fmapn(x.0, y, s)))
}

fn dfmul_df_df(x: Df, y: Df) -> Df {
    let s = x.0 * y.0;
    Df(s, x.0.mul_add(y.1, x.1.mul_add(y.0, fmapn(x.0, y.0, s))))
}

fn dfscale(d: Df, s: f32) -> Df {
    Df(d.0 * s, d.1 * s)
}

fn dfnormalize(t: Df) -> Df {
    let s = t.0 + t.1;
    Df(s, (t.0 - s) + t.1)
}

/// SLEEF `logkf`: ln d as a double-float, for normal positive d.
// SLEEF's constants, transcribed digit for digit; each literal rounds to the intended f32 either way.
#[allow(clippy::excessive_precision)]
fn logkf(d: f32) -> Df {
    let e = (((d * (1.0 / 0.75)).to_bits() >> 23) & 0xff) as i32 - 0x7f; // vilogb2k
    let m = f32::from_bits((d.to_bits() as i32).wrapping_add((-e) << 23) as u32); // vldexp3
    let x = dfdiv(dfadd2_f_f(-1.0, m), dfadd2_f_f(1.0, m));
    let x2 = dfsqu(x);
    let mut t = 0.240_320_354_700_088_500_976_562_f32;
    t = t.mul_add(x2.0, 0.285_112_679_004_669_189_453_125);
    t = t.mul_add(x2.0, 0.400_007_992_982_864_379_882_812);
    let c = Df(0.666_666_626_930_236_816_406_25, 3.691_838_612_596_143_320_843_11e-9);
    let mut s = dfmul_df_f(Df(0.693_147_182_464_599_609_38, -1.904_654_323_148_236_017e-9), e as f32);
    s = dfadd_df_df(s, dfscale(x, 2.0));
    dfadd_df_df(s, dfmul_df_df(dfmul_df_df(x2, x), dfadd2_df_df(dfmul_df_f(x2, t), c)))
}

/// SLEEF `expkf`: e^d for a double-float d, rounded to f32.
// SLEEF's constants, transcribed digit for digit; each literal rounds to the intended f32 either way.
#[allow(clippy::excessive_precision)]
fn expkf(d: Df) -> f32 {
    #[allow(clippy::approx_constant)] // SLEEF's literal, as written
    const R_LN2: f32 = 1.442_695_040_888_963_407_359_924_681_001_892_137;
    const L2U: f32 = 0.693_145_751_953_125;
    const L2L: f32 = 1.428_606_765_330_187_045e-6;
    let q = ((d.0 + d.1) * R_LN2).round_ties_even() as i32; // vrint_vi2_vf
    let mut s = dfadd2_df_f(d, q as f32 * -L2U);
    s = dfadd2_df_f(s, q as f32 * -L2L);
    s = dfnormalize(s);
    let mut u = 0.001_363_246_468_827_128_410_339_36_f32;
    u = u.mul_add(s.0, 0.008_365_969_173_610_210_418_701_17);
    u = u.mul_add(s.0, 0.041_671_082_377_433_776_855_468_8);
    u = u.mul_add(s.0, 0.166_665_524_244_308_471_679_688);
    u = u.mul_add(s.0, 0.499_999_850_988_388_061_523_438);
    let t = dfadd_df_df(s, dfmul_df_f(dfsqu(s), u));
    let t = dfadd_f_df(1.0, t);
    let u = t.0 + t.1;
    if d.0 < -104.0 {
        return 0.0;
    }
    // vldexp: exact scaling by 2^q (split in two so that 2^q itself never overflows).
    let half = q / 2;
    u * 2f32.powi(half) * 2f32.powi(q - half)
}

/// SLEEF `xpowf` (1.0-ulp pow) for a positive finite base, as `Sleef_powf16_u10` computes each lane.
pub fn sleef_powf(x: f32, y: f32) -> f32 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if x.is_nan() || y.is_nan() {
        return f32::NAN;
    }
    if x <= 0.0 || x.is_infinite() || y.is_infinite() || x < f32::MIN_POSITIVE {
        // Outside what schedules produce: fall back to the scalar definition.
        return pow_scalar(x, y as f64);
    }
    let r = expkf(dfmul_df_f(logkf(x), y));
    if r.is_nan() { f32::INFINITY } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleef_powf_is_within_one_ulp_of_the_true_power() {
        for i in 1..5000 {
            let x = i as f32 / 5000.0;
            for y in [7.0f32, 0.5, 3.3, -2.5] {
                let got = sleef_powf(x, y);
                let exact = (x as f64).powf(y as f64);
                let ulp = (exact as f32).to_bits().abs_diff(got.to_bits());
                assert!(ulp <= 1, "{x}^{y}: {got} vs {exact}");
            }
        }
    }

    #[test]
    fn pow_tensor_scalar_splits_at_whole_chunks() {
        let v: Vec<f32> = (0..40).map(|i| 0.5 + i as f32 / 100.0).collect();
        let got = pow_tensor_scalar(&v, 7.0);
        for i in 0..32 {
            assert_eq!(got[i], sleef_powf(v[i], 7.0));
        }
        for i in 32..40 {
            assert_eq!(got[i], pow_scalar(v[i], 7.0));
        }
    }
}
