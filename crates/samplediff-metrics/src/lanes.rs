//! Sums, maxima and minima of per-pair quantities over a decoded block, in [`LANES`]
//! independent accumulators: element i of the block goes to lane i % LANES, and the lanes
//! combine in a fixed order at the end, so the result does not depend on the instruction set.
//!
//! The quantities are written on [`F`]`<W>`, `W` lanes at a time, each operation spelt out lane
//! by lane: the compiler packs each into vector instructions. Written on scalars per lane
//! instead, sweeps of more than four quantities stayed scalar (2026-12-06: one add instruction
//! per quantity and element). The rare paths with NaN or Inf (`Moments::of_lanes`,
//! `Floored::of`) keep scalar loops of their own.
//!
//! Why eight lanes: the lane count fixes the summation order, so it is one for every machine
//! (the same files give the same bits everywhere); eight fill an AVX-512 register. A sweep of
//! ten quantities then needs twenty AVX2 registers of the sixteen there are, so narrower
//! machines compute the eight lanes `W` at a time ([`lanes`]' `W`: 8 for AVX-512, 4 for AVX2,
//! 2 otherwise), each group's accumulators in registers, each lane summing the same elements
//! in the same order. On this project's 2-core Xeon VM (2026-12-06), eight lanes computed all
//! at once had taken the AVX-512 build from 1.51 to 1.34 s and cost the AVX2 build 1.52 ->
//! 1.66 s and the SSE2 baseline 2.51 -> 2.79 s (2 x 1 GiB float32). Computed `W` at a time
//! (2026-12-08, the 2-core AMD VM, same files, same report bytes): AVX2 1.50 -> 1.38 s, SSE2
//! 3.0 -> 2.1 s (medians of alternated runs).

use std::ops::{Add, Div, Mul, Sub};

/// `[e(0), e(1), .., e(W - 1)]`: every lane spelt out (a loop of constant length, unrolled).
#[inline(always)]
fn each<T: Copy + Default, const W: usize>(e: impl Fn(usize) -> T) -> [T; W] {
    let mut v = [T::default(); W];
    for (l, x) in v.iter_mut().enumerate() {
        *x = e(l);
    }
    v
}

/// Independent accumulators per quantity.
pub(crate) const LANES: usize = 8;

/// Lanes computed at a time by code built for the baseline instruction set: the f64 width of
/// SSE2, NEON and wasm's simd128, each with sixteen registers or more.
pub(crate) const BASELINE_WIDTH: usize = 2;

/// `W` lanes of f64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F<const W: usize>(pub [f64; W]);

/// `W` lane conditions, each all ones or all zeros (the form vector compares give, and
/// selects take, without conversion: as `bool`s they stayed partly scalar).
#[derive(Clone, Copy, Debug)]
pub(crate) struct M<const W: usize>(pub [u64; W]);

impl<const W: usize> F<W> {
    #[inline(always)]
    pub fn splat(v: f64) -> Self {
        Self([v; W])
    }

    #[inline(always)]
    fn zip(self, o: Self, f: impl Fn(f64, f64) -> f64) -> Self {
        let (x, y) = (self.0, o.0);
        F(each(|l| f(x[l], y[l])))
    }

    #[inline(always)]
    fn test(self, o: Self, f: impl Fn(f64, f64) -> bool) -> M<W> {
        let (x, y) = (self.0, o.0);
        M(each(|l| (f(x[l], y[l]) as u64).wrapping_neg()))
    }

    #[inline(always)]
    pub fn abs(self) -> Self {
        self.zip(self, |x, _| x.abs())
    }

    #[inline(always)]
    pub fn lt(self, o: Self) -> M<W> {
        self.test(o, |x, y| x < y)
    }

    #[inline(always)]
    pub fn le(self, o: Self) -> M<W> {
        self.test(o, |x, y| x <= y)
    }

    #[inline(always)]
    pub fn gt(self, o: Self) -> M<W> {
        self.test(o, |x, y| x > y)
    }

    #[inline(always)]
    pub fn ge(self, o: Self) -> M<W> {
        self.test(o, |x, y| x >= y)
    }

    #[inline(always)]
    pub fn eq(self, o: Self) -> M<W> {
        self.test(o, |x, y| x == y)
    }

    #[inline(always)]
    pub fn ne(self, o: Self) -> M<W> {
        self.test(o, |x, y| x != y)
    }

    #[inline(always)]
    pub fn is_finite(self) -> M<W> {
        self.test(self, |x, _| x.is_finite())
    }
}

impl<const W: usize> M<W> {
    #[inline(always)]
    fn zip(self, o: Self, f: impl Fn(u64, u64) -> u64) -> Self {
        let (x, y) = (self.0, o.0);
        M(each(|l| f(x[l], y[l])))
    }

    #[inline(always)]
    pub fn and(self, o: Self) -> Self {
        self.zip(o, |x, y| x & y)
    }

    #[inline(always)]
    pub fn not(self) -> Self {
        self.zip(self, |x, _| !x)
    }

    /// `a` where the condition holds, else `b` (bitwise).
    #[inline(always)]
    pub fn select(self, a: F<W>, b: F<W>) -> F<W> {
        let (m, a, b) = (self.0, a.0.map(f64::to_bits), b.0.map(f64::to_bits));
        F(each(|l| f64::from_bits((m[l] & a[l]) | (!m[l] & b[l]))))
    }

    /// 1.0 where the condition holds, else 0.0: counts summed as f64 (exact below 2^53).
    #[inline(always)]
    pub fn one(self) -> F<W> {
        self.select(F::splat(1.0), F::splat(0.0))
    }
}

macro_rules! lanewise {
    ($trait:ident, $method:ident, $op:tt) => {
        impl<const W: usize> $trait for F<W> {
            type Output = F<W>;
            #[inline(always)]
            fn $method(self, o: F<W>) -> F<W> {
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
    // The numbers are [`ops`]' code.
    Add = 0,
    Max = 1,
    Min = 2,
}

/// The reductions of a sweep's `Q` quantities as one number, two bits each, for [`lanes`]'
/// const parameter: the compiler then builds every sweep for its own reductions. Given as an
/// array argument instead, the ten-quantity sweep kept the ops in registers and branched on
/// each inside its loop (2026-12-08: four instructions per quantity and step).
pub(crate) const fn ops<const Q: usize>(ops: [Op; Q]) -> u32 {
    assert!(Q <= 16, "two bits per quantity in a u32");
    let mut code = 0;
    let mut q = 0;
    while q < Q {
        code |= (ops[q] as u32) << (2 * q);
        q += 1;
    }
    code
}

impl Op {
    /// Quantity `q`'s op in a code made by [`ops`].
    #[inline(always)]
    const fn nth(code: u32, q: usize) -> Op {
        match (code >> (2 * q)) & 3 {
            0 => Op::Add,
            1 => Op::Max,
            _ => Op::Min,
        }
    }

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

/// `Q` quantities of every pair (`f` of `W` pairs at a time) reduced over the block as `OPS`
/// says (made by [`ops`]), in [`LANES`] lanes computed `W` at a time (`W` divides `LANES`).
/// `W` changes which instructions run, never the result. `f` is called in two loops: callers
/// mark it `#[inline(always)]`, as the compiler once left one out of line (2026-12-08: 2.4 s
/// against 1.4 s).
#[inline(always)]
pub(crate) fn lanes<const W: usize, const Q: usize, const OPS: u32>(
    a: &[f64],
    b: &[f64],
    f: impl Fn(F<W>, F<W>) -> [F<W>; Q],
) -> [f64; Q] {
    const { assert!(W > 0 && LANES.is_multiple_of(W)) };
    let mut acc = [[0.0; LANES]; Q];
    let whole = a.len() / LANES * LANES;
    for g in (0..LANES).step_by(W) {
        // Lanes g .. g + W over the whole block, their accumulators in registers.
        let mut part: [F<W>; Q] = std::array::from_fn(|q| F::splat(Op::nth(OPS, q).identity()));
        for (ca, cb) in a[..whole].chunks_exact(LANES).zip(b[..whole].chunks_exact(LANES)) {
            let (ga, gb) = (&ca[g..g + W], &cb[g..g + W]);
            let v = f(F(each(|l| ga[l])), F(each(|l| gb[l])));
            for q in 0..Q {
                let op = Op::nth(OPS, q);
                part[q] = part[q].zip(v[q], |a, v| op.apply(a, v));
            }
        }
        for q in 0..Q {
            acc[q][g..g + W].copy_from_slice(&part[q].0);
        }
    }
    // The last few pairs, each the last of its lane 0..: the unused lanes computed on zeros
    // and left out.
    let tail = a.len() - whole;
    if tail > 0 {
        let (mut x, mut y) = ([0.0; LANES], [0.0; LANES]);
        x[..tail].copy_from_slice(&a[whole..]);
        y[..tail].copy_from_slice(&b[whole..]);
        for g in (0..tail).step_by(W) {
            let v = f(F(each(|l| x[g + l])), F(each(|l| y[g + l])));
            for q in 0..Q {
                for l in 0..W.min(tail - g) {
                    acc[q][g + l] = Op::nth(OPS, q).apply(acc[q][g + l], v[q].0[l]);
                }
            }
        }
    }
    std::array::from_fn(|q| Op::nth(OPS, q).fold(acc[q]))
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
    /// ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)); the same bits whatever the width.
    #[test]
    fn lanes_reduce_in_the_documented_order_at_every_width() {
        fn check<const W: usize>(n: usize) {
            let a: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1013) as f64 * 0.1 - 40.0).collect();
            let b: Vec<f64> = a.iter().map(|x| x * 0.5 + 1.0).collect();
            let f = |x: F<W>, y: F<W>| [x * y, x - y, x - y, (x - y).abs()];
            let [sum, max, min, sum_ad] = lanes::<W, _, { ops([Op::Add, Op::Max, Op::Min, Op::Add]) }>(&a, &b, f);
            let (mut acc, mut acc_ad) = ([0.0; LANES], [0.0; LANES]);
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                acc[i % LANES] += x * y;
                acc_ad[i % LANES] += (x - y).abs();
            }
            assert_eq!((sum.to_bits(), sum_ad.to_bits()), (fold(acc).to_bits(), fold(acc_ad).to_bits()), "W {W} n {n}");
            let d = a.iter().zip(&b).map(|(x, y)| x - y);
            assert_eq!(
                (max, min),
                (d.clone().fold(f64::NEG_INFINITY, f64::max), d.fold(f64::INFINITY, f64::min)),
                "W {W} n {n}"
            );
        }
        for n in [0, 1, 3, 5, 8, 1021, 1023, 1024] {
            check::<2>(n);
            check::<4>(n);
            check::<8>(n);
        }
    }

    #[test]
    fn masks_select_and_count() {
        let (x, y) = (F([1.0, f64::NAN, -0.0, 3.0, 0.0, f64::INFINITY, -2.0, 0.5]), F::splat(0.0));
        let picked = [1.0, 9.0, 9.0, 3.0, 9.0, f64::INFINITY, 9.0, 0.5];
        assert_eq!(x.gt(y).select(x, F::splat(9.0)).0.map(f64::to_bits), picked.map(f64::to_bits));
        assert_eq!(x.is_finite().and(x.ne(y)).one().0, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(x.eq(y).not().one().0, [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
    }
}
