//! Qwen-Image's 3-axis rotary position embedding (`comfy/ldm/flux/layers.py:EmbedND` + `math.py:rope`,
//! applied by `qwen_image/model.py:apply_rotary_emb`).
//!
//! Positions: the sequence is `[text, image]`. Image token (row r, column c) of an `h × w` token
//! grid sits at `(0, r − h/2, c − w/2)` (integer halves, so the grid is centred), and text token j
//! at `(k, k, k)` with `k = max(h/2, w/2) + j`, i.e. the text continues the diagonal just past the
//! image's extent. Row/column ids are built with `torch.linspace` in the compute dtype, so in bf16
//! they are bf16-rounded (exact below 256 tokens per side).
//!
//! Table: per axis of `d` channels, `ω_k = 1 / 10000^(linspace(0, (d−2)/d, d/2))` in float64, angles
//! `pos · ω_k` in float64, `cos`/`sin` in float64, rounded to float32 and then to the compute dtype.
//! The rotation acts on interleaved channel pairs `(2k, 2k+1)`:
//! `out₀ = cos·x₀ + (−sin)·x₁`, `out₁ = sin·x₀ + cos·x₁` — two rounded products and one rounded sum,
//! as torch computes it.

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::config::PATCH;

/// The (frame, row, column) position of every token, text first.
pub fn position_ids(text_len: usize, h_tokens: usize, w_tokens: usize, dtype: DType) -> Vec<[f64; 3]> {
    let round = |v: f64| match dtype {
        DType::BF16 => half::bf16::from_f64(v).to_f64(),
        DType::F16 => half::f16::from_f64(v).to_f64(),
        _ => v,
    };
    let txt_start = (h_tokens / 2).max(w_tokens / 2);
    let mut ids = Vec::with_capacity(text_len + h_tokens * w_tokens);
    ids.extend((0..text_len).map(|j| [(txt_start + j) as f64; 3]));
    for r in 0..h_tokens {
        let row = round(round(r as f64) - (h_tokens / 2) as f64);
        for c in 0..w_tokens {
            let col = round(round(c as f64) - (w_tokens / 2) as f64);
            ids.push([0.0, row, col]);
        }
    }
    ids
}

/// Tokens per side of a latent side of `size` pixels-in-latent: `(size + 1) / 2` (the padded size
/// halved).
pub fn tokens(size: usize) -> usize {
    size.div_ceil(PATCH)
}

/// `torch.linspace(start, end, steps, dtype=float64)`: the first half counted up from `start`, the
/// second half down from `end`.
fn linspace(start: f64, end: f64, steps: usize) -> Vec<f64> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f64;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| if i < halfway { start + step * i as f64 } else { end - step * (steps - i - 1) as f64 })
        .collect()
}

/// The rotation tables for one sequence, ready to broadcast over `[B, S, H, head_dim]`.
#[derive(Clone, Debug)]
pub struct RopeTable {
    /// `cos` repeated on both channels of each pair: `[1, S, 1, head_dim]`.
    pub cos: Tensor<4>,
    /// `(−sin, +sin)` on the two channels of each pair: `[1, S, 1, head_dim]`.
    pub sin: Tensor<4>,
}

impl RopeTable {
    pub fn new(ids: &[[f64; 3]], axes: [usize; 3], theta: f64, dtype: DType, device: &Device) -> Self {
        let head_dim: usize = axes.iter().sum();
        let omegas: Vec<Vec<f64>> = axes
            .iter()
            .map(|&d| linspace(0.0, (d as f64 - 2.0) / d as f64, d / 2).iter().map(|s| 1.0 / theta.powf(*s)).collect())
            .collect();
        let mut cos = Vec::with_capacity(ids.len() * head_dim);
        let mut sin = Vec::with_capacity(ids.len() * head_dim);
        for id in ids {
            for (axis, omega) in omegas.iter().enumerate() {
                for w in omega {
                    let angle = (id[axis] as f32) as f64 * w;
                    let (c, s) = (angle.cos() as f32, angle.sin() as f32);
                    cos.extend([c, c]);
                    sin.extend([-s, s]);
                }
            }
        }
        let shape = [1, ids.len(), 1, head_dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos, shape), (device, dtype)),
            sin: Tensor::from_data(TensorData::new(sin, shape), (device, dtype)),
        }
    }

    /// Rotates `x: [B, S, H, head_dim]`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, s, h, d] = x.dims();
        let swapped = x.clone().reshape([b, s, h, d / 2, 2]).flip([4]).reshape([b, s, h, d]);
        x * self.cos.clone() + swapped * self.sin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_comfyui_process_img() {
        // 147 latent rows → 74 token rows, 110 columns → 55: txt_start = max(37, 27) = 37.
        let ids = position_ids(2, tokens(147), tokens(110), DType::F32);
        assert_eq!(ids[0], [37.0; 3]);
        assert_eq!(ids[1], [38.0; 3]);
        assert_eq!(ids[2], [0.0, -37.0, -27.0]);
        assert_eq!(ids.last().unwrap(), &[0.0, 36.0, 27.0]);
        assert_eq!(ids.len(), 2 + 74 * 55);
    }

    #[test]
    fn linspace_matches_torch_endpoints() {
        let v = linspace(0.0, 54.0 / 56.0, 28);
        assert_eq!(v[0], 0.0);
        assert_eq!(v[27], 54.0 / 56.0);
        assert_eq!(linspace(0.0, 0.75, 1), vec![0.0]);
    }
}
