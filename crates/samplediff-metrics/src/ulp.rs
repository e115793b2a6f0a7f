//! Distance in units in the last place (ULP), in the dtype the tensors were stored in.
//!
//! Computed on the host from the file bytes: it is a property of bit patterns, and burn has no
//! bit-cast for float tensors. Each finite value maps to an integer that counts representable
//! values from zero (negative values mirrored, +0 and -0 both 0), so the distance between two
//! values is the difference of their integers: 1 means neighbours.

use samplediff_formats::{DType, RawTensor};

/// ULP max and median (numpy median: mean of the two middle values for an even count) over the
/// pairs where both values are finite. `None` when the dtypes differ, are not floats, or no
/// finite pair exists.
pub fn ulp_stats(a: &RawTensor, b: &RawTensor) -> Option<(u64, f64)> {
    if a.dtype != b.dtype || !a.dtype.is_float() {
        return None;
    }
    let dtype = a.dtype;
    let size = dtype.size();
    let mut dist: Vec<u64> = a
        .data
        .chunks_exact(size)
        .zip(b.data.chunks_exact(size))
        .filter_map(|(x, y)| Some(ordinal(dtype, x)?.abs_diff(ordinal(dtype, y)?)))
        .collect();
    if dist.is_empty() {
        return None;
    }
    let n = dist.len();
    let max = *dist.iter().max().expect("non-empty");
    let (_, &mut hi, _) = dist.select_nth_unstable(n / 2);
    let median = if n % 2 == 1 {
        hi as f64
    } else {
        let lo = *dist[..n / 2].iter().max().expect("n >= 2");
        (lo as f64 + hi as f64) / 2.0
    };
    Some((max, median))
}

/// The signed ordinal of one little-endian element, or `None` for NaN and infinities.
pub(crate) fn ordinal(dtype: DType, bytes: &[u8]) -> Option<i64> {
    // (bits, width of the magnitude field, exponent field mask, exponent bits all ones = special)
    let (bits, sign_bit, exp_shift, exp_mask): (u64, u32, u32, u64) = match dtype {
        DType::F64 => (u64::from_le_bytes(bytes[..8].try_into().ok()?), 63, 52, 0x7FF),
        DType::F32 => (u32::from_le_bytes(bytes[..4].try_into().ok()?) as u64, 31, 23, 0xFF),
        DType::F16 => (u16::from_le_bytes([bytes[0], bytes[1]]) as u64, 15, 10, 0x1F),
        DType::BF16 => (u16::from_le_bytes([bytes[0], bytes[1]]) as u64, 15, 7, 0xFF),
        DType::F8_E5M2 => (bytes[0] as u64, 7, 2, 0x1F),
        DType::F8_E4M3 => {
            // e4m3fn has no infinities; only S.1111.111 is NaN.
            let v = bytes[0] as u64;
            let mag = (v & 0x7F) as i64;
            return if mag == 0x7F {
                None
            } else if v & 0x80 != 0 {
                Some(-mag)
            } else {
                Some(mag)
            };
        }
        _ => return None,
    };
    if (bits >> exp_shift) & exp_mask == exp_mask {
        return None; // NaN or infinity
    }
    let mag = (bits & ((1u64 << sign_bit) - 1)) as i64;
    Some(if bits >> sign_bit & 1 == 1 { -mag } else { mag })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> RawTensor {
        RawTensor::from_f32("t", vec![v.len()], v)
    }

    #[test]
    fn neighbours_are_one_ulp_across_zero_and_exponents() {
        let one_up = f32::from_bits(1.0f32.to_bits() + 1);
        let below_two = f32::from_bits(2.0f32.to_bits() - 1);
        let tiny = f32::from_bits(1);
        let a = f32s(&[1.0, below_two, tiny, -0.0, 5.0]);
        let b = f32s(&[one_up, 2.0, -tiny, 0.0, 5.0]);
        // distances 1, 1, 2, 0, 0 -> max 2, median 1
        assert_eq!(ulp_stats(&a, &b), Some((2, 1.0)));
    }

    #[test]
    fn non_finite_pairs_are_skipped_and_mixed_dtypes_have_no_ulp() {
        let a = f32s(&[f32::NAN, f32::INFINITY, 1.0, 1.0]);
        let b = f32s(&[1.0, 1.0, 1.0, f32::from_bits(1.0f32.to_bits() + 3)]);
        assert_eq!(ulp_stats(&a, &b), Some((3, 1.5)));
        let h = RawTensor::from_vec("h", DType::F16, vec![1], vec![0, 0x3C]);
        assert_eq!(ulp_stats(&a, &h), None);
        assert_eq!(ulp_stats(&f32s(&[f32::NAN]), &f32s(&[f32::NAN])), None);
    }

    #[test]
    fn small_float_formats() {
        // bf16 1.0 = 0x3F80, next 0x3F81; f16 1.0 = 0x3C00; e4m3 codes are ordinals.
        let a = RawTensor::from_vec("a", DType::BF16, vec![1], vec![0x80, 0x3F]);
        let b = RawTensor::from_vec("b", DType::BF16, vec![1], vec![0x81, 0x3F]);
        assert_eq!(ulp_stats(&a, &b), Some((1, 1.0)));
        let a = RawTensor::from_vec("a", DType::F8_E4M3, vec![2], vec![0x38, 0x7F]);
        let b = RawTensor::from_vec("b", DType::F8_E4M3, vec![2], vec![0xB8, 0x00]);
        assert_eq!(ulp_stats(&a, &b), Some((112, 112.0)));
    }
}
