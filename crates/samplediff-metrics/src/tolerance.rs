//! Default tolerances: torch.testing.assert_close's per-dtype table
//! (`torch/testing/_comparison.py`, `_DTYPE_PRECISIONS`), as (rtol, atol):
//!
//! | dtype    | rtol   | atol |
//! |----------|--------|------|
//! | float16  | 1e-3   | 1e-5 |
//! | bfloat16 | 1.6e-2 | 1e-5 |
//! | float32  | 1.3e-6 | 1e-5 |
//! | float64  | 1e-7   | 1e-7 |
//! | others   | 0      | 0    |
//!
//! "Others" includes the integer types, bool and the float8 types (torch has no entry for them,
//! so they must match exactly). With two dtypes the looser of the two applies, as in torch's
//! `default_tolerances(actual, expected)`.

use samplediff_formats::DType;

/// (rtol, atol) torch would use for one dtype.
pub fn torch_default(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F16 => (1e-3, 1e-5),
        DType::BF16 => (1.6e-2, 1e-5),
        DType::F32 => (1.3e-6, 1e-5),
        DType::F64 => (1e-7, 1e-7),
        _ => (0.0, 0.0),
    }
}

/// (rtol, atol) for comparing `a` with `b`: the loosest of the two dtypes' defaults.
pub fn default_tolerances(a: DType, b: DType) -> (f64, f64) {
    let (ra, aa) = torch_default(a);
    let (rb, ab) = torch_default(b);
    (ra.max(rb), aa.max(ab))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loosest_of_both_dtypes() {
        assert_eq!(default_tolerances(DType::F32, DType::F32), (1.3e-6, 1e-5));
        assert_eq!(default_tolerances(DType::F32, DType::BF16), (1.6e-2, 1e-5));
        assert_eq!(default_tolerances(DType::F64, DType::F32), (1.3e-6, 1e-5));
        assert_eq!(default_tolerances(DType::I64, DType::I64), (0.0, 0.0));
    }
}
