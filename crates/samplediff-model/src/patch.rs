//! Latent ↔ tokens (`qwen_image/model.py:process_img` and the end of `_forward`).
//!
//! An odd height or width is first padded to the patch size with **circular** padding
//! (`common_dit.pad_to_patch_size`): the padding row is a copy of row 0, not zeros. The output is
//! cropped back, so only the tokens' content differs from zero padding.

use burn::tensor::Tensor;

use crate::config::PATCH;

/// `F.pad(x, (0, pw, 0, ph), mode="circular")` on the last two dims of `[B, C, T, H, W]`.
pub fn pad_circular(x: Tensor<5>) -> Tensor<5> {
    let [_, _, _, h, w] = x.dims();
    let (ph, pw) = ((PATCH - h % PATCH) % PATCH, (PATCH - w % PATCH) % PATCH);
    let mut x = x;
    if ph > 0 {
        let wrap = x.clone().narrow(3, 0, ph);
        x = Tensor::cat(vec![x, wrap], 3);
    }
    if pw > 0 {
        let wrap = x.clone().narrow(4, 0, pw);
        x = Tensor::cat(vec![x, wrap], 4);
    }
    x
}

/// `[B, C, 1, H, W]` (H, W even) → tokens `[B, (H/2)(W/2), C·4]`, channel index `c·4 + py·2 + px`,
/// tokens in row-major order of the patch grid.
pub fn patchify(x: Tensor<5>) -> Tensor<3> {
    let [b, c, _, h, w] = x.dims();
    let (hp, wp) = (h / PATCH, w / PATCH);
    x.reshape([b, c, hp, PATCH, wp, PATCH]).permute([0, 2, 4, 1, 3, 5]).reshape([b, hp * wp, c * PATCH * PATCH])
}

/// The inverse of [`patchify`] for the padded size `(h, w)`, then cropped to `(crop_h, crop_w)`.
pub fn unpatchify(tokens: Tensor<3>, channels: usize, h: usize, w: usize, crop_h: usize, crop_w: usize) -> Tensor<5> {
    let b = tokens.dims()[0];
    let (hp, wp) = (h / PATCH, w / PATCH);
    tokens
        .reshape([b, hp, wp, channels, PATCH, PATCH])
        .permute([0, 3, 1, 4, 2, 5])
        .reshape([b, channels, 1, h, w])
        .narrow(3, 0, crop_h)
        .narrow(4, 0, crop_w)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;

    fn latent(c: usize, h: usize, w: usize) -> Tensor<5> {
        let values: Vec<f32> = (0..c * h * w).map(|i| i as f32).collect();
        Tensor::from_data(TensorData::new(values, [1, c, 1, h, w]), &Device::flex())
    }

    #[test]
    fn odd_sides_wrap_around() {
        let padded = pad_circular(latent(1, 3, 5));
        assert_eq!(padded.dims(), [1, 1, 1, 4, 6]);
        let v = padded.into_data().try_to_vec::<f32>().unwrap();
        // Row 3 repeats row 0, column 5 repeats column 0 (also in the wrapped row).
        assert_eq!(&v[18..24], &[0.0, 1.0, 2.0, 3.0, 4.0, 0.0]);
        assert_eq!(v[5], 0.0);
        assert_eq!(v[11], 5.0);
    }

    #[test]
    fn token_channels_are_c_py_px() {
        let tokens = patchify(latent(2, 2, 4));
        assert_eq!(tokens.dims(), [1, 2, 8]);
        let v = tokens.clone().into_data().try_to_vec::<f32>().unwrap();
        // Token 1 = columns 2..4; channel 1 (offset 8) comes after channel 0's 2×2 patch.
        assert_eq!(&v[8..16], &[2.0, 3.0, 6.0, 7.0, 10.0, 11.0, 14.0, 15.0]);
        let back = unpatchify(tokens, 2, 2, 4, 2, 3);
        assert_eq!(back.dims(), [1, 2, 1, 2, 3]);
        assert_eq!(back.into_data().try_to_vec::<f32>().unwrap(), vec![0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 9.0, 10.0, 12.0, 13.0, 14.0]);
    }
}
