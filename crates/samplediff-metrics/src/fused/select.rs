//! Exact order statistics (percentiles, the ULP median) of a value stream that is read in
//! passes, in bounded memory.
//!
//! No single pass can give exact quantiles in bounded memory, so this is a radix selection
//! over the values' bit patterns (for non-negative floats the bits sort like the values):
//! a first pass counts the top 16 bits of every non-zero value ([`Histogram`]; the main pass,
//! where the sample planned no windows, else a pass of its own when they missed); the wanted
//! ranks then fall in a few buckets. A further pass either collects those buckets' values
//! (when they fit in [`COLLECT_BUDGET`]) and selects the ranks among them, or counts their next 16 bits. Typical
//! data needs one extra pass; values that share 32 leading bits by the million need more, and
//! 63 bits pin a value down, so it ends after at most four.

/// Bits below each level's prefix: level L's key is `bits >> SHIFTS[L]`.
const SHIFTS: [u32; 4] = [47, 31, 15, 0];

/// The first level's key: the top 16 bits of a non-negative float (11 exponent bits, 5 of
/// the mantissa).
#[inline(always)]
fn key16(v: f64) -> u64 {
    v.to_bits() >> SHIFTS[0]
}

/// Most values one pass may keep (8 bytes each: 256 MiB).
pub(crate) const COLLECT_BUDGET: u64 = 1 << 25;

/// Counts of the next bits under one prefix; allocated on first use (small tensors stay cheap).
///
/// Each bucket has [`COPIES`] adjacent counters, chosen by the caller's lane: neighbouring
/// elements usually fall in the same bucket, and incrementing one counter back to back would
/// make every increment wait for the previous store.
#[derive(Clone, Debug, Default)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
}

/// Counters per bucket.
pub(crate) const COPIES: usize = 4;

impl Histogram {
    #[inline(always)]
    pub fn add(&mut self, bucket: usize, lane: usize) {
        if self.counts.is_empty() {
            self.counts = vec![0; COPIES << 16];
        }
        self.counts[bucket * COPIES + lane % COPIES] += 1;
    }

    pub fn merge(&mut self, o: &Histogram) {
        if o.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = o.counts.clone();
        } else {
            self.counts.iter_mut().zip(&o.counts).for_each(|(x, y)| *x += y);
        }
    }

    /// Count per bucket, in bucket order.
    fn totals(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.chunks_exact(COPIES).map(|c| c.iter().sum())
    }

    /// The bucket holding ascending rank `rank` among the counted values, its count and the
    /// rank within it.
    fn locate(&self, rank: u64) -> (u64, u64, u64) {
        locate(self.totals(), rank)
    }
}

/// The bucket of `totals` (counts in bucket order) holding ascending rank `rank`, its count and
/// the rank within it.
fn locate(totals: impl Iterator<Item = u64>, mut rank: u64) -> (u64, u64, u64) {
    for (bucket, c) in totals.enumerate() {
        if rank < c {
            return (bucket as u64, c, rank);
        }
        rank -= c;
    }
    unreachable!("rank beyond the histogram's total")
}

/// The first pass's view of one stream: how many zeros, and the top-16-bit histogram of the rest.
#[derive(Clone, Debug, Default)]
pub(crate) struct FirstPass {
    pub zero: u64,
    pub hist: Histogram,
}

impl FirstPass {
    /// One value, from the caller's lane `lane` (any number; see [`Histogram`]). Branch-free:
    /// a zero is counted and lands in bucket 0 too, whose total [`FirstPass::totals`] corrects
    /// (data with many zeros would otherwise mispredict a branch every few elements).
    #[inline(always)]
    pub fn add(&mut self, v: f64, lane: usize) {
        self.zero += (v == 0.0) as u64;
        self.hist.add(key16(v) as usize, lane);
    }

    /// A block of values: zeros are counted by a loop of their own, which vectorises.
    #[inline(always)]
    pub fn add_block(&mut self, values: &[f64]) {
        self.zero += values.iter().map(|&v| (v == 0.0) as u64).sum::<u64>();
        for (j, &v) in values.iter().enumerate() {
            self.hist.add(key16(v) as usize, j);
        }
    }

    /// Count of non-zero values per 16-bit key, in key order.
    fn totals(&self) -> impl Iterator<Item = u64> + '_ {
        self.hist.totals().enumerate().map(|(k, c)| if k == 0 { c - self.zero } else { c })
    }

    /// The key holding ascending rank `rank` among the non-zero values, its count and the rank
    /// within it.
    fn locate(&self, rank: u64) -> (u64, u64, u64) {
        locate(self.totals(), rank)
    }

    pub fn merge(&mut self, o: &FirstPass) {
        self.zero += o.zero;
        self.hist.merge(&o.hist);
    }
}

#[derive(Clone, Copy, Debug)]
enum Where {
    Known(f64),
    /// Among the values with `bits >> SHIFTS[level] == prefix` (`count` of them), at `rank`.
    Bucket {
        level: usize,
        prefix: u64,
        count: u64,
        rank: u64,
    },
}

/// What the next pass must do for one stream: at `level`, keep the values under the `collect`
/// prefixes and count the next bits under the `refine` prefixes (both sorted).
#[derive(Clone, Debug, Default)]
pub(crate) struct Request {
    level: usize,
    pub collect: Vec<u64>,
    pub refine: Vec<u64>,
    /// One bit per first-level key under which some prefix lies: most values are turned
    /// away by one load instead of two searches.
    wanted16: Vec<u64>,
}

/// One pass's findings for a [`Request`], per worker; merged by [`PassOut::merge`].
#[derive(Clone, Debug, Default)]
pub(crate) struct PassOut {
    collected: Vec<Vec<f64>>,
    sub: Vec<Histogram>,
}

/// The first-level keys under which some of `prefixes` (at `level`) lie, one bit per key.
fn wanted16<'a>(prefixes: impl Iterator<Item = &'a u64>, level: usize) -> Vec<u64> {
    let mut wanted = vec![0; (1 << 16) / 64];
    for &prefix in prefixes {
        let k16 = (prefix >> (SHIFTS[0] - SHIFTS[level])) as usize;
        wanted[k16 / 64] |= 1 << (k16 % 64);
    }
    wanted
}

impl Request {
    pub fn out(&self) -> PassOut {
        PassOut { collected: vec![vec![]; self.collect.len()], sub: vec![Histogram::default(); self.refine.len()] }
    }

    /// Offer one value to the pass.
    #[inline(always)]
    pub fn offer(&self, v: f64, out: &mut PassOut) {
        let k16 = key16(v) as usize;
        if v == 0.0 || self.wanted16[k16 / 64] >> (k16 % 64) & 1 == 0 {
            return;
        }
        let bits = v.to_bits();
        let key = bits >> SHIFTS[self.level];
        if let Ok(i) = self.collect.binary_search(&key) {
            out.collected[i].push(v);
        } else if let Ok(i) = self.refine.binary_search(&key) {
            let width = SHIFTS[self.level] - SHIFTS[self.level + 1];
            out.sub[i].add(((bits >> SHIFTS[self.level + 1]) & ((1 << width) - 1)) as usize, 0);
        }
    }
}

impl PassOut {
    pub fn merge(&mut self, o: PassOut) {
        for (x, y) in self.collected.iter_mut().zip(o.collected) {
            x.extend(y);
        }
        for (x, y) in self.sub.iter_mut().zip(&o.sub) {
            x.merge(y);
        }
    }
}

/// The values at a set of ascending ranks of a stream, resolved pass by pass.
pub(crate) struct Selection {
    /// One place per rank asked for, in the order asked.
    wanted: Vec<Where>,
}

impl Selection {
    /// `ranks` (0-based, ascending order of the values) among all values of `first`.
    /// `integers`: the values are whole numbers (ULP distances), so a bucket narrower than 1
    /// holds a single possible value and needs no further pass.
    pub fn new(ranks: &[u64], first: &FirstPass, integers: bool) -> Self {
        let wanted = ranks
            .iter()
            .map(|&r| {
                if r < first.zero {
                    return Where::Known(0.0);
                }
                let (prefix, count, rank) = first.locate(r - first.zero);
                let (lo, hi) = (f64::from_bits(prefix << SHIFTS[0]), f64::from_bits((prefix + 1) << SHIFTS[0]));
                if integers && lo.fract() == 0.0 && hi - lo <= 1.0 {
                    return Where::Known(lo);
                }
                Where::Bucket { level: 0, prefix, count, rank }
            })
            .collect();
        Self { wanted }
    }

    /// Ranks whose `values` are already known (found without a histogram).
    pub fn known(values: Vec<f64>) -> Self {
        Self { wanted: values.into_iter().map(Where::Known).collect() }
    }

    /// Settle every place whose value was found another way (`found`, in the order of the
    /// ranks).
    pub fn settle_found(&mut self, found: &[Option<f64>]) {
        for (w, v) in self.wanted.iter_mut().zip(found) {
            if let Some(v) = *v {
                *w = Where::Known(v);
            }
        }
    }

    /// The pass still needed, if any.
    pub fn request(&self) -> Option<Request> {
        let mut buckets: Vec<(u64, u64, usize)> = self
            .wanted
            .iter()
            .filter_map(|w| match *w {
                Where::Bucket { level, prefix, count, .. } => Some((count, prefix, level)),
                Where::Known(_) => None,
            })
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        let level = buckets.first()?.2;
        let mut req = Request { level, ..Default::default() };
        let mut kept = 0;
        // Smallest buckets are collected first; what does not fit is refined.
        for (count, prefix, _) in buckets {
            if kept + count <= COLLECT_BUDGET {
                kept += count;
                req.collect.push(prefix);
            } else {
                req.refine.push(prefix);
            }
        }
        req.collect.sort_unstable();
        req.refine.sort_unstable();
        req.wanted16 = wanted16(req.collect.iter().chain(&req.refine), level);
        Some(req)
    }

    /// Take in a pass's merged findings.
    pub fn resolve(&mut self, req: &Request, mut out: PassOut) {
        for w in &mut self.wanted {
            let Where::Bucket { level, prefix, rank, .. } = *w else {
                continue;
            };
            if let Ok(i) = req.collect.binary_search(&prefix) {
                // A selection, not a sort: linear in the bucket's size.
                let v = &mut out.collected[i];
                *w = Where::Known(*v.select_nth_unstable_by(rank as usize, f64::total_cmp).1);
            } else if let Ok(i) = req.refine.binary_search(&prefix) {
                let (sub, count, rank) = out.sub[i].locate(rank);
                let width = SHIFTS[level] - SHIFTS[level + 1];
                let prefix = (prefix << width) | sub;
                *w = if level + 1 == SHIFTS.len() - 1 {
                    Where::Known(f64::from_bits(prefix))
                } else {
                    Where::Bucket { level: level + 1, prefix, count, rank }
                };
            }
        }
    }

    /// The values, in the order of the ranks given; `None` until every pass has run.
    pub fn values(&self) -> Option<Vec<f64>> {
        self.wanted.iter().map(|w| if let Where::Known(v) = w { Some(*v) } else { None }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the selection to the end over `values`, with a tiny budget forcing refinement.
    fn select(values: &[f64], ranks: &[u64]) -> (Vec<f64>, usize) {
        let mut first = FirstPass::default();
        values.iter().enumerate().for_each(|(i, &v)| first.add(v, i));
        let mut sel = Selection::new(ranks, &first, false);
        let mut passes = 0;
        while let Some(req) = sel.request() {
            let mut out = req.out();
            values.iter().for_each(|&v| req.offer(v, &mut out));
            sel.resolve(&req, out);
            passes += 1;
        }
        (sel.values().unwrap(), passes)
    }

    #[test]
    fn equals_sorting() {
        let values: Vec<f64> =
            (0..5000).map(|i| ((i * 7919) % 1013) as f64 * 1e-3 + (i % 3 == 0) as u8 as f64).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let ranks = [0, 1, 2499, 2500, 4499, 4999];
        let (got, passes) = select(&values, &ranks);
        assert_eq!(got, ranks.iter().map(|&r| sorted[r as usize]).collect::<Vec<_>>());
        assert_eq!(passes, 1);
    }

    #[test]
    fn many_equal_values_refine_to_the_exact_bits() {
        // 2^25 copies would exceed the budget; the refinement path is exercised by a prefix
        // collision instead: values equal in their top 47 bits but different below.
        let base = 1.5f64.to_bits();
        let values: Vec<f64> = (0..1000u64).map(|i| f64::from_bits(base + (i * 7) % 1000)).collect();
        let mut first = FirstPass::default();
        values.iter().enumerate().for_each(|(i, &v)| first.add(v, i));
        let mut sel = Selection::new(&[500], &first, false);
        let req = sel.request().unwrap();
        // Force the refine branch as a huge bucket would.
        let req = Request { level: req.level, collect: vec![], refine: req.collect, wanted16: req.wanted16 };
        let mut out = req.out();
        values.iter().for_each(|&v| req.offer(v, &mut out));
        sel.resolve(&req, out);
        while let Some(req) = sel.request() {
            let mut out = req.out();
            values.iter().for_each(|&v| req.offer(v, &mut out));
            sel.resolve(&req, out);
        }
        assert_eq!(sel.values().unwrap(), vec![f64::from_bits(base + 500)]);
    }

    #[test]
    fn small_whole_numbers_need_no_pass() {
        let values: Vec<f64> = (0..1000).map(|i| (i % 40) as f64).collect();
        let mut first = FirstPass::default();
        values.iter().enumerate().for_each(|(i, &v)| first.add(v, i));
        let sel = Selection::new(&[0, 499, 500, 999], &first, true);
        assert!(sel.request().is_none());
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(sel.values().unwrap(), vec![sorted[0], sorted[499], sorted[500], sorted[999]]);
    }

    #[test]
    fn zeros_need_no_pass() {
        let (got, passes) = select(&[0.0, 0.0, 0.0, 2.0], &[0, 2]);
        assert_eq!((got, passes), (vec![0.0, 0.0], 0));
    }
}
