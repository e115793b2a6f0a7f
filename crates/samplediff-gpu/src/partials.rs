//! The main pass's result: the tiles' partials folded, in f64, into samplediff-metrics'
//! `Moments`, the statistics the CPU kernel gives too, so both share one definition of every
//! metric (`Moments::fill` makes the report fields of either).
//!
//! Within a tile the GPU adds in f32 (a tree over 256 invocations of 64 elements each); across
//! tiles the host merges in f64 (`Moments::merge`, Chan et al.), in tile order, so the result
//! is the same on every run and every GPU of the same driver.

use samplediff_formats::DType;
use samplediff_metrics::{Counts, Moments, Tol};

use crate::pass::Tolerance;
use crate::plan::PARTIAL_BYTES;

/// What the main pass gives.
#[derive(Clone, Debug)]
pub struct MainPass {
    /// Every count, extreme and sum of the pass. The floored relative error is left empty: its
    /// floor needs the finished RMS of b.
    pub moments: Moments,
    /// Pairs within f32 rounding of the tolerance whose isclose was decided in f32, on GPUs
    /// without f64: `moments.c.close` may be off by up to this many (always 0 with f64, where
    /// such pairs are decided exactly).
    pub close_undecided: u64,
    /// Finite pairs with an input below 2^-100 in magnitude and not zero, left out of
    /// `moments` (a GPU may flush such inputs or their differences to zero): their element
    /// indices, ascending. [`MainPass::add_specials`] measures them on the host.
    pub specials: Vec<u64>,
}

impl MainPass {
    /// Fold the partials (`PARTIAL_BYTES` little-endian bytes per tile, in tile order) of a
    /// tensor of `numel` elements.
    pub(crate) fn from_partials(bytes: &[u8], numel: u64) -> Self {
        let mut pass = MainPass { moments: Moments::default(), close_undecided: 0, specials: Vec::new() };
        pass.moments.c.numel = numel;
        for p in bytes.chunks_exact(PARTIAL_BYTES as usize).map(Partial) {
            pass.moments.merge(&p.moments());
            pass.close_undecided += p.pair(4).1;
        }
        pass
    }

    /// Measure the pairs left to the host from the tensors' bytes (`a`, `b`: the whole tensors
    /// the pass read, little-endian `dtype`) and add them to `moments`.
    pub fn add_specials(&mut self, a: &[u8], b: &[u8], dtype: DType, tol: Tolerance) {
        if self.specials.is_empty() {
            return;
        }
        let size = dtype.size();
        let value = |bytes: &[u8], i: u64| dtype.decode(&bytes[i as usize * size..]);
        let x: Vec<f64> = self.specials.iter().map(|&i| value(a, i)).collect();
        let y: Vec<f64> = self.specials.iter().map(|&i| value(b, i)).collect();
        let mut m = Moments::of(&x, &y, Tol { rtol: tol.rtol, atol: tol.atol }, None);
        // (The tensor's element count is set already.)
        m.c.numel = 0;
        self.moments.merge(&m);
        self.specials.clear();
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

    /// The tile's statistics (its `numel` left at 0: the whole tensor's is known).
    fn moments(&self) -> Moments {
        let mut m = Moments::default();
        let (finite, close) = self.pair(0);
        let (nan_a, nan_b) = self.pair(1);
        let (inf_a, inf_b) = self.pair(2);
        let (nan_xor, inf_mismatch) = self.pair(3);
        let b_zero = self.pair(4).0;
        m.c = Counts { numel: 0, finite, nan_a, nan_b, inf_a, inf_b, nan_xor, inf_mismatch, close, b_zero };
        if finite == 0 {
            return m;
        }
        let n = finite as f64;
        (m.sum_ad, m.sum_ad2, m.sum_rel) = (self.f(5), self.f(6), self.f(7));

        // The extremes, recomputed in f64 from the pairs the GPU kept.
        m.max_ad = (self.f(14) - self.f(15)).abs();
        let (ma, mb) = (self.f(17), self.f(18));
        if ma != mb {
            m.min_nonzero_ad = (ma - mb).abs();
        }
        if self.f(19) >= 0.0 {
            let (ra, rb) = (self.f(20), self.f(21));
            m.max_rel = (ra - rb).abs() / rb.abs();
        }

        // Sums about the tile's shift (ka, kb): un-shifted for the raw sums, and turned into
        // the tile's centred moments.
        let (sa, sb, saa, sbb, sab) = (self.f(8), self.f(9), self.f(10), self.f(11), self.f(12));
        let (ka, kb) = (self.f(22), self.f(23));
        m.sum_a = sa + n * ka;
        m.sum_b = sb + n * kb;
        m.sum_a2 = saa + 2.0 * ka * sa + n * ka * ka;
        m.sum_b2 = sbb + 2.0 * kb * sb + n * kb * kb;
        m.sum_ab = sab + kb * sa + ka * sb + n * ka * kb;
        (m.mean_a, m.mean_b) = (ka + sa / n, kb + sb / n);
        m.m2a = (saa - sa * sa / n).max(0.0);
        m.m2b = (sbb - sb * sb / n).max(0.0);
        m.cab = sab - sa * sb / n;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PARTIAL_WORDS;
    use samplediff_metrics::{Status, TensorReport};

    /// The report fields the statistics give.
    fn report(m: &Moments) -> TensorReport {
        let mut r = TensorReport::unmatched(String::new(), Status::Compared);
        m.fill(&mut r, m.default_floor());
        r
    }

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
        let m = MainPass::from_partials(&bytes(&words), 40).moments;

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
        assert!(report(&m).mean_rel.is_some());
    }

    #[test]
    fn no_finite_pair_leaves_the_value_metrics_undefined() {
        let mut w = vec![0u32; PARTIAL_WORDS as usize];
        w[1] = 3 | (3 << 16);
        w[3] = 0;
        let m = MainPass::from_partials(&bytes(&w), 3).moments;
        assert_eq!((m.c.nan_a, m.c.nan_b, m.c.finite), (3, 3, 0));
        let r = report(&m);
        assert_eq!((r.max_abs, r.mean_abs, r.pearson, r.mismatched), (None, None, None, Some(3)));
    }
}
