//! Stored elements to f64, one small block at a time.
//!
//! The kernel never materialises a float copy of a tensor: each block of at most
//! [`BLOCK`] elements is decoded from the file bytes into a buffer that stays in L1, used, and
//! overwritten by the next. Decoding is exact for every float type (f64 holds all of them), so
//! the metrics equal those of the reference path, which uploads the same f64 values.

use samplediff_formats::DType;

use crate::ulp::ordinal;

/// Elements per decode block: 8 KiB of f64 per side.
pub(crate) const BLOCK: usize = 1024;

/// Decode `out.len()` elements of `dtype` from `bytes` (exactly `out.len() * size` bytes).
#[inline(always)]
pub(crate) fn decode(dtype: DType, bytes: &[u8], out: &mut [f64]) {
    match dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64;
            }
        }
        DType::F64 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes(c.try_into().expect("8 bytes"));
            }
        }
        // bf16 is the top half of an f32: a shift, no table.
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64;
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f64();
            }
        }
        other => {
            let size = other.size();
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(size)) {
                *o = other.decode(c);
            }
        }
    }
}

/// Call `f(d)` with the ULP distance of every pair of the block where both sides are finite
/// (same float dtype on both sides; see [`crate::ulp`]).
#[inline(always)]
pub(crate) fn ulp_distances(dtype: DType, a: &[u8], b: &[u8], mut f: impl FnMut(u64)) {
    match dtype {
        // The common case without the per-element dtype dispatch of `ordinal`.
        DType::F32 => {
            for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
                let (x, y) =
                    (u32::from_le_bytes([x[0], x[1], x[2], x[3]]), u32::from_le_bytes([y[0], y[1], y[2], y[3]]));
                if let (Some(x), Some(y)) = (ordinal_f32(x), ordinal_f32(y)) {
                    f(x.abs_diff(y));
                }
            }
        }
        other => {
            let size = other.size();
            for (x, y) in a.chunks_exact(size).zip(b.chunks_exact(size)) {
                if let (Some(x), Some(y)) = (ordinal(other, x), ordinal(other, y)) {
                    f(x.abs_diff(y));
                }
            }
        }
    }
}

/// [`ulp_distances`] of a block as f64 into `out` (the windows' form), with their count and
/// their largest as u64 (an f64 tensor's distance may pass 2^53, beyond f64's integers).
#[inline(always)]
pub(crate) fn ulp_block(dtype: DType, a: &[u8], b: &[u8], finite: bool, out: &mut [f64]) -> (usize, u64) {
    if finite && dtype == DType::F32 {
        // The common case, straight in f64 (exact: below 2^32): an f32's ordinal fits an i32
        // and the difference is taken in f64, so the loop needs neither 64-bit integers nor the
        // u64-to-f64 conversion that AVX2 lacks (2026-12-08, `compare` of 2 x 16 MiB float32:
        // 406.4M -> 396.4M instructions).
        let n = a.len() / 4;
        let (a, b, out) = (&a[..4 * n], &b[..4 * n], &mut out[..n]);
        // Indexed (the bounds checks hoisted): written as zipped chunks, the loop stayed scalar.
        for i in 0..n {
            let word = |s: &[u8]| u32::from_le_bytes(s[4 * i..4 * i + 4].try_into().expect("4 bytes"));
            out[i] = (ordinal_f32_finite(word(a)) as f64 - ordinal_f32_finite(word(b)) as f64).abs();
        }
        return (n, out.iter().fold(0.0, |m: f64, &d| m.max(d)) as u64);
    }
    let (mut n, mut max) = (0, 0);
    ulp_distances(dtype, a, b, |d| {
        (out[n], max) = (d as f64, max.max(d));
        n += 1;
    });
    (n, max)
}

/// [`ordinal`] for the bits of a finite f32, branch-free, in an i32 (its magnitude bits are
/// below 2^31).
#[inline(always)]
fn ordinal_f32_finite(bits: u32) -> i32 {
    let mag = (bits & 0x7FFF_FFFF) as i32;
    let neg = (bits as i32) >> 31; // 0 or -1
    (mag ^ neg) - neg
}

/// [`ordinal`] for f32 bits.
#[inline(always)]
fn ordinal_f32(bits: u32) -> Option<i64> {
    if (bits >> 23) & 0xFF == 0xFF {
        return None;
    }
    let mag = (bits & 0x7FFF_FFFF) as i64;
    Some(if bits >> 31 == 1 { -mag } else { mag })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_ordinal_agrees_with_the_generic_one() {
        for bits in [0u32, 1, 0x3F80_0000, 0xBF80_0000, 0x8000_0000, 0x7F7F_FFFF, 0x7F80_0000, 0xFFC0_0000, 0x8000_0001]
        {
            assert_eq!(ordinal_f32(bits), ordinal(DType::F32, &bits.to_le_bytes()), "{bits:#x}");
            if let Some(o) = ordinal_f32(bits) {
                assert_eq!(ordinal_f32_finite(bits) as i64, o, "{bits:#x}");
            }
        }
    }

    #[test]
    fn f32_distances_as_f64_agree_with_the_u64_ones() {
        let bits = [0u32, 1, 0x3F80_0000, 0xBF80_0000, 0x8000_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x8000_0001, 0x0080_0000];
        let (a, b): (Vec<u8>, Vec<u8>) = bits
            .iter()
            .flat_map(|&x| bits.iter().map(move |&y| (x, y)))
            .map(|(x, y)| (x.to_le_bytes(), y.to_le_bytes()))
            .fold((vec![], vec![]), |(mut a, mut b), (x, y)| {
                a.extend(x);
                b.extend(y);
                (a, b)
            });
        let mut want = vec![];
        ulp_distances(DType::F32, &a, &b, |d| want.push(d as f64));
        let mut got = vec![0.0; want.len()];
        let (n, max) = ulp_block(DType::F32, &a, &b, true, &mut got);
        assert_eq!(got, want);
        assert_eq!((n, max), (want.len(), 2 * 0x7F7F_FFFF));
        assert!(got.contains(&(2.0 * 0x7F7F_FFFF as f64)), "the widest distance, past i32::MAX");
    }

    #[test]
    fn every_dtype_decodes_like_the_formats_crate() {
        for dtype in [DType::F32, DType::F64, DType::BF16, DType::F16, DType::F8_E4M3, DType::I64, DType::BOOL] {
            let bytes: Vec<u8> = (0..dtype.size() * 7).map(|i| (i * 37 % 251) as u8).collect();
            let mut out = [0.0; 7];
            decode(dtype, &bytes, &mut out);
            for (i, c) in bytes.chunks_exact(dtype.size()).enumerate() {
                let want = dtype.decode(c);
                assert!(out[i] == want || (out[i].is_nan() && want.is_nan()), "{dtype:?} {i}");
            }
        }
    }
}
