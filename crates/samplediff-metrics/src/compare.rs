//! The metrics of one pair of tensors (B is the reference), computed on a burn device.
//!
//! All value metrics live on the device; the host sees only a handful of reduced numbers per
//! step (and the worst elements). ULP distances are the exception (see [`crate::ulp`]).
//! Precision: f64 on devices that support it (flex does), else f32.

use burn::tensor::{Bool, Device, FloatDType, Int, Tensor};
use samplediff_formats::RawTensor;
use samplediff_tensor::{DeviceTensor, compute_dtype, validate};

use crate::device_ops::{indices, read_counts, read_floats};
use crate::moments::{Counts, Floored, Moments, Tol};
use crate::options::CompareOptions;
use crate::quantiles::error_distribution;
use crate::report::{Status, TensorReport, WorstElement};
use crate::slices::{channel_stats, frame_stats};
use crate::tolerance::default_tolerances;
use crate::{Result, hints, ulp};

/// Compare `a` against the reference `b`. Layout errors (byte length vs shape) are errors;
/// everything a valid tensor can hold (NaN, Inf, empty, 0-d, other dtypes) is a report.
/// Computes in the best precision the device supports (f64 on the CPU backend).
pub fn compare_tensors(a: &RawTensor, b: &RawTensor, device: &Device, opts: &CompareOptions) -> Result<TensorReport> {
    compare_tensors_in(a, b, device, opts, compute_dtype(device))
}

/// [`compare_tensors`] in a chosen precision (F64 or F32). F32 is what most GPUs offer: whole-
/// tensor sums then carry ~1e-7..1e-6 relative error; counts stay exact (integer sums).
pub fn compare_tensors_in(
    a: &RawTensor,
    b: &RawTensor,
    device: &Device,
    opts: &CompareOptions,
    precision: FloatDType,
) -> Result<TensorReport> {
    let (mut r, tol) = match begin(a, b, opts)? {
        Begin::Done(r) => return Ok(r),
        Begin::Measure(r, tol) => (r, tol),
    };
    let numel = a.numel();
    let ta = DeviceTensor::upload_as(a, device, precision)?;
    let tb = DeviceTensor::upload_as(b, device, precision)?;
    let pair = Pair::new(ta.values, tb.values, tol.rtol, tol.atol);
    pair.global(&mut r, opts)?;
    if let Some(n) = r.finite_pairs.filter(|&n| n > 0).map(|n| n as usize) {
        // One sort serves the worst elements, the percentiles and the histogram: non-finite
        // pairs are keyed -1 so they sort after every real error.
        let keyed = pair.ad.clone().mask_fill(pair.nonfinite.clone(), -1.0);
        let (desc, order) = keyed.sort_descending_with_indices(0);
        pair.worst(&mut r, &a.shape, opts.top_k.min(n), order)?;
        let (p, h) = error_distribution(if n == numel { desc } else { desc.narrow(0, 0, n) })?;
        r.percentiles_abs = Some(p);
        r.histogram = Some(h);
    }
    if matches!(a.shape.len(), 4 | 5) {
        r.per_channel = channel_stats(&pair, &a.shape)?;
    }
    if a.shape.len() == 5 {
        r.per_frame = frame_stats(&pair, &a.shape)?;
    }
    if let Some((max, median)) = ulp::ulp_stats(a, b) {
        r.ulp_max = Some(max);
        r.ulp_median = Some(median);
    }
    r.hints = hints::hints(&r);
    Ok(r)
}

/// How a comparison starts: either there is nothing to measure (shapes differ, no elements)
/// and the report is complete, or the values are measured under `Tol`.
pub enum Begin {
    Done(TensorReport),
    Measure(TensorReport, Tol),
}

/// The part of a report every path fills the same way: names, shapes, dtypes, tolerances.
/// Layout errors (byte length vs shape) are errors.
pub fn begin(a: &RawTensor, b: &RawTensor, opts: &CompareOptions) -> Result<Begin> {
    validate(a)?;
    validate(b)?;
    let mut r = TensorReport::unmatched(pair_name(&a.name, &b.name), Status::Compared);
    r.name_a = Some(a.name.clone());
    r.name_b = Some(b.name.clone());
    r.shape_a = Some(a.shape.clone());
    r.shape_b = Some(b.shape.clone());
    r.dtype_a = Some(a.dtype.name().into());
    r.dtype_b = Some(b.dtype.name().into());
    r.shapes_match = a.shape == b.shape;
    r.dtypes_match = a.dtype == b.dtype;
    if !r.shapes_match {
        r.status = Status::ShapeMismatch;
        r.message = Some(format!("shapes differ: {:?} vs {:?}", a.shape, b.shape));
        return Ok(Begin::Done(r));
    }
    let (rtol0, atol0) = default_tolerances(a.dtype, b.dtype);
    let (rtol, atol) = (opts.rtol.unwrap_or(rtol0), opts.atol.unwrap_or(atol0));
    r.rtol = Some(rtol);
    r.atol = Some(atol);
    let numel = a.numel();
    r.numel = Some(numel as u64);
    if numel == 0 {
        // Nothing to measure: every count is zero, every value metric undefined, and the
        // tensors agree (as torch.testing.assert_close says of two empty tensors).
        r.set_counts_zero();
        r.values_match = true;
        return Ok(Begin::Done(r));
    }
    Ok(Begin::Measure(r, Tol { rtol, atol }))
}

/// "x" for a pair of equal names, "x=y" (the `--pair` spelling) otherwise.
pub fn pair_name(a: &str, b: &str) -> String {
    if a == b { a.to_string() } else { format!("{a}={b}") }
}

/// The element-wise building blocks shared by every metric, all flat (numel) and on the device.
pub(crate) struct Pair {
    pub a: Tensor<1>,
    pub b: Tensor<1>,
    /// Both sides finite: the population of the value metrics.
    pub finite: Tensor<1, Bool>,
    pub nonfinite: Tensor<1, Bool>,
    /// a and b with non-finite pairs zeroed (so sums skip them).
    pub af: Tensor<1>,
    pub bf: Tensor<1>,
    /// |a-b| on finite pairs, 0 elsewhere.
    pub ad: Tensor<1>,
    /// The closeness test of torch.isclose(equal_nan=True).
    pub close: Tensor<1, Bool>,
}

impl Pair {
    fn new(a: Tensor<1>, b: Tensor<1>, rtol: f64, atol: f64) -> Self {
        let finite = a.clone().is_finite().bool_and(b.clone().is_finite());
        let nonfinite = finite.clone().bool_not();
        let af = a.clone().mask_fill(nonfinite.clone(), 0.0);
        let bf = b.clone().mask_fill(nonfinite.clone(), 0.0);
        let ad = af.clone().sub(bf.clone()).abs();
        let tol = bf.clone().abs().mul_scalar(rtol).add_scalar(atol);
        let close_finite = ad.clone().lower_equal(tol).bool_and(finite.clone());
        let close_nan = a.clone().is_nan().bool_and(b.clone().is_nan());
        let close_inf = a.clone().is_inf().bool_or(b.clone().is_inf()).bool_and(a.clone().equal(b.clone()));
        let close = close_finite.bool_or(close_nan).bool_or(close_inf);
        Self { a, b, finite, nonfinite, af, bf, ad, close }
    }

    /// Counts and whole-tensor metrics (two read-backs: sums, then centred sums and the floor).
    fn global(&self, r: &mut TensorReport, opts: &CompareOptions) -> Result<()> {
        let (nan_a, nan_b) = (self.a.clone().is_nan(), self.b.clone().is_nan());
        let (inf_a, inf_b) = (self.a.clone().is_inf(), self.b.clone().is_inf());
        let inf_any = inf_a.clone().bool_or(inf_b.clone());
        let inf_mismatch = inf_any.bool_and(self.a.clone().equal(self.b.clone()).bool_not());
        let b_zero = self.bf.clone().equal_elem(0.0).bool_and(self.finite.clone());
        let rel_ok = self.finite.clone().bool_and(b_zero.clone().bool_not());
        let abs_b = self.bf.clone().abs();
        let rel = rel_quotient(&self.ad, &abs_b, rel_ok.clone());

        let c = read_counts(vec![
            self.finite.clone().int().sum(),
            nan_a.clone().int().sum(),
            nan_b.clone().int().sum(),
            inf_a.int().sum(),
            inf_b.int().sum(),
            nan_a.bool_xor(nan_b).int().sum(),
            inf_mismatch.int().sum(),
            self.close.clone().int().sum(),
            b_zero.int().sum(),
        ])?;
        let mut m = Moments {
            c: Counts {
                numel: self.a.dims()[0] as u64,
                finite: c[0],
                nan_a: c[1],
                nan_b: c[2],
                inf_a: c[3],
                inf_b: c[4],
                nan_xor: c[5],
                inf_mismatch: c[6],
                close: c[7],
                b_zero: c[8],
            },
            ..Moments::default()
        };
        if m.c.finite == 0 {
            m.fill(r, 0.0);
            return Ok(());
        }
        let s = read_floats(vec![
            self.ad.clone().sum(),
            self.ad.clone().square().sum(),
            self.ad.clone().max(),
            rel.clone().sum(),
            rel.max(),
            self.af.clone().sum(),
            self.bf.clone().sum(),
            self.af.clone().square().sum(),
            self.bf.clone().square().sum(),
            self.af.clone().mul(self.bf.clone()).sum(),
        ])?;
        (m.sum_ad, m.sum_ad2, m.max_ad, m.sum_rel, m.max_rel) = (s[0], s[1], s[2], s[3], s[4]);
        (m.sum_a, m.sum_b, m.sum_a2, m.sum_b2, m.sum_ab) = (s[5], s[6], s[7], s[8], s[9]);

        // Second pass: centred sums for Pearson, and the floored relative error.
        let nf = m.c.finite as f64;
        (m.mean_a, m.mean_b) = (m.sum_a / nf, m.sum_b / nf);
        let ca = self.af.clone().sub_scalar(m.mean_a).mask_fill(self.nonfinite.clone(), 0.0);
        let cb = self.bf.clone().sub_scalar(m.mean_b).mask_fill(self.nonfinite.clone(), 0.0);
        let floor = opts.rel_floor.unwrap_or_else(|| m.default_floor());
        let denom = abs_b.clamp_min(floor);
        let floored_ok = self.finite.clone().bool_and(denom.clone().greater_elem(0.0));
        let rel_f = rel_quotient(&self.ad, &denom, floored_ok.clone());
        let s2 = read_floats(vec![
            ca.clone().square().sum(),
            cb.clone().square().sum(),
            ca.mul(cb).sum(),
            rel_f.clone().sum(),
            rel_f.max(),
        ])?;
        (m.m2a, m.m2b, m.cab) = (s2[0], s2[1], s2[2]);
        m.floored = Floored { n: read_counts(vec![floored_ok.int().sum()])?[0], sum: s2[3], max: s2[4] };
        m.fill(r, floor);
        Ok(())
    }

    /// The `k` largest |a-b| over finite pairs with their indices and both values; `order` is
    /// the flat indices of the elements by descending error (non-finite pairs last).
    fn worst(&self, r: &mut TensorReport, shape: &[usize], k: usize, order: Tensor<1, Int>) -> Result<()> {
        if k == 0 {
            return Ok(());
        }
        let idx = order.narrow(0, 0, k);
        let flat: Vec<i64> = samplediff_tensor::read_i64(idx)?;
        let at = indices(flat.clone(), &self.a.device());
        let v = read_floats(vec![self.a.clone().select(0, at.clone()), self.b.clone().select(0, at)])?;
        let mut worst: Vec<(usize, f64, f64)> =
            flat.iter().enumerate().map(|(i, &f)| (f as usize, v[i], v[k + i])).collect();
        worst.retain(|(_, a, b)| a.is_finite() && b.is_finite());
        worst.sort_by(|x, y| (y.1 - y.2).abs().total_cmp(&(x.1 - x.2).abs()).then(x.0.cmp(&y.0)));
        r.worst = worst
            .into_iter()
            .map(|(f, a, b)| WorstElement { index: unravel(f, shape), a, b, abs: (a - b).abs() })
            .collect();
        Ok(())
    }
}

/// num/den where `ok`, 0 elsewhere (the denominator is replaced by 1 there, so no 0/0).
fn rel_quotient(num: &Tensor<1>, den: &Tensor<1>, ok: Tensor<1, Bool>) -> Tensor<1> {
    let not_ok = ok.bool_not();
    num.clone().div(den.clone().mask_fill(not_ok.clone(), 1.0)).mask_fill(not_ok, 0.0)
}

/// The C-order multi-index of flat position `flat` in `shape` (`[]` for a 0-d scalar).
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            index[i] = flat % d;
            flat /= d;
        }
    }
    index
}

impl TensorReport {
    /// A report with every metric empty.
    pub fn unmatched(name: String, status: Status) -> Self {
        TensorReport {
            name,
            name_a: None,
            name_b: None,
            status,
            message: None,
            shape_a: None,
            shape_b: None,
            dtype_a: None,
            dtype_b: None,
            shapes_match: false,
            dtypes_match: false,
            values_match: false,
            atol: None,
            rtol: None,
            numel: None,
            finite_pairs: None,
            mismatched: None,
            max_abs: None,
            mean_abs: None,
            rmse: None,
            rms_a: None,
            rms_b: None,
            max_rel: None,
            mean_rel: None,
            rel_zero_b: None,
            max_rel_floored: None,
            mean_rel_floored: None,
            rel_floor: None,
            cosine: None,
            pearson: None,
            snr_db: None,
            nan_a: None,
            nan_b: None,
            inf_a: None,
            inf_b: None,
            nan_position_mismatch: None,
            inf_mismatch: None,
            ulp_max: None,
            ulp_median: None,
            percentiles_abs: None,
            histogram: None,
            worst: vec![],
            per_channel: vec![],
            per_frame: vec![],
            hints: vec![],
        }
    }

    pub(crate) fn set_counts_zero(&mut self) {
        for c in [
            &mut self.finite_pairs,
            &mut self.mismatched,
            &mut self.nan_a,
            &mut self.nan_b,
            &mut self.inf_a,
            &mut self.inf_b,
            &mut self.nan_position_mismatch,
            &mut self.inf_mismatch,
            &mut self.rel_zero_b,
        ] {
            *c = Some(0);
        }
    }

    /// The pair's tolerances as used (`rtol`, `atol`).
    pub fn tolerances(&self) -> Option<(f64, f64)> {
        Some((self.rtol?, self.atol?))
    }
}

#[cfg(test)]
mod tests {
    use super::unravel;

    #[test]
    fn unravel_c_order() {
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
        assert_eq!(unravel(7, &[2, 2, 3]), vec![1, 0, 1]);
        assert_eq!(unravel(5, &[1, 16, 1, 147, 110]), vec![0, 0, 0, 0, 5]);
    }
}
