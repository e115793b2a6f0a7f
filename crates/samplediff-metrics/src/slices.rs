//! Per-slice breakdowns: per channel (axis 1 of a 4-D/5-D latent) with the least-squares fit
//! b ~ scale*a + shift, and per frame (axis 2 of a 5-D latent).
//!
//! A slice is one row after moving the axis to the front: [pre, S, post] -> [S, pre*post], so
//! every statistic is one reduction over dim 1 for all slices at once.

use burn::tensor::{Bool, Int, Tensor};

use crate::Result;
use crate::compare::Pair;
use crate::device_ops::{floats_like, read_counts, read_floats};
use crate::moments::Moments;
use crate::report::{ChannelStats, FrameStats};

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

/// Each slice's [`Moments`] (error sums, and with `centred` the moments about the slice's
/// means), and the elements per slice.
fn row_moments(p: &Pair, shape: &[usize], axis: usize, centred: bool) -> Result<(Vec<Moments>, u64)> {
    let (pre, s, post) = split(shape, axis);
    if s == 0 || pre * post == 0 {
        return Ok((vec![], 0));
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
    let mut rows: Vec<Moments> = (0..s)
        .map(|i| {
            let mut m = Moments::default();
            (m.c.numel, m.c.finite, m.c.close) = (numel, c[i], c[s + i]);
            (m.sum_ad, m.sum_ad2, m.max_ad, m.sum_a, m.sum_b) =
                (f[i], f[s + i], f[2 * s + i], f[3 * s + i], f[4 * s + i]);
            if m.c.finite > 0 {
                (m.mean_a, m.mean_b) = (m.sum_a / m.c.finite as f64, m.sum_b / m.c.finite as f64);
            }
            m
        })
        .collect();
    if centred {
        // Centred second moments (two passes: no cancellation when the means are large).
        let ma: Vec<f64> = rows.iter().map(|m| m.mean_a).collect();
        let mb: Vec<f64> = rows.iter().map(|m| m.mean_b).collect();
        let nonfinite = rows_b(&p.nonfinite, shape, axis);
        let ca = rows_f(&p.af, shape, axis).sub(floats_like(ma, [s, 1], &p.af)).mask_fill(nonfinite.clone(), 0.0);
        let cb = rows_f(&p.bf, shape, axis).sub(floats_like(mb, [s, 1], &p.af)).mask_fill(nonfinite, 0.0);
        let m = read_floats(vec![
            col(ca.clone().square().sum_dim(1)),
            col(cb.clone().square().sum_dim(1)),
            col(ca.mul(cb).sum_dim(1)),
        ])?;
        for (i, row) in rows.iter_mut().enumerate() {
            (row.m2a, row.m2b, row.cab) = (m[i], m[s + i], m[2 * s + i]);
        }
    }
    Ok((rows, numel))
}

/// Per-channel statistics and fit (axis 1).
pub(crate) fn channel_stats(p: &Pair, shape: &[usize]) -> Result<Vec<ChannelStats>> {
    let (rows, numel) = row_moments(p, shape, 1, true)?;
    Ok(rows.iter().enumerate().map(|(i, m)| m.channel(i, numel)).collect())
}

/// Per-frame error statistics (axis 2 of a 5-D tensor).
pub(crate) fn frame_stats(p: &Pair, shape: &[usize]) -> Result<Vec<FrameStats>> {
    let (rows, numel) = row_moments(p, shape, 2, false)?;
    Ok(rows.iter().enumerate().map(|(i, m)| m.frame(i, numel)).collect())
}
