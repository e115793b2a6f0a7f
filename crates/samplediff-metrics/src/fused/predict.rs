//! A prediction, from a small sample read before the main pass, of what a second pass would
//! have to look at, so that the main pass gathers it in passing and the second pass is skipped.
//!
//! Two things are known only after the main pass: the values at the wanted ranks of the errors
//! and ULP distances ([`super::select`]), and the default floor of the floored relative error
//! (1e-3 RMS(b)). Both are predicted from evenly spaced runs of the tensors: a window of values
//! around each wanted quantile of the sample, four standard deviations of a sample quantile's
//! rank wide either side, and a band of floors around the sample's. The main pass counts
//! exactly how many values lie below and inside each window, keeps the values inside (a window
//! of a single value keeps none: its count is enough), and, where |b| lies inside the band,
//! keeps the pairs. When a wanted rank falls inside its window (on real data nearly always)
//! there is nothing left for a second pass; when it does not, or a worker's share of the budget
//! overflows, the exact passes run as before, after a pass that counts the stream's histogram
//! (the main pass leaves it out where it has windows). Results are exact either way.

use super::decades::Edges;
use super::decode::{BLOCK, decode, ulp_distances};
use super::{Kernel, workers};
use std::array::from_fn;

use super::select::COLLECT_BUDGET;
use crate::lanes::Op::{Add, Max};
use crate::lanes::{F, lanes, ops};
use crate::moments::{Band, BandBlock, Floored, abs_diff};
use crate::options::DEFAULT_REL_FLOOR_FRACTION;
use crate::quantiles::QUANTILES;

/// Tensors smaller than this are not worth a prediction (their second pass is short).
const PREDICT_FROM: usize = 1 << 17;

/// The sample: runs of [`BLOCK`] elements, one per [`ELEMENTS_PER_RUN`] elements of the tensor
/// but at least [`MIN_RUNS`] (at most an eighth of the tensor) and at most [`MAX_RUNS`].
/// A bigger sample narrows the windows (their width goes as one over its square root), so the
/// main pass keeps fewer values and mispredicts fewer of its branches over them; it costs a
/// sort, once. 2026-12-08 (2-core AMD VM): on 2 x 64 MiB float32, 256 runs against 64 cost
/// 95M instructions more and saved 1.0M (simulated) mispredicts of 3.2M, a loss; on 2 x 1 GiB
/// float32 they took `compare` from 1.86 to 1.72 s (medians of 8 alternated runs; CPU time
/// 3.60 -> 3.30 s).
const ELEMENTS_PER_RUN: usize = 1 << 20;
const MIN_RUNS: usize = 64;
const MAX_RUNS: usize = 256;

/// Values (8 bytes each; a band pair counts two) the prediction may plan to keep in all: half
/// of the hard limit, [`COLLECT_BUDGET`] (256 MiB), which all workers together never exceed.
const PLANNED_BUDGET: f64 = (COLLECT_BUDGET / 2) as f64;

/// What the main pass gathers.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub errors: Option<Windows>,
    pub ulps: Option<Windows>,
    pub band: Option<Band>,
    /// The powers of ten the decade histogram is counted at (see `decades`).
    pub decades: Edges,
    /// Values (errors, ULP distances, two per band pair) one worker may keep before it gives
    /// up on all of them.
    pub per_worker: usize,
}

impl Plan {
    /// Sample `k`'s tensors and plan; an empty plan for small tensors.
    pub fn new(k: &Kernel, threads: usize, default_floor: bool) -> Self {
        if k.numel < PREDICT_FROM {
            return Self::default();
        }
        let s = Sample::read(k, threads);
        let scale = k.numel as f64 / s.errors.len().max(1) as f64;
        let (mut errors, mut ulps) = (windows(&s.errors, &QUANTILES, scale), windows(&s.ulps, &[0.5], scale));
        let mut band = default_floor.then(|| s.band(scale)).flatten();
        // Within the planned budget all together: give up the costliest prediction first.
        loop {
            let costs = [errors.as_ref().map(|e| e.1), ulps.as_ref().map(|u| u.1), band.map(|b| b.1)];
            if costs.iter().flatten().sum::<f64>() <= PLANNED_BUDGET {
                break;
            }
            let worst = (0..3).max_by(|&i, &j| costs[i].unwrap_or(0.0).total_cmp(&costs[j].unwrap_or(0.0)));
            match worst {
                Some(0) => errors = None,
                Some(1) => ulps = None,
                _ => band = None,
            }
        }
        let decades = match s.errors.iter().find(|&&d| d > 0.0) {
            Some(&min) => Edges::around(min, s.errors[s.errors.len() - 1]),
            None => Edges::default(),
        };
        Plan {
            errors: errors.map(|(w, _)| w),
            ulps: ulps.map(|(w, _)| w),
            band: band.map(|(b, _)| b),
            decades,
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
    /// The runs read, and the two streams sorted, on up to `threads` threads: this happens
    /// before the main pass starts, and on one thread it took 31-55 ms of a 1.5 s `compare` of
    /// 2 x 1 GiB float32 (256 runs; 2026-12-08, 2-core AMD VM: a third faulting in the runs'
    /// pages, a third the sorts), on two 22-35 ms.
    fn read(k: &Kernel, threads: usize) -> Self {
        let runs = (k.numel / ELEMENTS_PER_RUN).clamp(MIN_RUNS, MAX_RUNS).min(k.numel / 8 / BLOCK).max(1);
        let step = if runs > 1 { (k.numel - BLOCK) / (runs - 1) } else { 0 };
        // Consecutive shares of the runs, joined in run order: |b| is summed in that order.
        let shares = threads.clamp(1, runs);
        let tasks = (0..shares)
            .map(|t| move || Self::read_runs(k, (t * runs / shares..(t + 1) * runs / shares).map(|r| r * step)))
            .collect();
        let mut s = Sample { errors: vec![], ulps: vec![], abs_b: vec![] };
        for part in workers::each(threads, tasks) {
            s.errors.extend(part.errors);
            s.ulps.extend(part.ulps);
            s.abs_b.extend(part.abs_b);
        }
        let sorts = [std::mem::take(&mut s.errors), std::mem::take(&mut s.ulps)].map(|mut v| {
            move || {
                v.sort_unstable_by(f64::total_cmp);
                v
            }
        });
        [s.errors, s.ulps] = workers::each(threads, sorts.into()).try_into().expect("two streams");
        s
    }

    /// The runs of [`BLOCK`] elements starting at `starts`, unsorted.
    fn read_runs(k: &Kernel, starts: impl Iterator<Item = usize>) -> Self {
        let (sa, sb) = (k.a.dtype.size(), k.b.dtype.size());
        let (mut fa, mut fb) = ([0.0; BLOCK], [0.0; BLOCK]);
        let mut s = Sample { errors: vec![], ulps: vec![], abs_b: vec![] };
        for start in starts {
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
                ulp_distances(k.a.dtype, ba, bb, |d| s.ulps.push(d as f64));
            }
        }
        s
    }

    /// Floors around the sample's default floor, and the values keeping the pairs in between
    /// is expected to cost.
    fn band(&self, scale: f64) -> Option<(Band, f64)> {
        let n = self.abs_b.len() as f64;
        let floor = DEFAULT_REL_FLOOR_FRACTION * (self.abs_b.iter().map(|b| b * b).sum::<f64>() / n).sqrt();
        if !(floor > 0.0 && floor.is_finite()) {
            return None;
        }
        let band = Band { lo: floor / 1.5, hi: floor * 1.5 };
        let inside = self.abs_b.iter().filter(|&&b| band.lo <= b && b < band.hi).count() as f64;
        Some((band, 2.0 * (inside + 1.0) * scale))
    }
}

/// Windows of values that should hold the `quantiles` of the population `sorted` was sampled
/// from (`scale` population values per sample value), and how many values keeping them is
/// expected to cost; `None` when there is nothing to keep (every window among the zeros).
fn windows(sorted: &[f64], quantiles: &[f64], scale: f64) -> Option<(Windows, f64)> {
    let n = sorted.len();
    let mut spans: Vec<(f64, f64)> = vec![];
    for &q in quantiles {
        if n == 0 {
            break;
        }
        let at = q * (n - 1) as f64;
        let margin = 4.0 * (n as f64 * q * (1.0 - q)).sqrt() + 3.0;
        let lo = sorted[(at - margin).floor().max(0.0) as usize];
        let hi = sorted[((at + margin).ceil() as usize).min(n - 1)];
        if hi > 0.0 {
            // Zeros are counted, never kept: a window starts above them.
            spans.push((lo.max(f64::from_bits(1)), hi));
        }
    }
    spans.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut merged: Vec<(f64, f64)> = vec![];
    for (lo, hi) in spans {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    if merged.is_empty() {
        return None;
    }
    // A window of one value keeps none (see `Windows::point`).
    let kept = sorted.iter().filter(|&&v| merged.iter().any(|&(lo, hi)| lo < hi && lo <= v && v <= hi)).count();
    Some((Windows::new(merged), (kept + quantiles.len()) as f64 * scale))
}

/// Disjoint, ascending windows [lo, hi] of positive values the main pass keeps (at most
/// [`MAX_WINDOWS`]), which it places by counting the values below each window.
#[derive(Clone, Debug)]
pub(crate) struct Windows {
    spans: Vec<(f64, f64)>,
}

/// At most this many windows (one per quantile of [`QUANTILES`]).
const MAX_WINDOWS: usize = 4;

/// One worker's findings for [`Windows`]: the values inside each window (none are kept for a
/// window of one value, [`Windows::point`]), and the counts of values (zeros included) below
/// each window and inside it. Merged, the other workers' values are held as they came
/// (`merged`), and joined only by the window's [`Pick`]: on a thread of its own.
#[derive(Clone, Debug, Default)]
pub(crate) struct WindowsOut {
    inside: Vec<Vec<f64>>,
    merged: Vec<Vec<Vec<f64>>>,
    below: Vec<u64>,
    count: Vec<u64>,
}

impl Windows {
    fn new(spans: Vec<(f64, f64)>) -> Self {
        assert!((1..=MAX_WINDOWS).contains(&spans.len()), "{} windows", spans.len());
        Self { spans }
    }

    pub fn out(&self) -> WindowsOut {
        let n = self.spans.len();
        WindowsOut { inside: vec![vec![]; n], merged: vec![vec![]; n], below: vec![0; n], count: vec![0; n] }
    }

    /// Is window `w` a single value? (Ties: on data where most errors are equal, a window
    /// would otherwise keep most of the values, and selecting among them was the slowest part
    /// of the comparison.) Its values are counted, not kept.
    #[inline(always)]
    fn point(&self, w: usize) -> bool {
        self.spans[w].0 == self.spans[w].1
    }

    /// One value of the stream (the path of blocks with NaN or Inf; [`Windows::offer_block`]
    /// for the others).
    #[inline(always)]
    pub fn offer(&self, v: f64, out: &mut WindowsOut) {
        for (w, &(lo, hi)) in self.spans.iter().enumerate() {
            out.below[w] += (v < lo) as u64;
            if lo <= v && v <= hi {
                out.count[w] += 1;
                if !self.point(w) {
                    out.inside[w].push(v);
                }
            }
        }
    }

    /// A block of values of the stream: counted against every window by one branch-free loop
    /// (it vectorises), which also flags the few values inside a window, one bit per window
    /// in `flags` (scratch space, at least as long as `values`); only groups of eight with a
    /// flag are then visited.
    #[inline(always)]
    pub fn offer_block(&self, values: &[f64], flags: &mut [u64], out: &mut WindowsOut) {
        let flags = &mut flags[..values.len()];
        // The window count as a constant: the loop then keeps every window's bounds and
        // counts in registers.
        let any = match self.spans.len() {
            1 => self.count::<1>(values, flags, out),
            2 => self.count::<2>(values, flags, out),
            3 => self.count::<3>(values, flags, out),
            _ => self.count::<4>(values, flags, out),
        };
        if !any {
            return;
        }
        // Windows of one value keep nothing: their bits are masked here, not in the loop above
        // (a mask there cost it a third more instructions).
        let keep = (0..self.spans.len()).filter(|&w| !self.point(w)).fold(0u64, |m, w| m | 1 << w);
        for (f, v) in flags.chunks(8).zip(values.chunks(8)) {
            if f.iter().fold(0, |a, &x| a | x) & keep == 0 {
                continue;
            }
            // The group's kept values by their bits, not by a branch per value: a group with a
            // flag nearly always has one, so this loop's exit is predicted where the branch on
            // each value was not.
            let mut kept = f.iter().enumerate().fold(0u32, |m, (j, &x)| m | (((x & keep != 0) as u32) << j));
            while kept != 0 {
                let j = kept.trailing_zeros() as usize;
                // Windows are disjoint: a flag has one bit, its window's.
                out.inside[f[j].trailing_zeros() as usize].push(v[j]);
                kept &= kept - 1;
            }
        }
    }

    /// [`Windows::offer_block`]'s counting loop for `W` windows; whether any value is inside a
    /// window that keeps its values.
    /// (Written on scalars, the compiler vectorises it better than written on [`F`].)
    #[inline(always)]
    fn count<const W: usize>(&self, values: &[f64], flags: &mut [u64], out: &mut WindowsOut) -> bool {
        let (lo, hi): ([f64; W], [f64; W]) = (from_fn(|w| self.spans[w].0), from_fn(|w| self.spans[w].1));
        let (mut below, mut upto) = ([0u64; W], [0u64; W]);
        for (f, &v) in flags.iter_mut().zip(values) {
            let mut flag = 0;
            for w in 0..W {
                // No value here is NaN, so "not below" is "at or above". Conditions as all-ones
                // masks, the form vector compares give: counted by subtracting them, "inside"
                // one AND-NOT (as bools, the compiler compared twice and shifted; 2 x 16 MiB:
                // 396.8M -> 393.7M instructions).
                let (lt, le) = (((v < lo[w]) as u64).wrapping_neg(), ((v <= hi[w]) as u64).wrapping_neg());
                below[w] = below[w].wrapping_sub(lt);
                upto[w] = upto[w].wrapping_sub(le);
                flag |= le & !lt & (1 << w);
            }
            *f = flag;
        }
        (0..W)
            .for_each(|w| (out.below[w], out.count[w]) = (out.below[w] + below[w], out.count[w] + upto[w] - below[w]));
        (0..W).any(|w| !self.point(w) && upto[w] > below[w])
    }

    /// The value at each of `ranks` (ascending, zeros included) that falls inside a window.
    #[cfg(test)]
    pub fn settle(&self, ranks: &[u64], out: WindowsOut) -> Vec<Option<f64>> {
        let (mut found, picks) = self.picks(ranks, out);
        picks.into_iter().flat_map(Pick::select).for_each(|(i, v)| found[i] = Some(v));
        found
    }

    /// [`Windows::settle`] in two steps: what the counts settle at once (ranks in a window of
    /// one value; `None` for the rest), and one [`Pick`] per window that must select among its
    /// values (independent of each other: the caller may run them on several threads).
    pub fn picks(&self, ranks: &[u64], out: WindowsOut) -> (Vec<Option<f64>>, Vec<Pick>) {
        let mut found = vec![None; ranks.len()];
        let mut wanted: Vec<Vec<(usize, usize)>> = vec![vec![]; self.spans.len()];
        for (i, &r) in ranks.iter().enumerate() {
            let (below, count) = (&out.below, &out.count);
            let Some(w) = (0..self.spans.len()).find(|&w| below[w] <= r && r < below[w] + count[w]) else { continue };
            if self.point(w) {
                found[i] = Some(self.spans[w].0);
            } else {
                wanted[w].push((i, (r - below[w]) as usize));
            }
        }
        let values = out.inside.into_iter().zip(out.merged);
        let picks = values.zip(wanted).filter(|(_, w)| !w.is_empty());
        (found, picks.map(|((values, more), wanted)| Pick { values, more, wanted }).collect())
    }
}

/// One window's selections: its kept values, and (place in the ranks asked for, rank among the
/// values) for each rank inside it.
pub(crate) struct Pick {
    values: Vec<f64>,
    more: Vec<Vec<f64>>,
    wanted: Vec<(usize, usize)>,
}

impl Pick {
    /// (place, value) for each wanted rank: a selection, not a sort (linear in the window's size).
    pub fn select(self) -> Vec<(usize, f64)> {
        let Pick { mut values, more, wanted } = self;
        values.reserve(more.iter().map(Vec::len).sum());
        more.into_iter().for_each(|m| values.extend(m));
        wanted.into_iter().map(|(i, r)| (i, *values.select_nth_unstable_by(r, f64::total_cmp).1)).collect()
    }
}

impl WindowsOut {
    /// Values kept so far.
    pub fn kept(&self) -> usize {
        self.inside.iter().chain(self.merged.iter().flatten()).map(Vec::len).sum()
    }

    pub fn merge(&mut self, o: WindowsOut) {
        for ((x, y), z) in self.merged.iter_mut().zip(o.inside).zip(o.merged) {
            x.push(y);
            x.extend(z);
        }
        for (x, y) in self.below.iter_mut().zip(o.below) {
            *x += y;
        }
        for (x, y) in self.count.iter_mut().zip(o.count) {
            *x += y;
        }
    }
}

/// One worker's gatherings; a stream turns to `None` when the plan has none for it or the
/// worker's share of the budget overflowed (then the second pass handles it).
#[derive(Debug)]
pub(crate) struct Gathered {
    pub errors: Option<WindowsOut>,
    pub ulps: Option<WindowsOut>,
    /// Pairs this worker put into its chunks' [`BandSums`], and whether it gave up on them.
    band_kept: usize,
    pub band_overflow: bool,
}

impl Gathered {
    pub fn new(plan: &Plan) -> Self {
        Self {
            errors: plan.errors.as_ref().map(Windows::out),
            ulps: plan.ulps.as_ref().map(Windows::out),
            band_kept: 0,
            band_overflow: false,
        }
    }

    /// Give up everything once the worker's share is outgrown (the second pass then does
    /// what the prediction was for): memory stays within [`COLLECT_BUDGET`] values in all.
    pub fn check(&mut self, plan: &Plan) {
        let kept = |g: &Option<WindowsOut>| g.as_ref().map_or(0, WindowsOut::kept);
        if kept(&self.errors) + kept(&self.ulps) + 2 * self.band_kept > plan.per_worker {
            (self.errors, self.ulps, self.band_overflow) = (None, None, true);
        }
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

/// Where a pair lies against the band: (above, below, finite, |a-b|, |b|); non-finite pairs
/// neither above nor below.
#[inline(always)]
fn sides(x: f64, y: f64, band: Band) -> (bool, bool, bool, f64, f64) {
    let fin = x.is_finite() & y.is_finite();
    let ab = y.abs();
    (fin & (ab >= band.hi), fin & (ab < band.lo), fin, (x - y).abs(), ab)
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
    /// One block of decoded pairs that may hold NaN or Inf; `g` counts the pairs kept. (An
    /// all-finite block's sums come with its moments: [`BandSums::add_block`].)
    #[inline(always)]
    pub fn add<const W: usize>(&mut self, a: &[f64], b: &[f64], band: Band, g: &mut Gathered) {
        // A branch-free sweep (it vectorises), then, only if some pair fell inside the band, a
        // second to keep those pairs.
        let [sum_hi, max_hi, sum_lo, max_lo, n_hi, n_lo, n_in] =
            lanes::<W, _, { ops([Add, Max, Add, Max, Add, Add, Add]) }>(
                a,
                b,
                #[inline(always)]
                |x: F<W>, y: F<W>| {
                    let (zero, ninf) = (F::splat(0.0), F::splat(f64::NEG_INFINITY));
                    let (d, ab, fin) = ((x - y).abs(), y.abs(), x.is_finite().and(y.is_finite()));
                    let (hi, lo) = (fin.and(ab.ge(F::splat(band.hi))), fin.and(ab.lt(F::splat(band.lo))));
                    let r = hi.select(d / ab, zero);
                    let inside = fin.and(hi.not()).and(lo.not());
                    [r, hi.select(r, ninf), lo.select(d, zero), lo.select(d, ninf), hi.one(), lo.one(), inside.one()]
                },
            );
        // Counts summed as f64 are exact (a block is far below 2^53).
        let block = BandBlock { n_hi: n_hi as u64, n_lo: n_lo as u64, sum_hi, max_hi, sum_lo, max_lo };
        self.add_block(block, n_in as usize, a, b, band, g);
    }

    /// One block's sums, and its `n_in` pairs inside the band kept (found by a sweep that
    /// stops at the last of them).
    #[inline(always)]
    pub fn add_block(&mut self, s: BandBlock, n_in: usize, a: &[f64], b: &[f64], band: Band, g: &mut Gathered) {
        (self.n_hi, self.n_lo) = (self.n_hi + s.n_hi, self.n_lo + s.n_lo);
        self.sum_hi += s.sum_hi;
        self.max_hi = self.max_hi.max(s.max_hi);
        self.sum_lo += s.sum_lo;
        self.max_lo = self.max_lo.max(s.max_lo);
        let mut left = n_in;
        g.band_kept += left;
        if g.band_overflow {
            return;
        }
        for (&x, &y) in a.iter().zip(b) {
            if left == 0 {
                break;
            }
            let (hi, lo, fin, d, ab) = sides(x, y, band);
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
            part.add::<4>(ca, cb, band, &mut g);
            sums.merge(part);
        }
        for floor in [0.01, 0.05, 0.199] {
            let (want, got) = (Floored::of(&a, &b, floor), sums.floored(floor));
            assert_eq!((got.n, got.max), (want.n, want.max), "floor {floor}");
            assert!((got.sum - want.sum).abs() <= 1e-12 * want.sum, "floor {floor}: {} vs {}", got.sum, want.sum);
        }
    }

    #[test]
    fn a_worker_over_its_share_gives_up_everything() {
        let plan = Plan { errors: Some(Windows::new(vec![(0.5, 2.0)])), per_worker: 10, ..Default::default() };
        let mut g = Gathered::new(&plan);
        let req = plan.errors.as_ref().unwrap();
        for _ in 0..4 {
            req.offer(1.0, g.errors.as_mut().unwrap());
        }
        g.band_kept = 3;
        g.check(&plan);
        assert!(g.errors.is_some() && !g.band_overflow, "4 + 2 x 3 = 10 values: within the share");
        g.band_kept = 4;
        g.check(&plan);
        assert!(g.errors.is_none() && g.ulps.is_none() && g.band_overflow);
    }

    #[test]
    fn windows_place_the_wanted_ranks_exactly() {
        // Values with ties, zeros and a wide spread; the "sample" is every 7th value.
        let values: Vec<f64> = (0..20_000u64)
            .map(|i| if i % 11 == 0 { 0.0 } else { ((i * 7919) % 4001) as f64 * 1e-4 * (1 + i % 3) as f64 })
            .collect();
        let mut sample: Vec<f64> = values.iter().step_by(7).copied().collect();
        sample.sort_by(f64::total_cmp);
        let (w, cost) = windows(&sample, &QUANTILES, 7.0).unwrap();
        assert!(cost < values.len() as f64 / 2.0, "windows, not everything: {cost}");
        // Offered one by one and by blocks (with a short last block): the same findings.
        let (mut one, mut blocks) = (w.out(), w.out());
        values.iter().for_each(|&v| w.offer(v, &mut one));
        let mut flags = [0; BLOCK];
        values.chunks(BLOCK).for_each(|b| w.offer_block(b, &mut flags, &mut blocks));
        let ranks: Vec<u64> = QUANTILES.iter().map(|q| (q * (values.len() - 1) as f64) as u64).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let want: Vec<Option<f64>> = ranks.iter().map(|&r| Some(sorted[r as usize])).collect();
        assert_eq!(w.settle(&ranks, one), want, "every rank inside its window, placed exactly");
        assert_eq!(w.settle(&ranks, blocks), want);
        assert!(windows(&[0.0; 10], &[0.5], 1.0).is_none(), "all zeros: nothing to keep");
    }

    #[test]
    fn ties_are_counted_not_kept() {
        // Nearly every value is 0.5: the windows of the median and the 90th percentile are
        // that one value, and place their ranks without keeping a single value.
        let values: Vec<f64> =
            (0..50_000u64).map(|i| if i % 1000 == 7 { 0.25 + i as f64 * 1e-6 } else { 0.5 }).collect();
        let mut sample: Vec<f64> = values.iter().step_by(5).copied().collect();
        sample.sort_by(f64::total_cmp);
        let (w, _) = windows(&sample, &[0.5, 0.9], 5.0).unwrap();
        let (mut flags, mut out) = ([0; BLOCK], w.out());
        values.chunks(BLOCK).for_each(|b| w.offer_block(b, &mut flags, &mut out));
        assert_eq!(out.kept(), 0);
        assert_eq!(w.settle(&[25_000, 45_000], out), vec![Some(0.5), Some(0.5)]);
    }

    #[test]
    fn a_rank_outside_every_window_is_left_open() {
        let w = Windows::new(vec![(1.001, 1.002), (1.004, 1.005)]);
        let values = [0.0, 0.5, 1.0, 1.0015, 1.003, 1.0045, 1.02, 2.0];
        let mut out = w.out();
        w.offer_block(&values, &mut [0; 8], &mut out);
        assert_eq!(w.settle(&[3, 4, 5, 0], out), vec![Some(1.0015), None, Some(1.0045), None]);
    }
}
