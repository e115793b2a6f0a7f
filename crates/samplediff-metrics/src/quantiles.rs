//! Percentiles and the decade histogram of |a-b|, both from the one sort of the errors that
//! also gives the worst elements.

use burn::tensor::Tensor;

use std::sync::OnceLock;

use crate::Result;
use crate::device_ops::{indices, read_counts, read_floats};
use crate::report::{Histogram, HistogramBin, Percentiles};

/// The quantiles reported, as fractions (p50, p90, p99, p99.9).
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// At most this many decades in the histogram; smaller non-zero errors fall in the first bin.
pub const MAX_DECADES: i32 = 40;

/// Percentiles and histogram of `sorted`: the errors (non-negative, finite, at least one) in
/// descending order, as the caller's single sort leaves them.
pub fn error_distribution(sorted: Tensor<1>) -> Result<(Percentiles, Histogram)> {
    let n = sorted.dims()[0];
    let device = sorted.device();
    // Ascending rank i sits at position n-1-i.
    let at = |i: usize| (n - 1 - i) as i64;

    let positions = quantile_positions(n as u64);
    let mut idx: Vec<i64> = positions.iter().flat_map(|&(lo, hi, _)| [at(lo as usize), at(hi as usize)]).collect();
    idx.push(at(n - 1));
    let picked = sorted.clone().select(0, indices(idx, &device));
    let zero_count = sorted.clone().equal_elem(0.0).int().sum();
    let (vals, zero) = (read_floats(vec![picked])?, read_counts(vec![zero_count])?[0]);
    let percentiles = percentiles(&positions, &vals);

    let max = vals[vals.len() - 1];
    let min_nonzero = if zero as usize == n {
        0.0
    } else {
        read_floats(vec![sorted.clone().select(0, indices(vec![at(zero as usize)], &device))])?[0]
    };
    let histogram = decade_histogram(n as u64, zero, min_nonzero, max, |edges| {
        if edges.is_empty() {
            return Ok(vec![]);
        }
        read_counts(edges.iter().map(|&k| sorted.clone().lower_elem(pow10(k)).int().sum()).collect())
    })?;
    Ok((percentiles, histogram))
}

/// For n sorted values, each quantile's two neighbouring ascending ranks and the weight of the
/// upper one (numpy 'linear': virtual index (n-1)q, neighbours floor and floor+1, clipped).
pub fn quantile_positions(n: u64) -> Vec<(u64, u64, f64)> {
    QUANTILES
        .iter()
        .map(|&q| {
            let v = (n - 1) as f64 * q;
            let lo = v.floor();
            ((lo as u64).min(n - 1), (lo as u64 + 1).min(n - 1), v - lo)
        })
        .collect()
}

/// The percentiles from the values at [`quantile_positions`] (lo, hi, lo, hi, ...).
pub fn percentiles(positions: &[(u64, u64, f64)], values: &[f64]) -> Percentiles {
    let q: Vec<f64> =
        positions.iter().enumerate().map(|(i, &(_, _, t))| lerp(values[2 * i], values[2 * i + 1], t)).collect();
    Percentiles { p50: q[0], p90: q[1], p99: q[2], p999: q[3] }
}

/// numpy's `_lerp`: a + (b-a)t, computed from the far end when t >= 0.5 (exact at t = 1).
pub fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 { b - d * (1.0 - t) } else { a + d * t }
}

/// 10^k as the nearest f64 (the same number as the literal `1e{k}`).
pub fn pow10(k: i32) -> f64 {
    format!("1e{k}").parse().expect("valid literal")
}

/// Decades of positive f64: 10^-324 (which rounds to 0) up to 10^309 (infinity).
pub(crate) const MIN_K: i32 = -324;
pub(crate) const MAX_K: i32 = 309;

/// 10^k for k in MIN_K..=MAX_K, ascending ([`pow10`]'s numbers, computed once).
fn powers() -> &'static [f64] {
    static POWERS: OnceLock<Vec<f64>> = OnceLock::new();
    POWERS.get_or_init(|| (MIN_K..=MAX_K).map(pow10).collect())
}

/// The k with 10^k <= x < 10^(k+1), for finite x > 0 (a search of the powers of ten: the
/// fused kernel asks it for every error outside its decade edges); 308 for +inf, the top
/// decade (its upper edge, 10^309, is itself infinite as an f64): f64 inputs near the largest
/// float with opposite signs differ by an error that overflows, and it is counted there.
pub fn decade(x: f64) -> i32 {
    if x == f64::INFINITY {
        return MAX_K - 1;
    }
    MIN_K + powers().partition_point(|&p| p <= x) as i32 - 1
}

/// The decade histogram of `n` errors: `zero` of them exactly 0, the rest between
/// `min_nonzero` and `max`; `count_below(ks)` counts the errors below each 10^k.
pub fn decade_histogram(
    n: u64,
    zero: u64,
    min_nonzero: f64,
    max: f64,
    count_below: impl FnOnce(&[i32]) -> Result<Vec<u64>>,
) -> Result<Histogram> {
    if zero == n {
        return Ok(Histogram { zero, bins: vec![] });
    }
    let hi_k = decade(max);
    let lo_k = decade(min_nonzero).max(hi_k - MAX_DECADES + 1);
    // Count of errors below each inner edge 10^(lo_k+1) .. 10^hi_k; the outer edges are known.
    let inner: Vec<i32> = (lo_k + 1..=hi_k).collect();
    let mut edges_below = vec![zero];
    edges_below.extend(count_below(&inner)?);
    edges_below.push(n);
    let bins = (lo_k..=hi_k)
        .enumerate()
        .map(|(i, k)| HistogramBin { lo: pow10(k), hi: pow10(k + 1), count: edges_below[i + 1] - edges_below[i] })
        .collect();
    Ok(Histogram { zero, bins })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_are_exact_at_powers_of_ten() {
        assert_eq!(decade(1e-3), -3);
        assert_eq!(decade(9.999e-4), -4);
        assert_eq!(decade(1.0), 0);
        assert_eq!(decade(5.94), 0);
        assert_eq!(decade(1e300), 300);
        assert_eq!(decade(f64::MIN_POSITIVE), -308);
        assert_eq!((decade(f64::MAX), decade(f64::INFINITY)), (308, 308));
        assert_eq!(decade(f64::from_bits(1)), -324);
    }

    #[test]
    fn decades_hold_their_value_at_and_around_every_power() {
        let mut xs = vec![f64::from_bits(1), f64::MIN_POSITIVE, f64::MAX, 5.94, 1.09];
        for k in MIN_K..MAX_K {
            let p = pow10(k);
            if p > 0.0 && p.is_finite() {
                xs.extend([p, p.next_up(), p.next_down(), p * 3.0]);
            }
        }
        for x in xs.into_iter().filter(|x| *x > 0.0 && x.is_finite()) {
            let k = decade(x);
            assert!(pow10(k) <= x && x < pow10(k + 1), "{x:e} in decade {k}");
        }
    }

    #[test]
    fn lerp_matches_numpy_end_points() {
        assert_eq!(lerp(1.0, 3.0, 0.0), 1.0);
        assert_eq!(lerp(1.0, 3.0, 1.0), 3.0);
        assert_eq!(lerp(1.0, 3.0, 0.25), 1.5);
    }
}
