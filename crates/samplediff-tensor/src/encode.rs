//! f64 values back to the little-endian bytes of a file dtype.
//!
//! Float conversions round to nearest, ties to even (what torch's `.to(dtype)` does); integer
//! conversions truncate toward zero and saturate (Rust `as`; torch wraps instead, but a value
//! out of an integer type's range is a bug either way). NaN becomes 0 in integers and `true` in
//! BOOL, as `bool(float('nan'))` is in Python.

use half::{bf16, f16};
use samplediff_formats::DType;

/// Encode `values` as `dtype`, little-endian, C order.
pub fn encode(values: &[f64], dtype: DType) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    for &v in values {
        match dtype {
            DType::F64 => out.extend_from_slice(&v.to_le_bytes()),
            DType::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&f16::from_f64(v).to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&bf16::from_f64(v).to_le_bytes()),
            DType::F8_E4M3 => out.push(f64_to_f8_e4m3fn(v)),
            DType::F8_E5M2 => out.push(f64_to_f8_e5m2(v)),
            DType::I64 => out.extend_from_slice(&(v as i64).to_le_bytes()),
            DType::I32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            DType::I16 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            DType::I8 => out.push(v as i8 as u8),
            DType::U8 => out.push(v as u8),
            DType::BOOL => out.push((v != 0.0) as u8),
        }
    }
    out
}

/// The magnitude code of a finite, non-negative `a` in a tiny float format with `mbits` mantissa
/// bits and smallest normal exponent `emin`, rounded to nearest-even. Codes are monotonic in the
/// value, so a mantissa carry walks into the next exponent (or past the largest finite value)
/// by itself; callers clamp that overflow as their format demands.
fn f8_magnitude_code(a: f64, mbits: i32, emin: i32) -> u32 {
    if a == 0.0 {
        return 0;
    }
    // Exact binary exponent of `a` from its bits (f64 subnormals are far below any fp8 value).
    let e = ((a.to_bits() >> 52) & 0x7FF) as i32 - 1023;
    let e = e.max(emin);
    let quantum = 2f64.powi(e - mbits); // a power of two: the division below is exact
    let m = (a / quantum).round_ties_even();
    if m > 1e6 {
        return u32::MAX; // far out of range; the caller saturates
    }
    (((e - emin) as u32) << mbits) + m as u32
}

/// torch.float8_e4m3fn: 3 mantissa bits, bias 7, no infinities; |x| >= 480 (and inf) become NaN
/// (0x7F), anything that rounds past 448 below that is 448 (c10's `fp8e4m3fn_from_fp32_value`).
pub fn f64_to_f8_e4m3fn(v: f64) -> u8 {
    let sign = if v.is_sign_negative() { 0x80u8 } else { 0 };
    if v.is_nan() {
        return 0x7F;
    }
    let a = v.abs();
    if a >= 480.0 {
        return sign | 0x7F;
    }
    let code = f8_magnitude_code(a, 3, -6).min(0x7E);
    sign | code as u8
}

/// torch.float8_e5m2: 2 mantissa bits, bias 15, IEEE-style: overflow rounds to infinity (0x7C).
pub fn f64_to_f8_e5m2(v: f64) -> u8 {
    let sign = if v.is_sign_negative() { 0x80u8 } else { 0 };
    if v.is_nan() {
        return 0x7E;
    }
    let code = f8_magnitude_code(v.abs(), 2, -14).min(0x7C);
    sign | code as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use samplediff_formats::RawTensor;

    fn decode(bytes: &[u8], dtype: DType) -> Vec<f64> {
        RawTensor::from_vec("t", dtype, vec![bytes.len() / dtype.size()], bytes.to_vec()).to_f64_vec()
    }

    #[test]
    fn every_fp8_code_round_trips() {
        for dtype in [DType::F8_E4M3, DType::F8_E5M2] {
            let codes: Vec<u8> = (0..=255).collect();
            let values = decode(&codes, dtype);
            let back = encode(&values, dtype);
            for (code, (v, b)) in codes.iter().zip(values.iter().zip(&back)) {
                if v.is_nan() {
                    assert!(decode(&[*b], dtype)[0].is_nan(), "{dtype} code {code:#04x}");
                } else {
                    assert_eq!(code, b, "{dtype} value {v}");
                }
            }
        }
    }

    #[test]
    fn fp8_rounds_to_nearest_even_and_saturates_like_torch() {
        // 1 + 1/16 lies halfway between 1 and 1.125: ties go to the even mantissa (1.0).
        assert_eq!(f64_to_f8_e4m3fn(1.0625), f64_to_f8_e4m3fn(1.0));
        assert_eq!(f64_to_f8_e4m3fn(470.0), 0x7E);
        assert_eq!(f64_to_f8_e4m3fn(480.0), 0x7F);
        assert_eq!(f64_to_f8_e4m3fn(f64::NEG_INFINITY), 0xFF);
        assert_eq!(f64_to_f8_e5m2(60000.0), 0x7B);
        assert_eq!(f64_to_f8_e5m2(61440.0), 0x7C);
        assert_eq!(f64_to_f8_e5m2(-1e9), 0xFC);
        // Smallest subnormals.
        assert_eq!(f64_to_f8_e4m3fn(2f64.powi(-9)), 0x01);
        assert_eq!(f64_to_f8_e5m2(2f64.powi(-16)), 0x01);
    }

    #[test]
    fn wide_types_round_trip_exactly() {
        let vals = [0.0, -0.0, 1.5, -2.25, 65504.0, 1e-3];
        for dtype in [DType::F64, DType::F32, DType::F16, DType::BF16] {
            let once = decode(&encode(&vals, dtype), dtype);
            let twice = decode(&encode(&once, dtype), dtype);
            assert_eq!(once, twice, "{dtype}");
        }
        assert_eq!(decode(&encode(&[-3.7, 2.9, 300.0], DType::I8), DType::I8), vec![-3.0, 2.0, 127.0]);
        assert_eq!(decode(&encode(&[0.0, f64::NAN, -1.0], DType::BOOL), DType::BOOL), vec![0.0, 1.0, 1.0]);
    }
}
