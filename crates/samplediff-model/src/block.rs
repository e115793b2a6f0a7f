//! One joint (MMDiT) transformer block, `qwen_image/model.py:QwenImageTransformerBlock`.
//!
//! Image and text streams keep separate weights but attend jointly over `[text, image]`:
//!
//! ```text
//! (shift, scale, gate) ×2 per stream  = Linear(SiLU(temb)) chunked  [img_mod.1 / txt_mod.1]
//! x_mod  = LN(x)·(1 + scale₁) + shift₁                              (LN without affine, eps 1e-6)
//! q,k,v  = to_q/k/v(img_mod) | add_q/k/v_proj(txt_mod), per head; RMSNorm(q), RMSNorm(k) (eps 1e-6)
//! attn   = SDPA(RoPE(q), RoPE(k), v) over [text, image]
//! x     += gate₁ · to_out.0(attn_img)        txt += gate₁ · to_add_out(attn_txt)
//! x     += gate₂ · MLP(LN(x)·(1 + scale₂) + shift₂)                 (GELU-tanh MLP, 4× width)
//! ```

use burn::tensor::Tensor;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::layers::{Linear, gelu_tanh, layer_norm, modulate, rms_norm, silu};
use crate::rope::RopeTable;

/// LayerNorm and RMSNorm epsilon of the blocks (`eps=1e-6` passed down to `Attention`).
pub const EPS: f64 = 1e-6;

/// `FeedForward`: Linear → GELU(tanh) → (Dropout p=0, an identity) → Linear.
#[derive(Clone, Debug)]
pub struct FeedForward {
    pub proj_in: Linear,
    pub proj_out: Linear,
}

impl FeedForward {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.proj_out.forward(gelu_tanh(self.proj_in.forward(x)))
    }
}

/// The weights of one stream (image or text) inside a block.
#[derive(Clone, Debug)]
pub struct Stream {
    /// `Linear(dim, 6·dim)` on `SiLU(temb)`.
    pub modulation: Linear,
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub norm_q: Tensor<1>,
    pub norm_k: Tensor<1>,
    pub to_out: Linear,
    pub mlp: FeedForward,
}

/// The six modulation vectors of one stream, each `[B, dim]`.
struct Modulation {
    shift1: Tensor<2>,
    scale1: Tensor<2>,
    gate1: Tensor<2>,
    shift2: Tensor<2>,
    scale2: Tensor<2>,
    gate2: Tensor<2>,
}

impl Stream {
    fn modulation(&self, temb_silu: Tensor<2>) -> Modulation {
        let mut parts = self.modulation.forward(temb_silu).chunk(6, 1).into_iter();
        let mut next = || parts.next().expect("six chunks");
        Modulation { shift1: next(), scale1: next(), gate1: next(), shift2: next(), scale2: next(), gate2: next() }
    }

    /// `[B, N, dim]` → RMS-normed, rotated-later `q`, `k` and `v` as `[B, N, heads, head_dim]`.
    fn qkv(&self, x: Tensor<3>, heads: usize) -> [Tensor<4>; 3] {
        let split = |t: Tensor<3>| {
            let [b, n, d] = t.dims();
            t.reshape([b, n, heads, d / heads])
        };
        [
            rms_norm(split(self.to_q.forward(x.clone())), &self.norm_q, EPS),
            rms_norm(split(self.to_k.forward(x.clone())), &self.norm_k, EPS),
            split(self.to_v.forward(x)),
        ]
    }
}

#[derive(Clone, Debug)]
pub struct JointBlock {
    pub img: Stream,
    pub txt: Stream,
    pub heads: usize,
    /// Ones of width `dim`: the LayerNorms have no affine parameters.
    pub ones: Tensor<1>,
}

impl JointBlock {
    /// `(img [B, N, dim], txt [B, L, dim])` → updated `(img, txt)`; `temb_silu` is `SiLU(temb)`.
    pub fn forward(&self, img: Tensor<3>, txt: Tensor<3>, temb_silu: Tensor<2>, rope: &RopeTable) -> (Tensor<3>, Tensor<3>) {
        let img_m = self.img.modulation(temb_silu.clone());
        let txt_m = self.txt.modulation(temb_silu);

        let img_in = modulate(layer_norm(img.clone(), &self.ones, EPS), img_m.shift1, img_m.scale1);
        let txt_in = modulate(layer_norm(txt.clone(), &self.ones, EPS), txt_m.shift1, txt_m.scale1);
        let (img_attn, txt_attn) = self.attention(img_in, txt_in, rope);

        let img = img + img_m.gate1.unsqueeze_dim(1) * img_attn;
        let txt = txt + txt_m.gate1.unsqueeze_dim(1) * txt_attn;

        let img_ff = self.img.mlp.forward(modulate(layer_norm(img.clone(), &self.ones, EPS), img_m.shift2, img_m.scale2));
        let img = img + img_m.gate2.unsqueeze_dim(1) * img_ff;
        let txt_ff = self.txt.mlp.forward(modulate(layer_norm(txt.clone(), &self.ones, EPS), txt_m.shift2, txt_m.scale2));
        let txt = txt + txt_m.gate2.unsqueeze_dim(1) * txt_ff;
        (img, txt)
    }

    fn attention(&self, img: Tensor<3>, txt: Tensor<3>, rope: &RopeTable) -> (Tensor<3>, Tensor<3>) {
        let [b, n_txt, dim] = txt.dims();
        let n_img = img.dims()[1];
        let [iq, ik, iv] = self.img.qkv(img, self.heads);
        let [tq, tk, tv] = self.txt.qkv(txt, self.heads);
        // [B, S, H, hd] with S = text then image; attention wants [B, H, S, hd].
        let joint = |t: Tensor<4>, i: Tensor<4>| Tensor::cat(vec![t, i], 1);
        let q = rope.apply(joint(tq, iq)).swap_dims(1, 2);
        let k = rope.apply(joint(tk, ik)).swap_dims(1, 2);
        let v = joint(tv, iv).swap_dims(1, 2);
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default());
        let out = out.swap_dims(1, 2).reshape([b, n_txt + n_img, dim]);
        let txt_out = out.clone().narrow(1, 0, n_txt);
        let img_out = out.narrow(1, n_txt, n_img);
        (self.img.to_out.forward(img_out), self.txt.to_out.forward(txt_out))
    }
}

/// `LastLayer` (AdaLayerNormContinuous): `emb = Linear(SiLU(temb))`, chunked **scale first, then
/// shift** (the opposite of the blocks), `x = LN(x)·(1 + scale) + shift`.
#[derive(Clone, Debug)]
pub struct FinalLayer {
    pub linear: Linear,
    pub ones: Tensor<1>,
}

impl FinalLayer {
    pub fn forward(&self, x: Tensor<3>, temb_silu: Tensor<2>) -> Tensor<3> {
        let mut parts = self.linear.forward(temb_silu).chunk(2, 1).into_iter();
        let (scale, shift) = (parts.next().expect("two chunks"), parts.next().expect("two chunks"));
        modulate(layer_norm(x, &self.ones, EPS), shift, scale)
    }
}

/// `SiLU(temb)`, shared by every block's modulation and the final layer.
pub fn temb_silu(temb: Tensor<2>) -> Tensor<2> {
    silu(temb)
}
