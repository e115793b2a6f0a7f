//! The beta distribution's quantile function, `scipy.stats.beta.ppf(p, a, b)`, in f64.
//!
//! ComfyUI's `beta` scheduler only uses `rint(ppf(p) · 999)`, so what matters is being exact to
//! well below 1e-9 away from the half-integers; this evaluates the regularized incomplete beta
//! function `I_x(a, b)` to ~1e-15 with its continued fraction (modified Lentz) and inverts it by
//! bisection down to adjacent doubles, which needs nothing but monotonicity. The one input where
//! the exact answer *is* a half-integer — `p = 0.5` with `a == b`, giving 0.5 · 999 = 499.5 — is
//! answered exactly by symmetry, as scipy (Boost's `ibeta_inv`) does.

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 607/128, 15 terms: ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 607.0 / 128.0;
    const COEFFS: [f64; 15] = [
        0.999_999_999_999_997_1,
        57.156_235_665_862_92,
        -59.597_960_355_475_49,
        14.136_097_974_741_746,
        -0.491_913_816_097_620_2,
        3.399_464_998_481_189e-5,
        4.652_362_892_704_858e-5,
        -9.837_447_530_487_956e-5,
        1.580_887_032_249_125e-4,
        -2.102_644_417_241_049e-4,
        2.174_396_181_152_126_4e-4,
        -1.643_181_065_367_639e-4,
        8.441_822_398_385_275e-5,
        -2.619_083_840_158_141e-5,
        3.689_918_265_953_162_4e-6,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFS[0];
    for (i, &c) in COEFFS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Continued fraction of `I_x(a, b)` (Numerical Recipes `betacf`, modified Lentz), valid and fast
/// for `x < (a+1)/(a+b+2)`.
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function `I_x(a, b)` (the beta CDF), `a, b > 0`.
pub fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (-x).ln_1p();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b
    }
}

/// `scipy.stats.beta.ppf(p, a, b)`: the `x` in [0, 1] with `I_x(a, b) = p`. NaN outside [0, 1].
pub fn beta_ppf(p: f64, a: f64, b: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || a.is_nan() || b.is_nan() || a <= 0.0 || b <= 0.0 {
        return f64::NAN;
    }
    if p == 0.0 {
        return 0.0;
    }
    if p == 1.0 {
        return 1.0;
    }
    if a == b && p == 0.5 {
        return 0.5;
    }
    // For p above one half solve the mirrored problem, which keeps the root where the CDF is
    // evaluated on its accurate branch and makes a == b exactly symmetric.
    if p > 0.5 {
        return 1.0 - beta_ppf_lower(1.0 - p, b, a);
    }
    beta_ppf_lower(p, a, b)
}

fn beta_ppf_lower(p: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    // Bisection until the bracket holds adjacent doubles (at most ~1100 halvings near 0; far
    // fewer in practice because the bracket shrinks geometrically in value, not in bits).
    for _ in 0..2000 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if beta_cdf(mid, a, b) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // The root lies in [lo, hi]; return the end whose CDF is nearer p.
    if (beta_cdf(lo, a, b) - p).abs() <= (beta_cdf(hi, a, b) - p).abs() { lo } else { hi }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-15);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-14);
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.6) + ln_gamma(0.4) - (std::f64::consts::PI / (0.6 * std::f64::consts::PI).sin()).ln()).abs() < 1e-14);
    }

    /// Closed forms: Beta(1, 1) is uniform; Beta(1/2, 1/2) is the arcsine law,
    /// `I_x = (2/π)·asin(√x)`, so `ppf(p) = sin²(πp/2)`; Beta(2, 1) has `I_x = x²`.
    #[test]
    fn matches_closed_forms() {
        for i in 1..100 {
            let p = i as f64 / 100.0;
            assert!((beta_ppf(p, 1.0, 1.0) - p).abs() < 1e-15);
            let arcsine = (std::f64::consts::FRAC_PI_2 * p).sin().powi(2);
            assert!((beta_ppf(p, 0.5, 0.5) - arcsine).abs() < 1e-14, "p={p}");
            assert!((beta_ppf(p, 2.0, 1.0) - p.sqrt()).abs() < 1e-14);
            assert!((beta_cdf(arcsine, 0.5, 0.5) - p).abs() < 1e-14);
        }
    }

    #[test]
    fn symmetric_median_is_exact_and_quantiles_are_symmetric() {
        assert_eq!(beta_ppf(0.5, 0.6, 0.6), 0.5);
        for i in 1..50 {
            let p = i as f64 / 100.0;
            assert!((beta_ppf(p, 0.6, 0.6) - (1.0 - beta_ppf(1.0 - p, 0.6, 0.6))).abs() < 1e-15);
        }
    }

    #[test]
    fn edges_and_bad_input() {
        assert_eq!(beta_ppf(0.0, 0.6, 0.6), 0.0);
        assert_eq!(beta_ppf(1.0, 0.6, 0.6), 1.0);
        assert!(beta_ppf(1.5, 0.6, 0.6).is_nan());
        assert!(beta_ppf(0.5, -1.0, 0.6).is_nan());
    }
}
