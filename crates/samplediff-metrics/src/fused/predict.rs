//! A prediction, from a small sample read before the main pass, of what a second pass would
//! have to look at, so that the main pass gathers it in passing and the second pass is skipped.
//!
//! Two things are known only after the main pass: which 16-bit buckets hold the wanted ranks
//! of the errors and ULP distances ([`super::select`]), and the default floor of the floored
//! relative error (1e-3 RMS(b)). Both are predicted from evenly spaced runs of the tensors:
//! the buckets around each wanted quantile of the sample, with a margin of four standard
//! deviations of a sample quantile's rank, and a band of floors around the sample's. The main
//! pass then keeps the values of those buckets and, where |b| lies inside the band, the pairs
//! themselves. When the truth falls inside the prediction (on real data nearly always) there
//! is nothing left for a second pass; when it does not, or a worker's share of the budget
//! overflows, the second pass runs as before. Results are exact either way.

use super::Kernel;
use super::decode::{BLOCK, decode, ulp_distances};
use super::select::{COLLECT_BUDGET, PassOut, Request, key16};
use crate::moments::{Floored, Op, abs_diff, lanes4, one_if};
use crate::options::DEFAULT_REL_FLOOR_FRACTION;
use crate::quantiles::QUANTILES;

/// Tensors smaller than this are not worth a prediction (their second pass is short).
const PREDICT_FROM: usize = 1 << 17;

/// The sample: at most this many runs of [`BLOCK`] elements.
const MAX_RUNS: usize = 64;

/// Values the prediction may plan to keep in all (the hard limit is [`COLLECT_BUDGET`]).
const PLANNED_BUDGET: f64 = (COLLECT_BUDGET / 2) as f64;

/// The floors the main pass is ready for: [`Band::lo`, `Band::hi`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Band {
    pub lo: f64,
    pub hi: f64,
}

/// What the main pass gathers.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub errors: Option<Request>,
    pub ulps: Option<Request>,
    pub band: Option<Band>,
    /// Values (errors, ULP distances, band pairs) one worker may keep before it gives up.
    pub per_worker: usize,
}

impl Plan {
    /// Sample `k`'s tensors and plan; an empty plan for small tensors.
    pub fn new(k: &Kernel, threads: usize, default_floor: bool) -> Self {
        if k.numel < PREDICT_FROM {
            return Self::default();
        }
        let s = Sample::read(k);
        let scale = k.numel as f64 / s.errors.len().max(1) as f64;
        Plan {
            errors: keys_around(&s.errors, &QUANTILES, scale).map(Request::keep16),
            ulps: keys_around(&s.ulps, &[0.5], scale).map(Request::keep16),
            band: default_floor.then(|| s.band(scale)).flatten(),
            per_worker: COLLECT_BUDGET as usize / threads.max(1),
        }
    }
}

/// Evenly spaced runs of both tensors: their errors and ULP distances (sorted) and |b|.
struct Sample {
    errors: Vec<f64>,
    ulps: Vec<f64>,
    abs_b: Vec<f64>,
}

impl Sample {
    fn read(k: &Kernel) -> Self {
        let runs = (k.numel / 8 / BLOCK).clamp(1, MAX_RUNS);
        let (sa, sb) = (k.a.dtype.size(), k.b.dtype.size());
        let (mut fa, mut fb) = ([0.0; BLOCK], [0.0; BLOCK]);
        let mut s = Sample { errors: vec![], ulps: vec![], abs_b: vec![] };
        let step = if runs > 1 { (k.numel - BLOCK) / (runs - 1) } else { 0 };
        for r in 0..runs {
            let start = r * step;
            let (ba, bb) = (&k.a.data[start * sa..(start + BLOCK) * sa], &k.b.data[start * sb..(start + BLOCK) * sb]);
            decode(k.a.dtype, ba, &mut fa);
            decode(k.b.dtype, bb, &mut fb);
            for (&x, &y) in fa.iter().zip(&fb) {
                if let Some(d) = abs_diff(x, y) {
                    s.errors.push(d);
                    s.abs_b.push(y.abs());
                }
            }
            if k.ulp {
                ulp_distances(k.a.dtype, ba, bb, false, |d| s.ulps.push(d as f64));
            }
        }
        s.errors.sort_unstable_by(f64::total_cmp);
        s.ulps.sort_unstable_by(f64::total_cmp);
        s
    }

    /// Floors around the sample's default floor, unless too many |b| would fall in between.
    fn band(&self, scale: f64) -> Option<Band> {
        let n = self.abs_b.len() as f64;
        let floor = DEFAULT_REL_FLOOR_FRACTION * (self.abs_b.iter().map(|b| b * b).sum::<f64>() / n).sqrt();
        if !(floor > 0.0 && floor.is_finite()) {
            return None;
        }
        let band = Band { lo: floor / 1.5, hi: floor * 1.5 };
        let inside = self.abs_b.iter().filter(|&&b| band.lo <= b && b < band.hi).count() as f64;
        ((inside + 1.0) * scale <= PLANNED_BUDGET).then_some(band)
    }
}

/// The 16-bit keys of the buckets that should hold the `quantiles` of the population `sorted`
/// was sampled from (`scale` population values per sample value); `None` when there is no
/// sample or keeping those buckets would cost more than the planned budget.
fn keys_around(sorted: &[f64], quantiles: &[f64], scale: f64) -> Option<Vec<u64>> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let mut keys = vec![];
    for &q in quantiles {
        let at = q * (n - 1) as f64;
        let margin = 4.0 * (n as f64 * q * (1.0 - q)).sqrt() + 3.0;
        let lo = sorted[(at - margin).floor().max(0.0) as usize];
        let hi = sorted[((at + margin).ceil() as usize).min(n - 1)];
        if hi == 0.0 {
            continue; // among the zeros, which are counted, not kept
        }
        let lo = if lo > 0.0 { lo } else { *sorted.iter().find(|&&v| v > 0.0).expect("hi > 0") };
        keys.extend(key16(lo)..=key16(hi));
    }
    keys.sort_unstable();
    keys.dedup();
    let kept = sorted.iter().filter(|&&v| v > 0.0 && keys.binary_search(&key16(v)).is_ok()).count();
    (!keys.is_empty() && (kept + quantiles.len()) as f64 * scale <= PLANNED_BUDGET).then_some(keys)
}

/// One worker's gatherings; a stream turns to `None` when the plan has none for it or the
/// worker's share of the budget overflowed (then the second pass handles it).
#[derive(Debug)]
pub(crate) struct Gathered {
    pub errors: Option<PassOut>,
    pub ulps: Option<PassOut>,
    /// Pairs this worker put into its chunks' [`BandSums`], and whether it gave up on them.
    band_kept: usize,
    pub band_overflow: bool,
}

impl Gathered {
    pub fn new(plan: &Plan) -> Self {
        Self {
            errors: plan.errors.as_ref().map(Request::out),
            ulps: plan.ulps.as_ref().map(Request::out),
            band_kept: 0,
            band_overflow: false,
        }
    }

    /// Give up whatever has outgrown the worker's share.
    pub fn check(&mut self, plan: &Plan) {
        for g in [&mut self.errors, &mut self.ulps] {
            if g.as_ref().is_some_and(|o| o.kept() > plan.per_worker) {
                *g = None;
            }
        }
        self.band_overflow |= self.band_kept > plan.per_worker;
    }

    /// Merge the workers' gatherings: a stream survives only if every worker kept all of it.
    pub fn merge(all: Vec<Gathered>) -> Gathered {
        let mut it = all.into_iter();
        let mut acc = it.next().expect("at least one worker");
        for g in it {
            for (x, y) in [(&mut acc.errors, g.errors), (&mut acc.ulps, g.ulps)] {
                *x = match (x.take(), y) {
                    (Some(mut x), Some(y)) => {
                        x.merge(y);
                        Some(x)
                    }
                    _ => None,
                };
            }
            acc.band_overflow |= g.band_overflow;
        }
        acc
    }
}

/// The floored relative error's sums for every floor in a [`Band`], over one chunk: pairs with
/// |b| above the band divide by |b| whatever the floor, those below by the floor (so their
/// |a-b| is summed and divided at the end), and those inside are kept.
#[derive(Clone, Debug)]
pub(crate) struct BandSums {
    n_hi: u64,
    sum_hi: f64,
    max_hi: f64,
    n_lo: u64,
    sum_lo: f64,
    max_lo: f64,
    inside: Vec<(f64, f64)>,
}

impl Default for BandSums {
    fn default() -> Self {
        let none = f64::NEG_INFINITY;
        Self { n_hi: 0, sum_hi: 0.0, max_hi: none, n_lo: 0, sum_lo: 0.0, max_lo: none, inside: vec![] }
    }
}

impl BandSums {
    /// One block of decoded pairs; `g` counts the pairs kept.
    #[inline(always)]
    pub fn add(&mut self, a: &[f64], b: &[f64], band: Band, g: &mut Gathered) {
        // Two branch-free sweeps (they vectorise), then, only if some pair fell inside the
        // band, a third to keep those pairs.
        let ninf = f64::NEG_INFINITY;
        let sides = |x: f64, y: f64| {
            let fin = x.is_finite() & y.is_finite();
            let ab = y.abs();
            (fin & (ab >= band.hi), fin & (ab < band.lo), fin, (x - y).abs(), ab)
        };
        let [sum_hi, max_hi, sum_lo, max_lo] = lanes4(
            a,
            b,
            |x, y| {
                let (hi, lo, _, d, ab) = sides(x, y);
                let r = if hi { d / ab } else { 0.0 };
                [r, if hi { r } else { ninf }, if lo { d } else { 0.0 }, if lo { d } else { ninf }]
            },
            [Op::Add, Op::Max, Op::Add, Op::Max],
        );
        let [n_hi, n_lo, n_in, _] = lanes4(
            a,
            b,
            |x, y| {
                let (hi, lo, fin, _, _) = sides(x, y);
                [one_if(hi), one_if(lo), one_if(fin & !hi & !lo), 0.0]
            },
            [Op::Add; 4],
        );
        // Counts summed as f64 are exact (a block is far below 2^53).
        (self.n_hi, self.n_lo) = (self.n_hi + n_hi as u64, self.n_lo + n_lo as u64);
        self.sum_hi += sum_hi;
        self.max_hi = self.max_hi.max(max_hi);
        self.sum_lo += sum_lo;
        self.max_lo = self.max_lo.max(max_lo);
        let mut left = n_in as usize;
        g.band_kept += left;
        if g.band_overflow {
            return;
        }
        for (&x, &y) in a.iter().zip(b) {
            if left == 0 {
                break;
            }
            let (hi, lo, fin, d, ab) = sides(x, y);
            if fin & !hi & !lo {
                self.inside.push((d, ab));
                left -= 1;
            }
        }
    }

    /// Fold `o` (the chunk that follows) into `self`.
    pub fn merge(&mut self, o: BandSums) {
        self.n_hi += o.n_hi;
        self.sum_hi += o.sum_hi;
        self.max_hi = self.max_hi.max(o.max_hi);
        self.n_lo += o.n_lo;
        self.sum_lo += o.sum_lo;
        self.max_lo = self.max_lo.max(o.max_lo);
        self.inside.extend(o.inside);
    }

    /// The floored error sums for `floor` (inside the band the sums were made for).
    pub fn floored(&self, floor: f64) -> Floored {
        let mut f = Floored {
            n: self.n_hi + self.n_lo + self.inside.len() as u64,
            sum: self.sum_hi + self.sum_lo / floor,
            max: self.max_hi.max(self.max_lo / floor),
        };
        for &(d, ab) in &self.inside {
            let r = d / ab.max(floor);
            f.sum += r;
            f.max = f.max.max(r);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_sums_give_the_floored_error_of_any_floor_inside() {
        let b: Vec<f64> = (0..5000).map(|i| ((i * 7919 % 2001) as f64 - 1000.0) * 1e-3).collect();
        let a: Vec<f64> = b.iter().enumerate().map(|(i, &y)| if i == 17 { f64::NAN } else { y + 1e-4 }).collect();
        let band = Band { lo: 0.01, hi: 0.2 };
        let plan = Plan { band: Some(band), per_worker: 1 << 20, ..Default::default() };
        let (mut sums, mut g) = (BandSums::default(), Gathered::new(&plan));
        for (ca, cb) in a.chunks(1000).zip(b.chunks(1000)) {
            let mut part = BandSums::default();
            part.add(ca, cb, band, &mut g);
            sums.merge(part);
        }
        for floor in [0.01, 0.05, 0.199] {
            let (want, got) = (Floored::of(&a, &b, floor), sums.floored(floor));
            assert_eq!((got.n, got.max), (want.n, want.max), "floor {floor}");
            assert!((got.sum - want.sum).abs() <= 1e-12 * want.sum, "floor {floor}: {} vs {}", got.sum, want.sum);
        }
    }

    #[test]
    fn keys_cover_the_sample_quantiles() {
        let sorted: Vec<f64> = (0..10_000).map(|i| i as f64 * 1e-3).collect();
        let keys = keys_around(&sorted, &QUANTILES, 1.0).unwrap();
        for q in QUANTILES {
            assert!(keys.binary_search(&key16(sorted[(q * 9999.0) as usize])).is_ok(), "{q}");
        }
        assert!(keys_around(&sorted, &QUANTILES, 1e9).is_none(), "over the budget");
        assert!(keys_around(&[0.0; 10], &[0.5], 1.0).is_none(), "all zeros: nothing to keep");
    }
}
