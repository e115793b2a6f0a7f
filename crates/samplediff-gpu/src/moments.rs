//! The main pass's result, assembled in f64 from the tiles' partials.
//!
//! Definitions are those of samplediff-metrics' `Moments` (the CPU kernel): value metrics over
//! the pairs where both sides are finite, `close` as torch.isclose with equal_nan, the
//! relative error |a-b|/|b| over finite pairs with b != 0. Within a tile the GPU adds in f32
//! (a tree over 256 invocations of 64 elements each); across tiles the host adds in f64, in
//! tile order, so the result is the same on every run and every GPU of the same driver.

use crate::plan::PARTIAL_BYTES;

/// Exact counts over all pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub numel: u64,
    /// Pairs where both sides are finite: the population of every value metric.
    pub finite: u64,
    pub nan_a: u64,
    pub nan_b: u64,
    pub inf_a: u64,
    pub inf_b: u64,
    /// NaN on exactly one side.
    pub nan_xor: u64,
    /// An Inf on either side where the two sides differ.
    pub inf_mismatch: u64,
    /// torch.isclose(a, b, rtol, atol, equal_nan=True).
    pub close: u64,
    /// Finite pairs with b == 0 (left out of the relative error).
    pub b_zero: u64,
    /// Pairs within f32 rounding of the tolerance that were decided in f32, on GPUs without
    /// f64 (always 0 with f64, where such pairs are decided exactly).
    pub close_undecided: u64,
}

/// Every count, extreme and sum of the main pass (the `Moments` of samplediff-metrics less the
/// floored relative error, whose floor needs the finished RMS of b).
#[derive(Clone, Copy, Debug)]
pub struct GpuMoments {
    pub c: Counts,
    pub sum_ad: f64,
    pub sum_ad2: f64,
    /// Largest |a-b| over finite pairs, computed in f64 from the pair that gave it (-inf when
    /// there is none).
    pub max_ad: f64,
    /// Smallest non-zero |a-b| (+inf when there is none).
    pub min_nonzero_ad: f64,
    pub sum_rel: f64,
    /// Largest |a-b|/|b| (-inf when there is none).
    pub max_rel: f64,
    pub sum_a: f64,
    pub sum_b: f64,
    pub sum_a2: f64,
    pub sum_b2: f64,
    pub sum_ab: f64,
    /// Means and centred (co-)moments over the finite pairs.
    pub mean_a: f64,
    pub mean_b: f64,
    pub m2a: f64,
    pub m2b: f64,
    pub cab: f64,
}

impl Default for GpuMoments {
    fn default() -> Self {
        Self {
            c: Counts::default(),
            sum_ad: 0.0,
            sum_ad2: 0.0,
            max_ad: f64::NEG_INFINITY,
            min_nonzero_ad: f64::INFINITY,
            sum_rel: 0.0,
            max_rel: f64::NEG_INFINITY,
            sum_a: 0.0,
            sum_b: 0.0,
            sum_a2: 0.0,
            sum_b2: 0.0,
            sum_ab: 0.0,
            mean_a: 0.0,
            mean_b: 0.0,
            m2a: 0.0,
            m2b: 0.0,
            cab: 0.0,
        }
    }
}

/// One tile's partial as the shader writes it (see `store` and `main` in the shader), read
/// in place from the mapped buffer.
struct Partial<'a>(&'a [u8]);

impl Partial<'_> {
    fn word(&self, i: usize) -> u32 {
        u32::from_le_bytes(self.0[4 * i..4 * i + 4].try_into().expect("4 bytes"))
    }

    fn f(&self, i: usize) -> f64 {
        f32::from_bits(self.word(i)) as f64
    }

    /// (low, high) halves of packed count word `i`.
    fn pair(&self, i: usize) -> (u64, u64) {
        let w = self.word(i);
        ((w & 0xffff) as u64, (w >> 16) as u64)
    }
}

impl GpuMoments {
    /// Fold the partials (`PARTIAL_BYTES` little-endian bytes per tile, in tile order) of a
    /// tensor of `numel` elements.
    pub(crate) fn from_partials(bytes: &[u8], numel: u64) -> Self {
        let mut m = GpuMoments::default();
        m.c.numel = numel;
        for p in bytes.chunks_exact(PARTIAL_BYTES as usize).map(Partial) {
            m.add_tile(&p);
        }
        m
    }

    fn add_tile(&mut self, p: &Partial) {
        let c = &mut self.c;
        let (finite, close) = p.pair(0);
        let (nan_a, nan_b) = p.pair(1);
        let (inf_a, inf_b) = p.pair(2);
        let (nan_xor, inf_mismatch) = p.pair(3);
        let (b_zero, undecided) = p.pair(4);
        c.finite += finite;
        c.close += close;
        (c.nan_a, c.nan_b, c.inf_a, c.inf_b) = (c.nan_a + nan_a, c.nan_b + nan_b, c.inf_a + inf_a, c.inf_b + inf_b);
        c.nan_xor += nan_xor;
        c.inf_mismatch += inf_mismatch;
        c.b_zero += b_zero;
        c.close_undecided += undecided;
        if finite == 0 {
            return;
        }
        let n = finite as f64;
        self.sum_ad += p.f(5);
        self.sum_ad2 += p.f(6);
        self.sum_rel += p.f(7);

        // The extremes, recomputed in f64 from the pairs the GPU kept.
        let exact = |i: usize| (p.f(i) - p.f(i + 1)).abs();
        self.max_ad = self.max_ad.max(exact(14));
        let (ma, mb) = (p.f(17), p.f(18));
        if ma != mb {
            self.min_nonzero_ad = self.min_nonzero_ad.min((ma - mb).abs());
        }
        if p.f(19) >= 0.0 {
            let (ra, rb) = (p.f(20), p.f(21));
            self.max_rel = self.max_rel.max((ra - rb).abs() / rb.abs());
        }

        // Sums about the tile's shift (ka, kb): un-shifted for the raw sums, and turned into
        // the tile's centred moments, merged with Chan et al.'s pairwise update.
        let (sa, sb, saa, sbb, sab) = (p.f(8), p.f(9), p.f(10), p.f(11), p.f(12));
        let (ka, kb) = (p.f(22), p.f(23));
        self.sum_a += sa + n * ka;
        self.sum_b += sb + n * kb;
        self.sum_a2 += saa + 2.0 * ka * sa + n * ka * ka;
        self.sum_b2 += sbb + 2.0 * kb * sb + n * kb * kb;
        self.sum_ab += sab + kb * sa + ka * sb + n * ka * kb;
        let tile = Centred {
            n,
            mean_a: ka + sa / n,
            mean_b: kb + sb / n,
            m2a: (saa - sa * sa / n).max(0.0),
            m2b: (sbb - sb * sb / n).max(0.0),
            cab: sab - sa * sb / n,
        };
        self.merge_centred(&tile);
    }

    /// Chan, Golub & LeVeque: fold a tile's centred moments into the running ones (whose
    /// population is `self.c.finite`, already counting the tile's, less the tile's `t.n`).
    fn merge_centred(&mut self, t: &Centred) {
        let n = self.c.finite as f64;
        let n1 = n - t.n;
        if n1 == 0.0 {
            (self.mean_a, self.mean_b, self.m2a, self.m2b, self.cab) = (t.mean_a, t.mean_b, t.m2a, t.m2b, t.cab);
            return;
        }
        let (da, db) = (t.mean_a - self.mean_a, t.mean_b - self.mean_b);
        let w = n1 * t.n / n;
        self.mean_a += da * (t.n / n);
        self.mean_b += db * (t.n / n);
        self.m2a += t.m2a + da * da * w;
        self.m2b += t.m2b + db * db * w;
        self.cab += t.cab + da * db * w;
    }

    /// Pairs that are not close: the report's `mismatched`.
    pub fn mismatched(&self) -> u64 {
        self.c.numel - self.c.close
    }

    fn per_finite(&self, sum: f64) -> Option<f64> {
        (self.c.finite > 0).then(|| sum / self.c.finite as f64)
    }

    pub fn max_abs(&self) -> Option<f64> {
        (self.c.finite > 0).then_some(self.max_ad)
    }

    pub fn mean_abs(&self) -> Option<f64> {
        self.per_finite(self.sum_ad)
    }

    pub fn rmse(&self) -> Option<f64> {
        self.per_finite(self.sum_ad2).map(f64::sqrt)
    }

    pub fn rms_a(&self) -> Option<f64> {
        self.per_finite(self.sum_a2).map(f64::sqrt)
    }

    pub fn rms_b(&self) -> Option<f64> {
        self.per_finite(self.sum_b2).map(f64::sqrt)
    }

    /// Largest relative error (finite pairs with b != 0).
    pub fn max_rel(&self) -> Option<f64> {
        (self.c.finite > self.c.b_zero).then_some(self.max_rel)
    }

    pub fn mean_rel(&self) -> Option<f64> {
        let n = self.c.finite - self.c.b_zero;
        (n > 0).then(|| self.sum_rel / n as f64)
    }

    pub fn cosine(&self) -> Option<f64> {
        ratio(self.sum_ab, (self.sum_a2 * self.sum_b2).sqrt())
    }

    pub fn pearson(&self) -> Option<f64> {
        ratio(self.cab, (self.m2a * self.m2b).sqrt())
    }

    pub fn snr_db(&self) -> Option<f64> {
        (self.sum_ad2 > 0.0 && self.sum_b2 > 0.0).then(|| 10.0 * (self.sum_b2 / self.sum_ad2).log10())
    }
}

/// A tile's centred moments.
struct Centred {
    n: f64,
    mean_a: f64,
    mean_b: f64,
    m2a: f64,
    m2b: f64,
    cab: f64,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0 && den.is_finite()).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PARTIAL_WORDS;

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// A partial as the shader would write it for the given finite pairs (one invocation).
    fn partial(pairs: &[(f32, f32)]) -> Vec<u32> {
        let (ka, kb) = pairs[0];
        let mut w = vec![0u32; PARTIAL_WORDS as usize];
        let mut f = [0f32; 17];
        f[8] = -1.0;
        f[11] = f32::MAX;
        f[14] = -1.0;
        let mut zeros = 0;
        for &(x, y) in pairs {
            let d = (x - y).abs();
            f[0] += d;
            f[1] += d * d;
            if y == 0.0 {
                zeros += 1;
            } else {
                f[2] += d / y.abs();
                if d / y.abs() > f[14] {
                    (f[14], f[15], f[16]) = (d / y.abs(), x, y);
                }
            }
            let (xa, yb) = (x - ka, y - kb);
            (f[3], f[4], f[5], f[6], f[7]) = (f[3] + xa, f[4] + yb, f[5] + xa * xa, f[6] + yb * yb, f[7] + xa * yb);
            if d > f[8] {
                (f[8], f[9], f[10]) = (d, x, y);
            }
            if x != y && d < f[11] {
                (f[11], f[12], f[13]) = (d, x, y);
            }
        }
        w[0] = pairs.len() as u32;
        w[4] = zeros;
        for (i, v) in f.iter().enumerate() {
            w[5 + i] = v.to_bits();
        }
        (w[22], w[23]) = (ka.to_bits(), kb.to_bits());
        w
    }

    #[test]
    fn tiles_fold_to_the_moments_of_the_whole() {
        let a: Vec<f32> = (0..40).map(|i| 100.0 + (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..40).map(|i| if i == 7 { 0.0 } else { 100.5 + (i as f32 * 0.41).cos() }).collect();
        let pairs: Vec<(f32, f32)> = a.iter().copied().zip(b.iter().copied()).collect();
        let mut words = partial(&pairs[..13]);
        words.extend(partial(&pairs[13..]));
        let m = GpuMoments::from_partials(&bytes(&words), 40);

        let (x, y): (Vec<f64>, Vec<f64>) = pairs.iter().map(|&(x, y)| (x as f64, y as f64)).unzip();
        let n = 40.0;
        let (ma, mb) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cab: f64 = x.iter().zip(&y).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let m2a: f64 = x.iter().map(|x| (x - ma) * (x - ma)).sum();
        let max_ad = x.iter().zip(&y).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let sum_ab: f64 = x.iter().zip(&y).map(|(x, y)| x * y).sum();

        assert_eq!((m.c.finite, m.c.b_zero, m.c.numel), (40, 1, 40));
        assert_eq!(m.max_ad, max_ad, "the maximum is recomputed exactly from its pair");
        let close = |u: f64, v: f64| (u - v).abs() <= 1e-5 * v.abs();
        assert!(close(m.mean_a, ma) && close(m.mean_b, mb));
        assert!(close(m.cab, cab) && close(m.m2a, m2a), "{} {cab} {} {m2a}", m.cab, m.m2a);
        assert!(close(m.sum_ab, sum_ab));
        assert!(m.mean_rel().is_some());
    }

    #[test]
    fn no_finite_pair_leaves_the_value_metrics_undefined() {
        let mut w = vec![0u32; PARTIAL_WORDS as usize];
        w[1] = 3 | (3 << 16);
        w[3] = 0;
        let m = GpuMoments::from_partials(&bytes(&w), 3);
        assert_eq!((m.c.nan_a, m.c.nan_b, m.c.finite), (3, 3, 0));
        assert_eq!((m.max_abs(), m.mean_abs(), m.pearson(), m.mismatched()), (None, None, None, 3));
    }
}
