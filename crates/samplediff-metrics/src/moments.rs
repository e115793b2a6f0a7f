//! Sufficient statistics of a set of element pairs, and the report fields they give.
//!
//! Both paths fill the report through here: the device path builds [`Moments`] from its
//! reductions, the fused host path from runs of decoded elements.
//!
//! A run is at most one decode block (kept in L1), so its statistics take two sweeps over the
//! block (sums, then moments about the block's own means) but one read of memory. Runs merge
//! with Chan et al.'s pairwise update, so centred second moments never suffer the cancellation
//! of `sum(a^2) - n mean^2`. Every merge happens in element order, which is what makes the
//! result independent of the number of threads.

use crate::lanes::Op::{Add, Max, Min};
use crate::lanes::{BASELINE_WIDTH, F, LANES, fold, lanes, ops};
use crate::report::{ChannelStats, FrameStats, TensorReport};

/// torch.isclose's tolerances: close when |a-b| <= atol + rtol |b|.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub rtol: f64,
    pub atol: f64,
}

/// Integer counts (exact, so their merge order does not matter).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub numel: u64,
    /// Both sides finite: the population of every value metric.
    pub finite: u64,
    pub nan_a: u64,
    pub nan_b: u64,
    pub inf_a: u64,
    pub inf_b: u64,
    pub nan_xor: u64,
    pub inf_mismatch: u64,
    pub close: u64,
    /// Finite pairs with b == 0 (left out of the plain relative error).
    pub b_zero: u64,
}

/// Everything the report needs from a set of pairs except order statistics.
#[derive(Clone, Copy, Debug)]
pub struct Moments {
    pub c: Counts,
    pub sum_ad: f64,
    pub sum_ad2: f64,
    /// Largest |a-b| over finite pairs (-inf when there is none).
    pub max_ad: f64,
    /// Smallest non-zero |a-b| (+inf when there is none): the histogram's first decade.
    pub min_nonzero_ad: f64,
    pub sum_rel: f64,
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
    /// |a-b| / max(|b|, floor) summed and maximised, when the floor is known.
    pub floored: Floored,
}

/// The floored relative error's sums (over pairs with max(|b|, floor) > 0).
#[derive(Clone, Copy, Debug)]
pub struct Floored {
    pub n: u64,
    pub sum: f64,
    pub max: f64,
}

/// The floors the main pass is ready for: [`Band::lo`, `Band::hi`) (see `fused::predict`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Band {
    pub lo: f64,
    pub hi: f64,
}

/// One all-finite block's floored-error sums for every floor in a [`Band`]: pairs with |b| at
/// or above the band (`hi`: their floored error is the relative error) and below it (`lo`:
/// |a-b|, divided by the floor at the end).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BandBlock {
    pub n_hi: u64,
    pub n_lo: u64,
    pub sum_hi: f64,
    pub max_hi: f64,
    pub sum_lo: f64,
    pub max_lo: f64,
}

impl Default for Floored {
    fn default() -> Self {
        Self { n: 0, sum: 0.0, max: f64::NEG_INFINITY }
    }
}

impl Default for Moments {
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
            floored: Floored::default(),
        }
    }
}

/// |a-b| of a pair when both are finite (the value metrics' population), else `None`.
#[inline(always)]
pub(crate) fn abs_diff(x: f64, y: f64) -> Option<f64> {
    (x.is_finite() && y.is_finite()).then(|| (x - y).abs())
}

/// Are all values of the block finite? (No early exit: the loop vectorises, and almost every
/// block is finite, so the answer is nearly always found only at the end anyway.)
#[inline(always)]
pub(crate) fn all_finite(a: &[f64], b: &[f64]) -> bool {
    a.iter().chain(b).fold(true, |ok, v| ok & v.is_finite())
}

impl Moments {
    /// The statistics of one run (`a`, `b` decoded, equal lengths). `floor`: the floored
    /// relative error's floor when already known. (Also how a GPU pass's host share, the few
    /// pairs it leaves, is measured.)
    pub fn of(a: &[f64], b: &[f64], tol: Tol, floor: Option<f64>) -> Self {
        Self::of_block::<BASELINE_WIDTH>(a, b, tol, floor, all_finite(a, b))
    }

    /// The statistics of one run, when the caller knows whether it is all finite
    /// ([`all_finite`]); `W`: the lanes computed at a time ([`lanes`]).
    #[inline(always)]
    pub(crate) fn of_block<const W: usize>(a: &[f64], b: &[f64], tol: Tol, floor: Option<f64>, finite: bool) -> Self {
        if finite {
            let mut m = Self::of_finite::<W>(a, b, tol, floor);
            m.centre::<W, true>(a, b);
            return m;
        }
        let mut m = match floor {
            Some(floor) => Self::of_lanes::<true>(a, b, tol, floor),
            None => Self::of_lanes::<false>(a, b, tol, 0.0),
        };
        m.centre::<W, false>(a, b);
        m
    }

    /// The first sweep of an all-finite block: the errors' sums and extremes and the values'
    /// (co-)sums.
    #[inline(always)]
    fn finite_sums<const W: usize>(a: &[f64], b: &[f64]) -> Self {
        let n = a.len();
        let mut m = Moments::default();
        m.c.numel = n as u64;
        m.c.finite = n as u64;
        let [sum_ad, sum_ad2, max_ad, min_nz, sa, sb, sa2, sb2, sab] =
            lanes::<W, _, { ops([Add, Add, Max, Min, Add, Add, Add, Add, Add]) }>(
                a,
                b,
                #[inline(always)]
                |x: F<W>, y: F<W>| {
                    let d = (x - y).abs();
                    let nonzero = d.gt(F::splat(0.0)).select(d, F::splat(f64::INFINITY));
                    [d, d * d, d, nonzero, x, y, x * x, y * y, x * y]
                },
            );
        (m.sum_ad, m.sum_ad2, m.max_ad, m.min_nonzero_ad) = (sum_ad, sum_ad2, max_ad, min_nz);
        (m.sum_a, m.sum_b, m.sum_a2, m.sum_b2, m.sum_ab) = (sa, sb, sa2, sb2, sab);
        m
    }

    /// [`Moments::of`] for a block without NaN or Inf (almost every block): no masks, and two
    /// short sweeps over the block (in L1) instead of one long one, so each sweep's
    /// accumulators stay in registers. Same lanes as [`Moments::of_lanes`], same sums.
    #[inline(always)]
    fn of_finite<const W: usize>(a: &[f64], b: &[f64], tol: Tol, floor: Option<f64>) -> Self {
        let mut m = Self::finite_sums::<W>(a, b);
        let [sum_rel, max_rel, close, b_zero] = lanes::<W, _, { ops([Add, Max, Add, Add]) }>(
            a,
            b,
            #[inline(always)]
            |x: F<W>, y: F<W>| {
                let p = PairTerms::of(x, y, tol);
                [p.rel, p.rel, p.close, p.b_zero]
            },
        );
        (m.sum_rel, m.max_rel) = (sum_rel, max_rel);
        // Counts summed as f64 are exact (below 2^53 per block).
        (m.c.close, m.c.b_zero) = (close as u64, b_zero as u64);
        if let Some(floor) = floor {
            m.floored = Floored::of(a, b, floor);
        }
        m
    }

    /// [`Moments::of_block`] of an all-finite block together with the [`BandBlock`] of `band`:
    /// the band's sums share the relative error's division and sweep (one division and one
    /// sweep per pair fewer than computing them apart; same lanes, same bits).
    #[inline(always)]
    pub(crate) fn of_finite_in_band<const W: usize>(a: &[f64], b: &[f64], tol: Tol, band: Band) -> (Self, BandBlock) {
        let mut m = Self::finite_sums::<W>(a, b);
        let [sum_rel, max_rel, close, b_zero, sum_hi, max_hi, sum_lo, max_lo, n_hi, n_lo] =
            lanes::<W, _, { ops([Add, Max, Add, Add, Add, Max, Add, Max, Add, Add]) }>(
                a,
                b,
                #[inline(always)]
                |x: F<W>, y: F<W>| {
                    let PairTerms { d, ay, rel, close, b_zero } = PairTerms::of(x, y, tol);
                    let (zero, ninf) = (F::splat(0.0), F::splat(f64::NEG_INFINITY));
                    // Above the band every floor divides by |b| (> 0): the floored error is `rel`.
                    let (hi, lo) = (ay.ge(F::splat(band.hi)), ay.lt(F::splat(band.lo)));
                    [
                        rel,
                        rel,
                        close,
                        b_zero,
                        hi.select(rel, zero),
                        hi.select(rel, ninf),
                        lo.select(d, zero),
                        lo.select(d, ninf),
                        hi.one(),
                        lo.one(),
                    ]
                },
            );
        (m.sum_rel, m.max_rel) = (sum_rel, max_rel);
        (m.c.close, m.c.b_zero) = (close as u64, b_zero as u64);
        m.centre::<W, true>(a, b);
        let block = BandBlock { n_hi: n_hi as u64, n_lo: n_lo as u64, sum_hi, max_hi, sum_lo, max_lo };
        (m, block)
    }

    /// [`Moments::of`] with LANES independent accumulators, element i in lane i % LANES:
    /// branch-free and without the serial dependency of one running sum, so the compiler can
    /// keep it in vector registers. Lanes combine in a fixed order (deterministic).
    #[inline(always)]
    fn of_lanes<const FLOOR: bool>(a: &[f64], b: &[f64], tol: Tol, floor: f64) -> Self {
        let mut acc = Lanes::default();
        let whole = a.len() / LANES * LANES;
        for (ca, cb) in a[..whole].chunks_exact(LANES).zip(b[..whole].chunks_exact(LANES)) {
            for l in 0..LANES {
                acc.add::<FLOOR>(l, ca[l], cb[l], tol, floor);
            }
        }
        for (l, (&x, &y)) in a[whole..].iter().zip(&b[whole..]).enumerate() {
            acc.add::<FLOOR>(l, x, y, tol, floor);
        }
        acc.fold(a.len() as u64)
    }

    /// Moments about the block's own means: a second sweep over the block (in cache).
    /// `FINITE`: the block has no NaN or Inf, so no pair needs masking.
    #[inline(always)]
    fn centre<const W: usize, const FINITE: bool>(&mut self, a: &[f64], b: &[f64]) {
        let n = self.c.finite;
        if n == 0 {
            return;
        }
        let (ma, mb) = (self.sum_a / n as f64, self.sum_b / n as f64);
        let [saa, sbb, sab] = lanes::<W, _, { ops([Add; 3]) }>(
            a,
            b,
            #[inline(always)]
            |x: F<W>, y: F<W>| {
                let (dx, dy) = (x - F::splat(ma), y - F::splat(mb));
                let (dx, dy) = if FINITE {
                    (dx, dy)
                } else {
                    let fin = x.is_finite().and(y.is_finite());
                    (fin.select(dx, F::splat(0.0)), fin.select(dy, F::splat(0.0)))
                };
                [dx * dx, dy * dy, dx * dy]
            },
        );
        (self.mean_a, self.mean_b, self.m2a, self.m2b, self.cab) = (ma, mb, saa, sbb, sab);
    }

    /// Fold `o` (the pairs that follow) into `self`.
    pub fn merge(&mut self, o: &Moments) {
        let (n1, n2) = (self.c.finite as f64, o.c.finite as f64);
        if o.c.finite > 0 {
            if self.c.finite == 0 {
                (self.mean_a, self.mean_b, self.m2a, self.m2b, self.cab) = (o.mean_a, o.mean_b, o.m2a, o.m2b, o.cab);
            } else {
                // Chan, Golub & LeVeque: pairwise update of means and centred (co-)moments.
                let n = n1 + n2;
                let (da, db) = (o.mean_a - self.mean_a, o.mean_b - self.mean_b);
                let w = n1 * n2 / n;
                self.mean_a += da * (n2 / n);
                self.mean_b += db * (n2 / n);
                self.m2a += o.m2a + da * da * w;
                self.m2b += o.m2b + db * db * w;
                self.cab += o.cab + da * db * w;
            }
        }
        let (c, d) = (&mut self.c, &o.c);
        c.numel += d.numel;
        c.finite += d.finite;
        c.nan_a += d.nan_a;
        c.nan_b += d.nan_b;
        c.inf_a += d.inf_a;
        c.inf_b += d.inf_b;
        c.nan_xor += d.nan_xor;
        c.inf_mismatch += d.inf_mismatch;
        c.close += d.close;
        c.b_zero += d.b_zero;
        self.sum_ad += o.sum_ad;
        self.sum_ad2 += o.sum_ad2;
        self.max_ad = self.max_ad.max(o.max_ad);
        self.min_nonzero_ad = self.min_nonzero_ad.min(o.min_nonzero_ad);
        self.sum_rel += o.sum_rel;
        self.max_rel = self.max_rel.max(o.max_rel);
        self.sum_a += o.sum_a;
        self.sum_b += o.sum_b;
        self.sum_a2 += o.sum_a2;
        self.sum_b2 += o.sum_b2;
        self.sum_ab += o.sum_ab;
        self.floored.merge(&o.floored);
    }
}

impl Floored {
    /// The floored errors of a block (see [`Moments::of`]; same lanes, same order).
    #[inline(always)]
    pub fn of(a: &[f64], b: &[f64], floor: f64) -> Self {
        let (mut n, mut sum, mut max) = ([0u64; LANES], [0.0; LANES], [f64::NEG_INFINITY; LANES]);
        let mut add = |l: usize, x: f64, y: f64| {
            let fin = x.is_finite() & y.is_finite();
            let den = if fin { y.abs().max(floor) } else { 0.0 };
            let ok = den > 0.0;
            let r = if ok { (x - y).abs() / den } else { 0.0 };
            n[l] += ok as u64;
            sum[l] += r;
            max[l] = max[l].max(r);
        };
        let whole = a.len() / LANES * LANES;
        for (ca, cb) in a[..whole].chunks_exact(LANES).zip(b[..whole].chunks_exact(LANES)) {
            for l in 0..LANES {
                add(l, ca[l], cb[l]);
            }
        }
        for (l, (&x, &y)) in a[whole..].iter().zip(&b[whole..]).enumerate() {
            add(l, x, y);
        }
        Floored { n: n.iter().sum(), sum: fold(sum), max: max.into_iter().fold(f64::NEG_INFINITY, f64::max) }
    }

    pub fn merge(&mut self, o: &Floored) {
        self.n += o.n;
        self.sum += o.sum;
        self.max = self.max.max(o.max);
    }
}

impl Moments {
    /// The whole-tensor metrics of the report (`floor`: the floored relative error's floor).
    pub fn fill(&self, r: &mut TensorReport, floor: f64) {
        let c = &self.c;
        r.finite_pairs = Some(c.finite);
        (r.nan_a, r.nan_b, r.inf_a, r.inf_b) = (Some(c.nan_a), Some(c.nan_b), Some(c.inf_a), Some(c.inf_b));
        r.nan_position_mismatch = Some(c.nan_xor);
        r.inf_mismatch = Some(c.inf_mismatch);
        r.mismatched = Some(c.numel - c.close);
        r.values_match = c.close == c.numel;
        r.rel_zero_b = Some(c.b_zero);
        if c.finite == 0 {
            return;
        }
        let nf = c.finite as f64;
        r.max_abs = Some(self.max_ad);
        r.mean_abs = Some(self.sum_ad / nf);
        r.rmse = Some((self.sum_ad2 / nf).sqrt());
        r.rms_a = Some((self.sum_a2 / nf).sqrt());
        r.rms_b = Some((self.sum_b2 / nf).sqrt());
        let rel_n = c.finite - c.b_zero;
        if rel_n > 0 {
            r.max_rel = Some(self.max_rel);
            r.mean_rel = Some(self.sum_rel / rel_n as f64);
        }
        r.cosine = ratio(self.sum_ab, (self.sum_a2 * self.sum_b2).sqrt());
        // libm's log10, not the platform's: the native CLI and the browser must print the same bits.
        r.snr_db = (self.sum_ad2 > 0.0 && self.sum_b2 > 0.0).then(|| 10.0 * libm::log10(self.sum_b2 / self.sum_ad2));
        r.pearson = ratio(self.cab, (self.m2a * self.m2b).sqrt());
        r.rel_floor = Some(floor);
        // An infinite floor (RMS(b) overflowed) divides every error to 0 and an infinite one to
        // NaN: no floored error is meaningful then.
        if self.floored.n > 0 && floor.is_finite() {
            r.max_rel_floored = Some(self.floored.max);
            r.mean_rel_floored = Some(self.floored.sum / self.floored.n as f64);
        }
    }

    /// The default floor of the floored relative error: a fraction of RMS(b).
    pub fn default_floor(&self) -> f64 {
        crate::options::DEFAULT_REL_FLOOR_FRACTION * (self.sum_b2 / self.c.finite as f64).sqrt()
    }

    /// Channel `channel` of a 4-D/5-D tensor (`numel` elements), with the affine fit.
    pub fn channel(&self, channel: usize, numel: u64) -> ChannelStats {
        let n = self.c.finite as f64;
        let (max_abs, mean_abs, rmse) = self.errors();
        let (ma, mb) = if n > 0.0 { (self.sum_a / n, self.sum_b / n) } else { (f64::NAN, f64::NAN) };
        let (saa, sbb, sab) = (self.m2a, self.m2b, self.cab);
        let scale = (saa > 0.0).then(|| sab / saa);
        ChannelStats {
            channel,
            numel,
            mismatched: numel - self.c.close,
            max_abs,
            mean_abs,
            rmse,
            mean_a: ma,
            mean_b: mb,
            std_a: if n > 0.0 { (saa / n).sqrt() } else { f64::NAN },
            std_b: if n > 0.0 { (sbb / n).sqrt() } else { f64::NAN },
            scale,
            shift: scale.map(|k| mb - k * ma),
            r2: (saa > 0.0 && sbb > 0.0).then(|| sab * sab / (saa * sbb)),
        }
    }

    /// Frame `frame` of a 5-D tensor (`numel` elements).
    pub fn frame(&self, frame: usize, numel: u64) -> FrameStats {
        let (max_abs, mean_abs, rmse) = self.errors();
        FrameStats { frame, numel, mismatched: numel - self.c.close, max_abs, mean_abs, rmse }
    }

    /// max/mean/rms of |a-b| (NaN, i.e. JSON null, without finite pairs).
    fn errors(&self) -> (f64, f64, f64) {
        let n = self.c.finite as f64;
        if n == 0.0 {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        (self.max_ad, self.sum_ad / n, (self.sum_ad2 / n).sqrt())
    }
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0 && den.is_finite()).then(|| num / den)
}

/// What both all-finite sweeps need of `W` pairs: |a-b|, |b|, the relative error (0 where
/// b == 0) and the isclose and b == 0 counts.
struct PairTerms<const W: usize> {
    d: F<W>,
    ay: F<W>,
    rel: F<W>,
    close: F<W>,
    b_zero: F<W>,
}

impl<const W: usize> PairTerms<W> {
    #[inline(always)]
    fn of(x: F<W>, y: F<W>, tol: Tol) -> Self {
        let (d, ay, zero) = ((x - y).abs(), y.abs(), F::splat(0.0));
        Self {
            d,
            ay,
            rel: y.ne(zero).select(d / ay, zero),
            close: d.le(ay * F::splat(tol.rtol) + F::splat(tol.atol)).one(),
            b_zero: y.eq(zero).one(),
        }
    }
}

#[derive(Clone, Copy)]
struct Lanes {
    /// nan_a, nan_b, inf_a, inf_b, nan_xor, inf_mismatch, close, finite, b_zero, floored n
    count: [[u64; LANES]; 10],
    /// |a-b|, |a-b|^2, rel, a, b, a^2, b^2, ab, floored rel
    sum: [[f64; LANES]; 9],
    max_ad: [f64; LANES],
    min_nonzero: [f64; LANES],
    max_rel: [f64; LANES],
    max_floored: [f64; LANES],
}

impl Default for Lanes {
    fn default() -> Self {
        Self {
            count: [[0; LANES]; 10],
            sum: [[0.0; LANES]; 9],
            max_ad: [f64::NEG_INFINITY; LANES],
            min_nonzero: [f64::INFINITY; LANES],
            max_rel: [f64::NEG_INFINITY; LANES],
            max_floored: [f64::NEG_INFINITY; LANES],
        }
    }
}

impl Lanes {
    /// One pair in lane `l`: selects instead of branches. Non-finite pairs add zeros to the
    /// sums (as the reference masks them) and never reach a maximum: every maximum here is
    /// of non-negative values and is only reported when a pair counted.
    #[inline(always)]
    fn add<const FLOOR: bool>(&mut self, l: usize, x: f64, y: f64, tol: Tol, floor: f64) {
        let (nx, ny, ix, iy) = (x.is_nan(), y.is_nan(), x.is_infinite(), y.is_infinite());
        let fin = x.is_finite() & y.is_finite();
        let (xf, yf) = (if fin { x } else { 0.0 }, if fin { y } else { 0.0 });
        let d = (xf - yf).abs();
        let ay = yf.abs();
        let close = (fin & (d <= ay * tol.rtol + tol.atol)) | (nx & ny) | ((ix | iy) & (x == y));
        let b_zero = fin & (yf == 0.0);
        let rel_ok = fin & (yf != 0.0);
        let rel = if rel_ok { d / ay } else { 0.0 };
        let c = &mut self.count;
        for (k, v) in [nx, ny, ix, iy, nx ^ ny, (ix | iy) & (x != y), close, fin, b_zero].into_iter().enumerate() {
            c[k][l] += v as u64;
        }
        let s = &mut self.sum;
        for (k, v) in [d, d * d, rel, xf, yf, xf * xf, yf * yf, xf * yf].into_iter().enumerate() {
            s[k][l] += v;
        }
        // Masked pairs carry 0, which cannot exceed a reported maximum (all are >= 0).
        self.max_ad[l] = self.max_ad[l].max(d);
        self.min_nonzero[l] = self.min_nonzero[l].min(if d > 0.0 { d } else { f64::INFINITY });
        self.max_rel[l] = self.max_rel[l].max(rel);
        if FLOOR {
            let den = ay.max(floor);
            let ok = fin & (den > 0.0);
            let r = if ok { d / den } else { 0.0 };
            c[9][l] += ok as u64;
            s[8][l] += r;
            self.max_floored[l] = self.max_floored[l].max(r);
        }
    }

    fn fold(&self, numel: u64) -> Moments {
        let n = |k: usize| self.count[k].iter().sum::<u64>();
        let max = |v: [f64; LANES]| v.into_iter().fold(f64::NEG_INFINITY, f64::max);
        let mut m = Moments {
            c: Counts {
                numel,
                nan_a: n(0),
                nan_b: n(1),
                inf_a: n(2),
                inf_b: n(3),
                nan_xor: n(4),
                inf_mismatch: n(5),
                close: n(6),
                finite: n(7),
                b_zero: n(8),
            },
            ..Moments::default()
        };
        let s = |k: usize| fold(self.sum[k]);
        (m.sum_ad, m.sum_ad2, m.sum_rel) = (s(0), s(1), s(2));
        (m.sum_a, m.sum_b, m.sum_a2, m.sum_b2, m.sum_ab) = (s(3), s(4), s(5), s(6), s(7));
        m.max_ad = max(self.max_ad);
        m.min_nonzero_ad = self.min_nonzero.into_iter().fold(f64::INFINITY, f64::min);
        m.max_rel = max(self.max_rel);
        m.floored = Floored { n: n(9), sum: s(8), max: max(self.max_floored) };
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tol = Tol { rtol: 1.3e-6, atol: 1e-5 };

    /// Merging two halves gives what one run over the whole gives (up to rounding).
    #[test]
    fn merge_equals_whole() {
        let a: Vec<f64> = (0..100).map(|i| 1000.0 + (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..100).map(|i| 1000.5 + (i as f64 * 0.41).cos()).collect();
        let whole = Moments::of(&a, &b, TOL, Some(0.1));
        let mut left = Moments::of(&a[..37], &b[..37], TOL, Some(0.1));
        left.merge(&Moments::of(&a[37..], &b[37..], TOL, Some(0.1)));
        assert_eq!(left.c, whole.c);
        for (x, y) in [(left.m2a, whole.m2a), (left.m2b, whole.m2b), (left.cab, whole.cab), (left.mean_a, whole.mean_a)]
        {
            assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
        }
        assert_eq!(left.max_ad, whole.max_ad);
        assert_eq!(left.floored.n, 100);
    }

    #[test]
    fn non_finite_pairs_are_counted_not_summed() {
        let a = [f64::NAN, f64::INFINITY, 1.0, f64::NAN, 2.0];
        let b = [f64::NAN, f64::INFINITY, f64::NAN, 1.0, 0.0];
        let m = Moments::of(&a, &b, TOL, None);
        assert_eq!(
            m.c,
            Counts {
                numel: 5,
                finite: 1,
                nan_a: 2,
                nan_b: 2,
                inf_a: 1,
                inf_b: 1,
                nan_xor: 2,
                inf_mismatch: 0,
                close: 2,
                b_zero: 1
            }
        );
        assert_eq!((m.sum_ad, m.max_ad, m.c.finite - m.c.b_zero), (2.0, 2.0, 0));
    }
}
