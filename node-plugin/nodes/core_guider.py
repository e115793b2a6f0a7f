"""ComfyUI's model as the denoiser of the samplediff core.

Division of labour (what runs where, and why):

* The samplediff core (``samplediff.sample``) drives everything around the model: the initial
  noise, the sigma schedule, the latent format (``process_in`` / ``process_out``), noise
  scaling, the sampler's updates and its per-step noise. That is the shared reference chain a
  service runs too.
* ComfyUI computes each model call's *denoised* exactly as its KSampler would: this module's
  :class:`CoreGuider` is a ``comfy.samplers.CFGGuider`` (so conds, hooks, model loading, LoRA
  patches and wrappers are prepared by ComfyUI itself), and the core calls the guider, i.e.
  ComfyUI's ``sampling_function``: ``calc_cond_batch`` for the positive and negative
  conditioning, then CFG and every ``sampler_post_cfg_function`` of the model's options
  (CFGNorm and any other model patch). The core runs in "guided" mode and applies no guidance of
  its own, so model patches the core does not know are still honoured.
* One post-CFG hook, appended after the model's own, records ``cond_denoised`` /
  ``uncond_denoised`` for the trace and returns ``denoised`` untouched.

On the CPU in float32 the result is bit-identical to the stock KSampler: the core's float32
arithmetic is ComfyUI's operation for operation (golden-tested), and the model sees the very same
inputs. What the core cannot run (masks, samplers or model samplings it does not implement) is
refused by :func:`unsupported_reason`, and the node then runs the stock KSampler.
"""

from __future__ import annotations

import numpy as np
import torch

import comfy.model_patcher
import comfy.model_sampling
import comfy.samplers

# Samplers the core implements, asked of the core itself (samplediff-chain's Sampler::NAMES).
try:
    from samplediff import sampler_names as _core_sampler_names
    # uni_pc(_bh2) are not yet routed through the node's guider path: they keep the stock KSampler.
    CORE_SAMPLERS = set(_core_sampler_names()) - {"uni_pc", "uni_pc_bh2"}
except Exception:  # the wheel is missing or broken: Trace KSampler falls back to the stock KSampler
    CORE_SAMPLERS = set()
STOCHASTIC = {"euler_ancestral", "res_multistep_ancestral", "lcm"}
BROWNIAN = {"dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu"}
CORE_LATENT_FORMATS = {"SD15", "SDXL", "SD3", "Flux", "Wan21"}


def model_sampling_of(model) -> tuple:
    """``(kind, shift, multiplier)`` of the model's sampling object for the core, or raises
    ValueError when the core has no equivalent (only rectified-flow CONST models are supported)."""
    ms = model.get_model_object("model_sampling")
    if not isinstance(ms, comfy.model_sampling.CONST):
        raise ValueError(f"model sampling {type(ms).__name__} is not a rectified-flow (CONST) model")
    if isinstance(ms, comfy.model_sampling.ModelSamplingDiscreteFlow):
        return "discrete_flow", float(ms.shift), float(ms.multiplier)
    if isinstance(ms, comfy.model_sampling.ModelSamplingFlux):
        return "flux", float(ms.shift), 1.0
    raise ValueError(f"model sampling {type(ms).__name__} is not implemented in the core")


def latent_format_of(model) -> str:
    return type(model.get_model_object("latent_format")).__name__


def unsupported_reason(model, sampler_name: str, latent: dict):
    """Why the core cannot run this KSampler call, or None when it can."""
    if sampler_name not in CORE_SAMPLERS:
        return f"sampler {sampler_name} is not implemented in the samplediff core"
    if "noise_mask" in latent:
        return "latent noise masks (inpainting) are not implemented in the samplediff core"
    if latent["samples"].dtype != torch.float32:
        return f"latent dtype {latent['samples'].dtype} (the core samples float32)"
    fmt = latent_format_of(model)
    if fmt not in CORE_LATENT_FORMATS:
        return f"latent format {fmt} is not implemented in the samplediff core"
    try:
        model_sampling_of(model)
    except ValueError as e:
        return str(e)
    return None


def post_cfg_description(model_options: dict) -> list:
    """Names (and CFGNorm strengths) of the model's post-CFG functions, for the trace."""
    out = []
    for fn in model_options.get("sampler_post_cfg_function", []):
        entry = {"name": getattr(fn, "__qualname__", type(fn).__name__)}
        code, closure = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
        if code is not None and closure and "strength" in code.co_freevars:
            value = closure[code.co_freevars.index("strength")].cell_contents
            if isinstance(value, (int, float)):
                entry["strength"] = float(value)
        out.append(entry)
    return out


def cfgnorm_strength(model_options: dict):
    """The strength of a CFGNorm node's post-CFG function, if the model has exactly one."""
    found = [e.get("strength") for e in post_cfg_description(model_options) if e["name"].endswith("cfg_norm")]
    return found[0] if len(found) == 1 else None


class _SideRecorder:
    """A post-CFG function that keeps the call's cond/uncond predictions and changes nothing."""

    def __init__(self):
        self.cond = self.uncond = None

    def __call__(self, args):
        self.cond, self.uncond = args["cond_denoised"], args["uncond_denoised"]
        return args["denoised"]


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


class CoreGuider(comfy.samplers.CFGGuider):
    """A CFGGuider whose sampling loop is the samplediff core's.

    ComfyUI's ``CFGGuider.sample``/``outer_sample`` prepare conds, hooks and load the (patched)
    model as usual; :meth:`inner_sample`, the part that runs the sampler, hands the loop to
    ``samplediff.sample`` with ComfyUI's ``sampling_function`` (via ``self``) as the model.
    """

    def __init__(self, model_patcher, *, sampler_name: str, core_kwargs: dict, trace_info=None):
        super().__init__(model_patcher)
        self.sampler_name = sampler_name
        self.core_kwargs = core_kwargs
        # trace_info(model_options) -> dict of sample()'s trace_* arguments, called while the
        # (patched) model is loaded, so the fingerprint sees the weights it computes with.
        self.trace_info = trace_info
        self.trace = None  # the recorded samplediff.Trace of the last run

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback, disable_pbar, seed):
        import samplediff

        # As CFGGuider.inner_sample: conds see the process_in'ed latent (non-empty latents only).
        latent_for_conds = latent_image
        if latent_image is not None and torch.count_nonzero(latent_image) > 0:
            latent_for_conds = self.inner_model.process_latent_in(latent_image)
        self.conds = comfy.samplers.process_conds(
            self.inner_model, noise, self.conds, device, latent_for_conds, denoise_mask, seed
        )
        extra_model_options = comfy.model_patcher.create_model_options_clone(self.model_options)
        extra_model_options.setdefault("transformer_options", {})["sample_sigmas"] = sigmas
        recorder = _SideRecorder()
        comfy.model_patcher.set_model_options_post_cfg_function(extra_model_options, recorder)

        def model_fn(x, sigma, side):
            # What KSamplerX0Inpaint -> CFGGuider.__call__ -> sampling_function computes.
            xt = torch.from_numpy(x).to(device)
            st = torch.from_numpy(sigma).to(device)
            recorder.cond = recorder.uncond = None
            try:
                denoised = self(xt, st, model_options=extra_model_options, seed=seed)
            except Exception as e:
                e.samplediff_from_model = True  # the model's own failure: the node re-raises it
                raise
            cond = None if recorder.cond is None else _numpy(recorder.cond)
            uncond = None if recorder.uncond is None else _numpy(recorder.uncond)
            return _numpy(denoised), cond, uncond

        def step(i, x, denoised, total):
            if callback is not None:  # ComfyUI's sampler callback: previews and the progress bar
                callback(i, torch.from_numpy(denoised), torch.from_numpy(x), total)

        sig = _numpy(sigmas)
        noise_sampler = None
        if self.sampler_name in BROWNIAN:
            # ComfyUI's BrownianTreeNoiseSampler exactly as sample_dpmpp_2m_sde builds it.
            from comfy.k_diffusion.sampling import BrownianTreeNoiseSampler

            positive = sig[sig > 0]
            tree = BrownianTreeNoiseSampler(
                torch.zeros(noise.shape, dtype=torch.float32, device=device),
                torch.tensor(positive.min()),
                torch.tensor(sig.max()),
                seed=seed,
                cpu=not self.sampler_name.endswith("_gpu"),
            )
            noise_sampler = lambda s, s_next: tree(torch.tensor(s), torch.tensor(s_next))  # noqa: E731
        elif self.sampler_name in STOCHASTIC:
            # default_noise_sampler(x, seed): a generator on x's device.
            if torch.device(device).type == "cuda":
                props = torch.cuda.get_device_properties(device)
                noise_sampler = ("cuda", int(seed), props.multi_processor_count, props.max_threads_per_multi_processor)
            else:
                noise_sampler = ("cpu", int(seed))

        trace_kwargs = self.trace_info(extra_model_options) if self.trace_info is not None else {}
        out, self.trace = samplediff.sample(
            model_fn,
            latent=_numpy(latent_image),
            noise=_numpy(noise),
            sigmas=sig,
            sampler=self.sampler_name,
            prediction="guided",
            noise_sampler=noise_sampler,
            callback=step,
            record=True,
            **self.core_kwargs,
            **trace_kwargs,
        )
        return torch.from_numpy(out).to(device)
