//! Classifier-free guidance as ComfyUI computes it (`comfy/samplers.py:sampling_function`,
//! `cfg_function`) and the post-CFG functions of `comfy_extras/nodes_cfg.py`.
//!
//! Everything happens in x0 ("denoised") space, float32, in ComfyUI's operation order:
//! `uncond + (cond - uncond) * cfg`, then each post-CFG function in registration order.
//! Python floats (cfg, strength, 1e-8) become float32 the moment they meet a tensor, so they are
//! kept as `f64` here and rounded at that same point.

mod torch_sum;

use burn::tensor::Tensor;

pub use torch_sum::torch_cpu_sum;

use crate::error::{ChainError, Result};

/// What a post-CFG function sees: ComfyUI's `args` dict of `sampler_post_cfg_function`.
#[derive(Debug, Clone, Copy)]
pub struct PostCfgArgs<'a> {
    /// The CFG result so far (after earlier post-CFG functions).
    pub denoised: &'a Tensor<5>,
    /// The positive prompt's x0 prediction.
    pub cond_denoised: &'a Tensor<5>,
    /// The negative prompt's x0 prediction; all zeros when the cfg == 1 shortcut skipped it,
    /// exactly what ComfyUI passes then.
    pub uncond_denoised: &'a Tensor<5>,
    /// Whether the negative side was evaluated (ComfyUI's `uncond` is `None` otherwise).
    pub uncond_evaluated: bool,
    /// The guidance scale, as the Python float ComfyUI holds.
    pub cond_scale: f64,
    /// The model call's noise level.
    pub sigma: f32,
    /// The sampler's input `x` for this model call.
    pub input: &'a Tensor<5>,
}

/// A user-supplied post-CFG function (ComfyUI's `set_model_sampler_post_cfg_function`).
pub type CustomPostCfg = Box<dyn FnMut(&PostCfgArgs<'_>) -> Result<Tensor<5>> + Send>;

/// One entry of ComfyUI's `sampler_post_cfg_function` list.
pub enum PostCfg {
    /// The `CFGNorm` node: shrink the CFG result's per-pixel channel norm to the positive
    /// prediction's, then scale by `strength`.
    CfgNorm(CfgNorm),
    /// The `CFGZeroStar` node.
    CfgZeroStar,
    /// Any other function.
    Custom(CustomPostCfg),
}

impl std::fmt::Debug for PostCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostCfg::CfgNorm(n) => f.debug_tuple("CfgNorm").field(n).finish(),
            PostCfg::CfgZeroStar => f.write_str("CfgZeroStar"),
            PostCfg::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl PostCfg {
    /// Applies this function to `args`, returning the new denoised tensor.
    pub fn apply(&mut self, args: &PostCfgArgs<'_>) -> Result<Tensor<5>> {
        match self {
            PostCfg::CfgNorm(n) => Ok(n.apply(args.cond_denoised, args.denoised)),
            PostCfg::CfgZeroStar => {
                cfg_zero_star(args.input, args.cond_denoised, args.uncond_denoised, args.denoised, args.cond_scale)
            }
            PostCfg::Custom(f) => f(args),
        }
    }
}

/// ComfyUI's `CFGNorm` post-CFG function (`comfy_extras/nodes_cfg.py`).
///
/// `scale = clamp(||cond||_c / (||denoised||_c + eps), min, max)`, result `denoised * scale * strength`,
/// norms taken over the channel axis (dim 1) at every latent position. The node fixes
/// `eps = 1e-8`, `min = 0`, `max = 1`; they are fields so the formula can be studied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CfgNorm {
    /// The node's `strength` input (a Python float; rounded to f32 when it multiplies).
    pub strength: f64,
    /// Added to the denoised norm before dividing (the node's literal `1e-8`).
    pub eps: f64,
    /// Lower clamp of the scale.
    pub clamp_min: f64,
    /// Upper clamp of the scale: 1 means CFGNorm only ever shrinks.
    pub clamp_max: f64,
}

impl CfgNorm {
    /// The node with its fixed constants and the given strength.
    pub fn new(strength: f64) -> Self {
        Self { strength, eps: 1e-8, clamp_min: 0.0, clamp_max: 1.0 }
    }

    /// `denoised * scale * strength`, evaluated left to right as torch does.
    pub fn apply(&self, cond_denoised: &Tensor<5>, denoised: &Tensor<5>) -> Tensor<5> {
        let norm_cond = channel_norm(cond_denoised);
        let norm_pred = channel_norm(denoised);
        let scale =
            norm_cond.div(norm_pred.add_scalar(self.eps as f32)).clamp(self.clamp_min as f32, self.clamp_max as f32);
        denoised.clone().mul(scale).mul_scalar(self.strength as f32)
    }
}

/// `torch.norm(t, dim=1, keepdim=True)` for a float32 tensor, bit for bit as torch's CPU kernel.
///
/// Torch reduces a non-innermost dimension with one float32 accumulator per output, adding
/// `t[c]*t[c]` for c = 0, 1, ... in order (the product rounded on its own, no fused multiply-add),
/// then takes the square root. Writing that as one elementwise op per channel slice makes the order
/// explicit, so every backend gives the same bits (up to its own rounding of `*`, `+`, `sqrt`).
/// Verified against ComfyUI's recorded CFGNorm outputs (all calls of all `wf_*` fixtures, max abs 0);
/// float64 accumulation and fused multiply-add both miss by up to 2 ulp.
pub fn channel_norm(t: &Tensor<5>) -> Tensor<5> {
    let channels = t.dims()[1];
    let mut acc: Option<Tensor<5>> = None;
    for c in 0..channels {
        let slice = t.clone().narrow(1, c, 1);
        let square = slice.clone().mul(slice);
        acc = Some(match acc {
            None => square,
            Some(a) => a.add(square),
        });
    }
    match acc {
        Some(a) => a.sqrt(),
        None => {
            let [b, _, t_, h, w] = t.dims();
            Tensor::zeros([b, 1, t_, h, w], &t.device())
        }
    }
}

/// ComfyUI's `CFGZeroStar` post-CFG function:
/// `alpha = <x - cond, x - uncond> / (||x - uncond||^2 + 1e-8)` per batch item, then
/// `denoised + uncond * (alpha - 1) + cfg * uncond * (1 - alpha)`.
///
/// The two sums over all non-batch elements are the one place where the reduction order matters.
/// They are taken on the host in torch's CPU order ([`torch_cpu_sum`]), which is bit-exact for
/// torch's single-threaded reductions (per-item element counts under 32768, or one thread); a
/// multi-threaded or GPU torch sums in another order, within a few ulp of this.
pub fn cfg_zero_star(
    x: &Tensor<5>,
    cond_denoised: &Tensor<5>,
    uncond_denoised: &Tensor<5>,
    denoised: &Tensor<5>,
    cond_scale: f64,
) -> Result<Tensor<5>> {
    let positive = x.clone().sub(cond_denoised.clone());
    let negative = x.clone().sub(uncond_denoised.clone());
    let batch = x.dims()[0];
    let products = read_f32(positive.mul(negative.clone()))?;
    let squares = read_f32(negative.clone().mul(negative))?;
    let per_item = products.len() / batch.max(1);
    let mut alphas = Vec::with_capacity(batch);
    for b in 0..batch {
        let range = b * per_item..(b + 1) * per_item;
        let dot = torch_cpu_sum(&products[range.clone()]);
        let squared_norm = torch_cpu_sum(&squares[range]) + 1e-8_f32;
        alphas.push(dot / squared_norm);
    }
    let alpha = Tensor::<1>::from_data(burn::tensor::TensorData::new(alphas, [batch]), &x.device())
        .reshape([batch, 1, 1, 1, 1]);
    // out + uncond * (alpha - 1.0) + guidance_scale * uncond * (1.0 - alpha)
    let term1 = uncond_denoised.clone().mul(alpha.clone().sub_scalar(1.0f32));
    let term2 = uncond_denoised.clone().mul_scalar(cond_scale as f32).mul(alpha.neg().add_scalar(1.0f32));
    Ok(denoised.clone().add(term1).add(term2))
}

/// ComfyUI's `cfg_function` without a custom `sampler_cfg_function`:
/// `uncond + (cond - uncond) * cond_scale`.
pub fn cfg_combine(cond_denoised: &Tensor<5>, uncond_denoised: &Tensor<5>, cond_scale: f64) -> Tensor<5> {
    uncond_denoised.clone().add(cond_denoised.clone().sub(uncond_denoised.clone()).mul_scalar(cond_scale as f32))
}

/// Whether ComfyUI skips the negative prompt: `math.isclose(cond_scale, 1.0)` (relative
/// tolerance 1e-9) unless a model option disables the optimisation.
pub fn skips_uncond(cond_scale: f64, disable_cfg1_optimization: bool) -> bool {
    !disable_cfg1_optimization && (cond_scale - 1.0).abs() <= 1e-9 * cond_scale.abs().max(1.0)
}

/// The guidance half of ComfyUI's `sampling_function`: CFG and the post-CFG list.
#[derive(Debug, Default)]
pub struct Guidance {
    /// The KSampler's `cfg` (a Python float).
    pub cfg: f64,
    /// Post-CFG functions in registration order (a `CFGNorm` node appends one).
    pub post_cfg: Vec<PostCfg>,
    /// ComfyUI's `disable_cfg1_optimization` model option.
    pub disable_cfg1_optimization: bool,
}

impl Guidance {
    /// Plain CFG with no post-CFG functions.
    pub fn new(cfg: f64) -> Self {
        Self { cfg, post_cfg: Vec::new(), disable_cfg1_optimization: false }
    }

    /// Appends a post-CFG function, as another model-patching node would.
    pub fn with(mut self, f: PostCfg) -> Self {
        self.post_cfg.push(f);
        self
    }

    /// Whether the negative prompt is evaluated at all.
    pub fn needs_uncond(&self) -> bool {
        !skips_uncond(self.cfg, self.disable_cfg1_optimization)
    }

    /// CFG then every post-CFG function. `uncond_denoised` must be the zeros tensor when the
    /// negative side was skipped (ComfyUI's `out_conds[1]` stays 0 then).
    pub fn apply(
        &mut self,
        x: &Tensor<5>,
        sigma: f32,
        cond_denoised: &Tensor<5>,
        uncond_denoised: &Tensor<5>,
    ) -> Result<Tensor<5>> {
        if cond_denoised.dims() != x.dims() || uncond_denoised.dims() != x.dims() {
            return Err(ChainError::Model(format!(
                "prediction shapes {:?}/{:?} differ from x {:?}",
                cond_denoised.dims(),
                uncond_denoised.dims(),
                x.dims()
            )));
        }
        let uncond_evaluated = self.needs_uncond();
        let mut result = cfg_combine(cond_denoised, uncond_denoised, self.cfg);
        for f in &mut self.post_cfg {
            let args = PostCfgArgs {
                denoised: &result,
                cond_denoised,
                uncond_denoised,
                uncond_evaluated,
                cond_scale: self.cfg,
                sigma,
                input: x,
            };
            result = f.apply(&args)?;
        }
        Ok(result)
    }
}

fn read_f32(t: Tensor<5>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| ChainError::Invalid(format!("cannot read tensor as float32: {e:?}")))
}
