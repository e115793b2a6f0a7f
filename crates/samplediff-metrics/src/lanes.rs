//! Sums, maxima and minima of per-pair quantities over a decoded block, in [`LANES`]
//! independent accumulators: element i of the block goes to lane i % LANES, and the lanes
//! combine in a fixed order at the end, so the result does not depend on the instruction set.
//!
//! The quantities are written on [`F4`], four lanes at a time, each operation spelt out lane by
//! lane: the compiler packs each into one vector instruction (two in SSE2). Written on scalars
//! per lane instead, sweeps of more than four quantities stayed scalar (2026-12-06: one add
//! instruction per quantity and element; on `F4` the whole comparison needs 16% fewer
//! instructions). The rare paths with NaN or Inf (`Moments::of_lanes`, `Floored::of`) keep
//! scalar loops of their own.

use std::ops::{Add, Div, Mul, Sub};

/// Independent accumulators per quantity.
pub(crate) const LANES: usize = 4;

/// Four lanes of f64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F4(pub [f64; LANES]);

/// Four lane conditions, each all ones or all zeros (the form vector compares give, and
/// selects take, without conversion: as `bool`s they stayed partly scalar).
#[derive(Clone, Copy, Debug)]
pub(crate) struct M4(pub [u64; LANES]);

impl F4 {
    #[inline(always)]
    pub fn splat(v: f64) -> Self {
        Self([v; LANES])
    }

    #[inline(always)]
    fn zip(self, o: F4, f: impl Fn(f64, f64) -> f64) -> F4 {
        let (x, y) = (self.0, o.0);
        F4([f(x[0], y[0]), f(x[1], y[1]), f(x[2], y[2]), f(x[3], y[3])])
    }

    #[inline(always)]
    fn test(self, o: F4, f: impl Fn(f64, f64) -> bool) -> M4 {
        let (x, y) = (self.0, o.0);
        let m = |c: bool| (c as u64).wrapping_neg();
        M4([m(f(x[0], y[0])), m(f(x[1], y[1])), m(f(x[2], y[2])), m(f(x[3], y[3]))])
    }

    #[inline(always)]
    pub fn abs(self) -> F4 {
        self.zip(self, |x, _| x.abs())
    }

    #[inline(always)]
    pub fn lt(self, o: F4) -> M4 {
        self.test(o, |x, y| x < y)
    }

    #[inline(always)]
    pub fn le(self, o: F4) -> M4 {
        self.test(o, |x, y| x <= y)
    }

    #[inline(always)]
    pub fn gt(self, o: F4) -> M4 {
        self.test(o, |x, y| x > y)
    }

    #[inline(always)]
    pub fn ge(self, o: F4) -> M4 {
        self.test(o, |x, y| x >= y)
    }

    #[inline(always)]
    pub fn eq(self, o: F4) -> M4 {
        self.test(o, |x, y| x == y)
    }

    #[inline(always)]
    pub fn ne(self, o: F4) -> M4 {
        self.test(o, |x, y| x != y)
    }

    #[inline(always)]
    pub fn is_finite(self) -> M4 {
        self.test(self, |x, _| x.is_finite())
    }
}

impl M4 {
    #[inline(always)]
    fn zip(self, o: M4, f: impl Fn(u64, u64) -> u64) -> M4 {
        let (x, y) = (self.0, o.0);
        M4([f(x[0], y[0]), f(x[1], y[1]), f(x[2], y[2]), f(x[3], y[3])])
    }

    #[inline(always)]
    pub fn and(self, o: M4) -> M4 {
        self.zip(o, |x, y| x & y)
    }

    #[inline(always)]
    pub fn not(self) -> M4 {
        self.zip(self, |x, _| !x)
    }

    #[inline(always)]
    fn bits(v: F4) -> [u64; LANES] {
        v.0.map(f64::to_bits)
    }

    /// `a` where the condition holds, else `b` (bitwise).
    #[inline(always)]
    pub fn select(self, a: F4, b: F4) -> F4 {
        let (m, a, b) = (self.0, M4::bits(a), M4::bits(b));
        let pick = |l: usize| f64::from_bits((m[l] & a[l]) | (!m[l] & b[l]));
        F4([pick(0), pick(1), pick(2), pick(3)])
    }

    /// 1.0 where the condition holds, else 0.0: counts summed as f64 (exact below 2^53).
    #[inline(always)]
    pub fn one(self) -> F4 {
        self.select(F4::splat(1.0), F4::splat(0.0))
    }
}

macro_rules! lanewise {
    ($trait:ident, $method:ident, $op:tt) => {
        impl $trait for F4 {
            type Output = F4;
            #[inline(always)]
            fn $method(self, o: F4) -> F4 {
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

/// `Q` quantities of every pair (`f` of four pairs at a time) reduced over the block.
#[inline(always)]
pub(crate) fn lanes<const Q: usize>(a: &[f64], b: &[f64], f: impl Fn(F4, F4) -> [F4; Q], ops: [Op; Q]) -> [f64; Q] {
    let mut acc: [F4; Q] = ops.map(|op| F4::splat(op.identity()));
    let whole = a.len() / LANES * LANES;
    for (ca, cb) in a[..whole].chunks_exact(LANES).zip(b[..whole].chunks_exact(LANES)) {
        let v = f(F4([ca[0], ca[1], ca[2], ca[3]]), F4([cb[0], cb[1], cb[2], cb[3]]));
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
        let v = f(F4(x), F4(y));
        let mut last: [F4; Q] = ops.map(|op| F4::splat(op.identity()));
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
    (v[0] + v[1]) + (v[2] + v[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lane l holds elements l, l + 4, ... in order, the tail included; lanes combine as
    /// (0 + 1) + (2 + 3).
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
        let (x, y) = (F4([1.0, f64::NAN, -0.0, 3.0]), F4::splat(0.0));
        assert_eq!(x.gt(y).select(x, F4::splat(9.0)).0.map(f64::to_bits), [1.0, 9.0, 9.0, 3.0].map(f64::to_bits));
        assert_eq!(x.is_finite().and(x.ne(y)).one().0, [1.0, 0.0, 0.0, 1.0]);
        assert_eq!(x.eq(y).not().one().0, [1.0, 1.0, 0.0, 1.0]);
    }
}
