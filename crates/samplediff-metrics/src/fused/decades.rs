//! The decade histogram of |a-b| in the same pass as everything else.
//!
//! The main pass already counts every non-zero error by its top 16 bits (11 exponent bits, 5
//! mantissa bits; see [`super::select::FirstPass`]). A binade [2^e, 2^(e+1)) holds at most one
//! power of ten, so the count of errors below 10^k is the count of the buckets below the one
//! holding 10^k plus, inside that one bucket, the errors below 10^k: only elements landing in
//! such a bucket are compared here. Subnormal errors (one binade holding sixteen powers of
//! ten) are counted per decade directly.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::select::{FirstPass, key16};
use crate::quantiles::{decade, pow10};

const BINADES: usize = 2048;

/// Per binade (biased exponent): the power of ten inside it and its 16-bit key (+inf and an
/// impossible key where there is none), and one bit per 16-bit key that needs a closer look:
/// a power of ten's, or a subnormal's (binade 0).
#[derive(Debug)]
struct Table {
    powers: [(f64, u64); BINADES],
    look: [u64; (1 << 16) / 64],
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Table { powers: [(f64::INFINITY, u64::MAX); BINADES], look: [0; (1 << 16) / 64] };
        let mut mark = |k: u64| t.look[k as usize / 64] |= 1 << (k % 64);
        // Binade 0's keys: 11 zero exponent bits, any 5 mantissa bits.
        (0..32).for_each(&mut mark);
        for k in -307..=308 {
            let p = pow10(k);
            mark(key16(p));
            t.powers[(p.to_bits() >> 52) as usize] = (p, key16(p));
        }
        t
    })
}

/// The errors that share a bucket with a power of ten and lie below it, and the subnormals.
#[derive(Clone, Debug)]
pub(crate) struct Decades {
    below_power: Vec<u64>,
    subnormal: BTreeMap<i32, u64>,
    table: &'static Table,
}

impl Default for Decades {
    fn default() -> Self {
        Self { below_power: vec![0; BINADES], subnormal: BTreeMap::new(), table: table() }
    }
}

impl Decades {
    /// One error `d >= 0` (zeros are not counted). Nearly every error is turned away by one
    /// bit of [`Table::look`].
    #[inline(always)]
    pub fn add(&mut self, d: f64) {
        self.add_keyed(d, key16(d));
    }

    /// [`Decades::add`] of `d` whose 16-bit key is `key`.
    #[inline(always)]
    pub fn add_keyed(&mut self, d: f64, key: u64) {
        if self.table.look[key as usize / 64] >> (key % 64) & 1 == 0 {
            return;
        }
        let e = (d.to_bits() >> 52) as usize & (BINADES - 1);
        let (p, power_key) = self.table.powers[e];
        if key == power_key {
            self.below_power[e] += (d < p) as u64;
        } else if e == 0 && d > 0.0 {
            *self.subnormal.entry(decade(d)).or_default() += 1;
        }
    }

    pub fn merge(&mut self, o: &Decades) {
        self.below_power.iter_mut().zip(&o.below_power).for_each(|(x, y)| *x += y);
        for (k, c) in &o.subnormal {
            *self.subnormal.entry(*k).or_default() += c;
        }
    }

    /// How many non-zero errors are below 10^k; `first` holds the same errors' bucket counts.
    pub fn count_below(&self, k: i32, first: &FirstPass) -> u64 {
        let p = pow10(k);
        let e = (p.to_bits() >> 52) as usize;
        if e == 0 || p == 0.0 {
            return self.subnormal.range(..k).map(|(_, c)| c).sum();
        }
        first.count_keys_below(key16(p)) + self.below_power[e]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_below_powers_of_ten_exactly() {
        let values = [1e-3, 9.999e-4, 1.0001e-3, 0.5, 1.0, 0.999_999, 10.0, 5e-320, 2e-310];
        let (mut d, mut f) = (Decades::default(), FirstPass::default());
        values.iter().enumerate().for_each(|(i, &v)| {
            d.add(v);
            f.add(v, i);
        });
        for k in [-322, -309, -4, -3, 0, 1, 2] {
            let want = values.iter().filter(|&&v| v < pow10(k)).count() as u64;
            assert_eq!(d.count_below(k, &f), want, "10^{k}");
        }
    }
}
