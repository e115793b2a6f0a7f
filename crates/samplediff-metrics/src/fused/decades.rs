//! The decade histogram of |a-b| in the same pass as everything else.
//!
//! A decade bin [10^k, 10^(k+1)) holds the errors below 10^(k+1) less those below 10^k, so
//! the histogram is a count of errors below each power of ten. The sample read before the main
//! pass (see `predict`) says which powers matter, its [`Edges`]: the main pass counts the
//! errors below each edge with one branch-free comparison per error and edge (the loops
//! vectorise), and puts each of the few errors outside the edges (non-zero below the first, at
//! or above the last) in its decade one by one. Without edges (small tensors, no sample) every
//! non-zero error goes that way. (A histogram keyed by the errors' bits, as before, cost three
//! times the instructions: one scattered increment and one table test per error.)

use crate::quantiles::{MAX_K, MIN_K, decade, pow10};

/// At most this many edges: each costs about one instruction per error.
const MAX_EDGES: usize = 12;

/// The powers of ten 10^k0, 10^(k0+1), ... that the main pass counts below.
#[derive(Clone, Debug, Default)]
pub(crate) struct Edges {
    k0: i32,
    powers: Vec<f64>,
}

impl Edges {
    /// Edges around errors seen between `min_nonzero` and `max` (finite, positive): a decade
    /// of margin either side, fewer below when there would be too many (smaller errors are the
    /// rarer ones on real data: a decade lower, a tenth as many). Of 2^28 errors, about 2^12
    /// lie beyond a sample of 2^16's largest, and each costs at most a look at its block's
    /// errors one by one: a wider margin would cost every error a comparison more.
    pub fn around(min_nonzero: f64, max: f64) -> Self {
        let hi = decade(max) + 1;
        // (10^MIN_K rounds to 0: the first edge is a positive number.)
        let lo = (decade(min_nonzero) - 1).max(hi - MAX_EDGES as i32 + 1).max(MIN_K + 1);
        Self { k0: lo, powers: (lo..=hi).map(pow10).collect() }
    }
}

/// One worker's decade counts.
#[derive(Clone, Debug)]
pub(crate) struct Decades {
    edges: Edges,
    /// Per edge: errors (zeros included) below it.
    below: Vec<u64>,
    /// Zeros counted one by one (blocks with a NaN or an Inf, no edges).
    zero: u64,
    /// Non-zero errors below the first edge (with `below[0]`, the zeros of all-finite blocks).
    nonzero_below_first: u64,
    /// Per decade from MIN_K: the non-zero errors outside the edges; allocated on first use.
    outside: Vec<u64>,
    /// The edges' span: an error is inside when `first <= d < last` (never, without two edges).
    first: f64,
    last: f64,
}

impl Decades {
    pub fn new(edges: &Edges) -> Self {
        let (first, last) = match edges.powers.as_slice() {
            [first, .., last] => (*first, *last),
            _ => (f64::INFINITY, f64::NEG_INFINITY),
        };
        let below = vec![0; edges.powers.len()];
        Self { edges: edges.clone(), below, zero: 0, nonzero_below_first: 0, outside: vec![], first, last }
    }

    /// Exact zeros counted.
    pub fn zero(&self) -> u64 {
        self.zero + self.below.first().map_or(0, |b| b - self.nonzero_below_first)
    }

    /// One error `d >= 0` (blocks with a NaN or an Inf go value by value).
    #[inline(always)]
    pub fn add(&mut self, d: f64) {
        if self.below.is_empty() {
            self.zero += (d == 0.0) as u64;
        }
        self.below.iter_mut().zip(&self.edges.powers).for_each(|(n, &p)| *n += (d < p) as u64);
        self.add_outside(d);
    }

    /// The errors of an all-finite block, whose smallest non-zero error is `min_nonzero` and
    /// largest `max` (known from its moments): only a block reaching outside the edges is
    /// looked at error by error. Its zeros are those below the first edge less the non-zero
    /// ones counted there.
    #[inline(always)]
    pub fn add_block(&mut self, d: &[f64], min_nonzero: f64, max: f64) {
        if self.below.is_empty() {
            self.zero += d.iter().map(|&v| (v == 0.0) as u64).sum::<u64>();
        }
        for (n, &p) in self.below.iter_mut().zip(&self.edges.powers) {
            *n += d.iter().map(|&v| (v < p) as u64).sum::<u64>();
        }
        if min_nonzero < self.first || max >= self.last {
            d.iter().for_each(|&v| self.add_outside(v));
        }
    }

    #[inline(always)]
    fn add_outside(&mut self, d: f64) {
        if d != 0.0 && !(self.first <= d && d < self.last) {
            self.nonzero_below_first += (d < self.first) as u64;
            if self.outside.is_empty() {
                self.outside = vec![0; (MAX_K - MIN_K + 1) as usize];
            }
            self.outside[(decade(d) - MIN_K) as usize] += 1;
        }
    }

    pub fn merge(&mut self, o: &Decades) {
        self.zero += o.zero;
        self.nonzero_below_first += o.nonzero_below_first;
        self.below.iter_mut().zip(&o.below).for_each(|(x, y)| *x += y);
        if self.outside.is_empty() {
            self.outside = o.outside.clone();
        } else if !o.outside.is_empty() {
            self.outside.iter_mut().zip(&o.outside).for_each(|(x, y)| *x += y);
        }
    }

    /// How many non-zero errors are below 10^k.
    pub fn count_below(&self, k: i32) -> u64 {
        let inside = match self.below.len() {
            0 | 1 => 0,
            n => self.below[(k - self.edges.k0).clamp(0, n as i32 - 1) as usize] - self.below[0],
        };
        let outside: u64 = self.outside.iter().take((k - MIN_K).max(0) as usize).sum();
        inside + outside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: [f64; 13] =
        [0.0, 1e-3, 9.999e-4, 1.0001e-3, 0.5, 1.0, 0.999_999, 10.0, 5e-320, 2e-310, 0.0, 3e5, f64::MAX];

    fn counted(edges: &Edges, block: bool) -> Decades {
        let mut d = Decades::new(edges);
        if block {
            let min = VALUES.iter().copied().filter(|&v| v > 0.0).fold(f64::INFINITY, f64::min);
            d.add_block(&VALUES, min, f64::MAX);
        } else {
            VALUES.iter().for_each(|&v| d.add(v));
        }
        d
    }

    #[test]
    fn counts_below_powers_of_ten_exactly_with_and_without_edges() {
        for edges in [
            Edges::default(),
            Edges::around(1e-3, 0.5),
            Edges::around(1e-300, 1e300),
            Edges::around(1.0, 1.0),
            Edges::around(5e-324, 1e-320),
        ] {
            for block in [false, true] {
                let d = counted(&edges, block);
                assert_eq!(d.zero(), 2);
                for k in [-330, -322, -309, -4, -3, -2, 0, 1, 2, 5, 6, 308, 309, 400] {
                    let want = VALUES.iter().filter(|&&v| v > 0.0 && v < pow10(k)).count() as u64;
                    assert_eq!(d.count_below(k), want, "10^{k}, {edges:?}, block {block}");
                }
            }
        }
    }

    #[test]
    fn merged_workers_count_as_one() {
        let edges = Edges::around(1e-4, 1.0);
        let (mut x, mut y) = (Decades::new(&edges), Decades::new(&edges));
        VALUES[..6].iter().for_each(|&v| x.add(v));
        VALUES[6..].iter().for_each(|&v| y.add(v));
        x.merge(&y);
        let whole = counted(&edges, false);
        assert!((-330..=310).all(|k| x.count_below(k) == whole.count_below(k)));
    }
}
