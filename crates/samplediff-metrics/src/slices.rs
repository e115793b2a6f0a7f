//! Per-slice breakdowns: per channel (axis 1 of a 4-D/5-D latent) with the least-squares fit
//! b ~ scale*a + shift, and per frame (axis 2 of a 5-D latent).
//!
//! A slice is one row after moving the axis to the front: [pre, S, post] -> [S, pre*post], so
//! every statistic is one reduction over dim 1 for all slices at once.

use burn::tensor::{Bool, Int, Tensor};

use crate::Result;
use crate::compare::Pair;
use crate::device_ops::{floats_like, read_counts, read_floats};
use crate::report::{ChannelStats, FrameStats};

/// Row-wise sums of one slicing of a pair.
struct Rows {
    s: usize,
    numel: u64,
    finite: Vec<u64>,
    mismatched: Vec<u64>,
    sum_ad: Vec<f64>,
    sum_ad2: Vec<f64>,
    max_ad: Vec<f64>,
    sum_a: Vec<f64>,
    sum_b: Vec<f64>,
}

fn rows_f(t: &Tensor<1>, shape: &[usize], axis: usize) -> Tensor<2> {
    let (pre, s, post) = split(shape, axis);
    t.clone().reshape([pre, s, post]).swap_dims(0, 1).reshape([s, pre * post])
}

fn rows_b(t: &Tensor<1, Bool>, shape: &[usize], axis: usize) -> Tensor<2, Bool> {
    let (pre, s, post) = split(shape, axis);
    t.clone().reshape([pre, s, post]).swap_dims(0, 1).reshape([s, pre * post])
}

fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

fn col(t: Tensor<2>) -> Tensor<1> {
    let s = t.dims()[0];
    t.reshape([s])
}

fn col_i(t: Tensor<2, Int>) -> Tensor<1, Int> {
    let s = t.dims()[0];
    t.reshape([s])
}

fn row_sums(p: &Pair, shape: &[usize], axis: usize) -> Result<Option<Rows>> {
    let (pre, s, post) = split(shape, axis);
    if s == 0 || pre * post == 0 {
        return Ok(None);
    }
    let ad = rows_f(&p.ad, shape, axis);
    let c = read_counts(vec![
        col_i(rows_b(&p.finite, shape, axis).int().sum_dim(1)),
        col_i(rows_b(&p.close, shape, axis).int().sum_dim(1)),
    ])?;
    let f = read_floats(vec![
        col(ad.clone().sum_dim(1)),
        col(ad.clone().square().sum_dim(1)),
        col(ad.max_dim(1)),
        col(rows_f(&p.af, shape, axis).sum_dim(1)),
        col(rows_f(&p.bf, shape, axis).sum_dim(1)),
    ])?;
    let numel = (pre * post) as u64;
    Ok(Some(Rows {
        s,
        numel,
        finite: c[..s].to_vec(),
        mismatched: c[s..].iter().map(|close| numel - close).collect(),
        sum_ad: f[..s].to_vec(),
        sum_ad2: f[s..2 * s].to_vec(),
        max_ad: f[2 * s..3 * s].to_vec(),
        sum_a: f[3 * s..4 * s].to_vec(),
        sum_b: f[4 * s..].to_vec(),
    }))
}

/// max/mean/rms of |a-b| over a slice's finite pairs (NaN, i.e. JSON null, when it has none).
fn err_stats(r: &Rows, i: usize) -> (f64, f64, f64) {
    let n = r.finite[i] as f64;
    if n == 0.0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (r.max_ad[i], r.sum_ad[i] / n, (r.sum_ad2[i] / n).sqrt())
}

/// Per-channel statistics and fit (axis 1).
pub(crate) fn channel_stats(p: &Pair, shape: &[usize]) -> Result<Vec<ChannelStats>> {
    let Some(r) = row_sums(p, shape, 1)? else {
        return Ok(vec![]);
    };
    let s = r.s;
    let mean = |sum: &[f64], i: usize| {
        if r.finite[i] > 0 { sum[i] / r.finite[i] as f64 } else { 0.0 }
    };
    let ma: Vec<f64> = (0..s).map(|i| mean(&r.sum_a, i)).collect();
    let mb: Vec<f64> = (0..s).map(|i| mean(&r.sum_b, i)).collect();
    // Centred second moments (two passes: no cancellation when the means are large).
    let nonfinite = rows_b(&p.nonfinite, shape, 1);
    let ca = rows_f(&p.af, shape, 1).sub(floats_like(ma.clone(), [s, 1], &p.af)).mask_fill(nonfinite.clone(), 0.0);
    let cb = rows_f(&p.bf, shape, 1).sub(floats_like(mb.clone(), [s, 1], &p.af)).mask_fill(nonfinite, 0.0);
    let m = read_floats(vec![
        col(ca.clone().square().sum_dim(1)),
        col(cb.clone().square().sum_dim(1)),
        col(ca.mul(cb).sum_dim(1)),
    ])?;
    Ok((0..s)
        .map(|i| {
            let (saa, sbb, sab) = (m[i], m[s + i], m[2 * s + i]);
            let n = r.finite[i] as f64;
            let (max_abs, mean_abs, rmse) = err_stats(&r, i);
            let scale = (saa > 0.0).then(|| sab / saa);
            ChannelStats {
                channel: i,
                numel: r.numel,
                mismatched: r.mismatched[i],
                max_abs,
                mean_abs,
                rmse,
                mean_a: if n > 0.0 { ma[i] } else { f64::NAN },
                mean_b: if n > 0.0 { mb[i] } else { f64::NAN },
                std_a: if n > 0.0 { (saa / n).sqrt() } else { f64::NAN },
                std_b: if n > 0.0 { (sbb / n).sqrt() } else { f64::NAN },
                scale,
                shift: scale.map(|k| mb[i] - k * ma[i]),
                r2: (saa > 0.0 && sbb > 0.0).then(|| sab * sab / (saa * sbb)),
            }
        })
        .collect())
}

/// Per-frame error statistics (axis 2 of a 5-D tensor).
pub(crate) fn frame_stats(p: &Pair, shape: &[usize]) -> Result<Vec<FrameStats>> {
    let Some(r) = row_sums(p, shape, 2)? else {
        return Ok(vec![]);
    };
    Ok((0..r.s)
        .map(|i| {
            let (max_abs, mean_abs, rmse) = err_stats(&r, i);
            FrameStats { frame: i, numel: r.numel, mismatched: r.mismatched[i], max_abs, mean_abs, rmse }
        })
        .collect())
}
