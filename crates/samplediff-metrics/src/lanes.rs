//! Sums, maxima and minima of per-pair quantities over a decoded block, in [`LANES`]
//! independent accumulators: element i of the block goes to lane i % LANES, and the lanes
//! combine in a fixed order at the end, so the result does not depend on the instruction set.
//!
//! The quantities are written on [`F8`], eight lanes at a time, each operation spelt out lane by
//! lane: the compiler packs each into one AVX-512 instruction (two in AVX2, four in SSE2).
//! Written on scalars per lane instead, sweeps of more than four quantities stayed scalar
//! (2026-12-06: one add instruction per quantity and element). The rare paths with NaN or Inf
//! (`Moments::of_lanes`, `Floored::of`) keep scalar loops of their own.
//!
//! Why eight lanes and not four: the lane count fixes the summation order, so it is one for
//! every machine (the same files give the same bits everywhere), and it is a trade. On this
//! project's 2-core Xeon VM (2026-12-06, 2 x 1 GiB float32, median of 4-6 alternated runs),
//! eight lanes took the AVX-512 build from 1.51 to 1.34 s, and cost the AVX2 build (forced with
//! `SAMPLEDIFF_SIMD=avx2`) 1.52 -> 1.66 s and the SSE2 baseline 2.51 -> 2.79 s: with 16 vector
//! registers a sweep's eight-lane accumulators no longer all fit. Machines that compare large
//! files are mostly servers, and those have AVX-512.

use std::ops::{Add, Div, Mul, Sub};

/// `[e(0), e(1), .., e(7)]`: every lane spelt out.
macro_rules! each {
    (|$l:ident| $e:expr) => {{
        let f = |$l: usize| $e;
        [f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7)]
    }};
}

/// Independent accumulators per quantity.
pub(crate) const LANES: usize = 8;

/// Eight lanes of f64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F8(pub [f64; LANES]);

/// Eight lane conditions, each all ones or all zeros (the form vector compares give, and
/// selects take, without conversion: as `bool`s they stayed partly scalar).
#[derive(Clone, Copy, Debug)]
pub(crate) struct M8(pub [u64; LANES]);

impl F8 {
    #[inline(always)]
    pub fn splat(v: f64) -> Self {
        Self([v; LANES])
    }

    #[inline(always)]
    fn zip(self, o: F8, f: impl Fn(f64, f64) -> f64) -> F8 {
        let (x, y) = (self.0, o.0);
        F8(each!(|l| f(x[l], y[l])))
    }

    #[inline(always)]
    fn test(self, o: F8, f: impl Fn(f64, f64) -> bool) -> M8 {
        let (x, y) = (self.0, o.0);
        M8(each!(|l| (f(x[l], y[l]) as u64).wrapping_neg()))
    }

    #[inline(always)]
    pub fn abs(self) -> F8 {
        self.zip(self, |x, _| x.abs())
    }

    #[inline(always)]
    pub fn lt(self, o: F8) -> M8 {
        self.test(o, |x, y| x < y)
    }

    #[inline(always)]
    pub fn le(self, o: F8) -> M8 {
        self.test(o, |x, y| x <= y)
    }

    #[inline(always)]
    pub fn gt(self, o: F8) -> M8 {
        self.test(o, |x, y| x > y)
    }

    #[inline(always)]
    pub fn ge(self, o: F8) -> M8 {
        self.test(o, |x, y| x >= y)
    }

    #[inline(always)]
    pub fn eq(self, o: F8) -> M8 {
        self.test(o, |x, y| x == y)
    }

    #[inline(always)]
    pub fn ne(self, o: F8) -> M8 {
        self.test(o, |x, y| x != y)
    }

    #[inline(always)]
    pub fn is_finite(self) -> M8 {
        self.test(self, |x, _| x.is_finite())
    }
}

impl M8 {
    #[inline(always)]
    fn zip(self, o: M8, f: impl Fn(u64, u64) -> u64) -> M8 {
        let (x, y) = (self.0, o.0);
        M8(each!(|l| f(x[l], y[l])))
    }

    #[inline(always)]
    pub fn and(self, o: M8) -> M8 {
        self.zip(o, |x, y| x & y)
    }

    #[inline(always)]
    pub fn not(self) -> M8 {
        self.zip(self, |x, _| !x)
    }

    #[inline(always)]
    fn bits(v: F8) -> [u64; LANES] {
        v.0.map(f64::to_bits)
    }

    /// `a` where the condition holds, else `b` (bitwise).
    #[inline(always)]
    pub fn select(self, a: F8, b: F8) -> F8 {
        let (m, a, b) = (self.0, M8::bits(a), M8::bits(b));
        F8(each!(|l| f64::from_bits((m[l] & a[l]) | (!m[l] & b[l]))))
    }

    /// 1.0 where the condition holds, else 0.0: counts summed as f64 (exact below 2^53).
    #[inline(always)]
    pub fn one(self) -> F8 {
        self.select(F8::splat(1.0), F8::splat(0.0))
    }
}

macro_rules! lanewise {
    ($trait:ident, $method:ident, $op:tt) => {
        impl $trait for F8 {
            type Output = F8;
            #[inline(always)]
            fn $method(self, o: F8) -> F8 {
                self.zip(o, |x, y| x $op y)
            }
        }
    };
}
lanewise!(Add, add, +);
lanewise!(Sub, sub, -);
lanewise!(Mul, mul, *);
lanewise!(Div, div, /);

/// How [`lanes`] reduces one quantity.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Add,
    Max,
    Min,
}

impl Op {
    fn identity(self) -> f64 {
        match self {
            Op::Add => 0.0,
            Op::Max => f64::NEG_INFINITY,
            Op::Min => f64::INFINITY,
        }
    }

    /// Fold `v` into the accumulator `a`. Compare-and-select rather than f64::max/min: one
    /// instruction instead of three (no NaN handling), and the same result: a NaN `v` is
    /// skipped either way, and accumulators start at -inf/+inf and never become NaN.
    #[inline(always)]
    fn apply(self, a: f64, v: f64) -> f64 {
        match self {
            Op::Add => a + v,
            Op::Max => {
                if v > a {
                    v
                } else {
                    a
                }
            }
            Op::Min => {
                if v < a {
                    v
                } else {
                    a
                }
            }
        }
    }

    /// The lanes combined in a fixed order.
    fn fold(self, v: [f64; LANES]) -> f64 {
        match self {
            Op::Add => fold(v),
            Op::Max => v.into_iter().fold(f64::NEG_INFINITY, f64::max),
            Op::Min => v.into_iter().fold(f64::INFINITY, f64::min),
        }
    }
}

/// `Q` quantities of every pair (`f` of eight pairs at a time) reduced over the block.
#[inline(always)]
pub(crate) fn lanes<const Q: usize>(a: &[f64], b: &[f64], f: impl Fn(F8, F8) -> [F8; Q], ops: [Op; Q]) -> [f64; Q] {
    let mut acc: [F8; Q] = ops.map(|op| F8::splat(op.identity()));
    let whole = a.len() / LANES * LANES;
    for (ca, cb) in a[..whole].chunks_exact(LANES).zip(b[..whole].chunks_exact(LANES)) {
        let v = f(F8(each!(|l| ca[l])), F8(each!(|l| cb[l])));
        for q in 0..Q {
            let op = ops[q];
            acc[q] = acc[q].zip(v[q], |a, v| op.apply(a, v));
        }
    }
    // The last few pairs: in lanes 0.., the unused lanes computed on zeros and left out. They
    // go into accumulators of their own, then into the main ones (x + 0.0 is x: no
    // accumulator starting at +0.0 becomes -0.0): indexed by a variable lane, the main ones
    // lived in memory, and the loop above stored every one of them on every step.
    let tail = a.len() - whole;
    if tail > 0 {
        let (mut x, mut y) = ([0.0; LANES], [0.0; LANES]);
        x[..tail].copy_from_slice(&a[whole..]);
        y[..tail].copy_from_slice(&b[whole..]);
        let v = f(F8(x), F8(y));
        let mut last: [F8; Q] = ops.map(|op| F8::splat(op.identity()));
        for q in 0..Q {
            for l in 0..tail {
                last[q].0[l] = ops[q].apply(last[q].0[l], v[q].0[l]);
            }
        }
        for q in 0..Q {
            let op = ops[q];
            acc[q] = acc[q].zip(last[q], |a, v| op.apply(a, v));
        }
    }
    std::array::from_fn(|q| ops[q].fold(acc[q].0))
}

/// Sum of the lanes in a fixed order.
#[inline(always)]
pub(crate) fn fold(v: [f64; LANES]) -> f64 {
    ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lane l holds elements l, l + 8, ... in order, the tail included; lanes combine as
    /// ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)).
    #[test]
    fn lanes_reduce_in_the_documented_order() {
        let a: Vec<f64> = (0..1023).map(|i| ((i * 7919) % 1013) as f64 * 0.1 - 40.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x * 0.5 + 1.0).collect();
        let [sum, max, min] = lanes(&a, &b, |x, y| [x * y, x - y, x - y], [Op::Add, Op::Max, Op::Min]);
        let mut acc = [0.0; LANES];
        a.iter().zip(&b).enumerate().for_each(|(i, (x, y))| acc[i % LANES] += x * y);
        assert_eq!(sum.to_bits(), fold(acc).to_bits());
        let d = a.iter().zip(&b).map(|(x, y)| x - y);
        assert_eq!((max, min), (d.clone().fold(f64::MIN, f64::max), d.fold(f64::MAX, f64::min)));
    }

    #[test]
    fn masks_select_and_count() {
        let (x, y) = (F8([1.0, f64::NAN, -0.0, 3.0, 0.0, f64::INFINITY, -2.0, 0.5]), F8::splat(0.0));
        let picked = [1.0, 9.0, 9.0, 3.0, 9.0, f64::INFINITY, 9.0, 0.5];
        assert_eq!(x.gt(y).select(x, F8::splat(9.0)).0.map(f64::to_bits), picked.map(f64::to_bits));
        assert_eq!(x.is_finite().and(x.ne(y)).one().0, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(x.eq(y).not().one().0, [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
    }
}
