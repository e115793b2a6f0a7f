"""Trace KSampler: a drop-in KSampler that samples in the samplediff core and records a trace.

Same inputs and output as ComfyUI's KSampler (plus an optional trace name). The sampling loop
is the core's, ComfyUI's model is the denoiser (see core_guider.py for who does what); a trace
(noise, sigmas, every step's x/denoised, every model call's x/sigma/cond/uncond/denoised,
settings, environment and model fingerprints, conditioning metadata) is written under
ComfyUI's output folder. When the core cannot run a configuration (a sampler it does not
implement, an inpainting mask, a non-flow model) the stock KSampler runs instead and the node
says so; a failure to write the trace is reported on the node and never loses the LATENT.
"""

from __future__ import annotations

import os
import platform
import sys

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import nodes as comfy_nodes

from .common import CATEGORY, failure_text, output_dir, ui
from .core_guider import (
    CoreGuider,
    cfgnorm_strength,
    latent_format_of,
    model_sampling_of,
    post_cfg_description,
    unsupported_reason,
)


def _dtype(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def _describe(value):
    """A conditioning dict value as JSON: tensors described (shape, dtype), never stored."""
    if isinstance(value, torch.Tensor):
        return {"tensor": {"shape": list(value.shape), "dtype": _dtype(value)}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    return {"type": type(value).__name__}


def conditioning(cond, side: str) -> tuple:
    """``(tensors, manifest entries)`` of one CONDITIONING side: the tensor of entry 0 is
    ``positive``/``negative`` (the layout of ComfyUI recordings), further entries ``positive.N``;
    each entry's dict is described in the manifest."""
    tensors, entries = {}, []
    for i, (tensor, extra) in enumerate(cond):
        name = side if i == 0 else f"{side}.{i}"
        tensors[name] = tensor
        entries.append({"tensor": name, "meta": _describe(extra or {})})
    return tensors, entries


def environment(model) -> dict:
    """The manifest's environment: what computed this run."""
    import numpy
    import samplediff

    device = comfy.model_management.get_torch_device()
    devices = [torch.cuda.get_device_name(device) if device.type == "cuda" else device.type]
    env = {
        "tool": "ComfyUI",
        "torch_version": torch.__version__,
        "devices": devices,
        "dtypes": {"model": _dtype_name(model.model_dtype()), "latent": "float32"},
        "determinism": {
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        },
        "samplediff": samplediff.__version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import comfyui_version

        env["comfyui_version"] = comfyui_version.__version__
    except ImportError:
        pass
    try:
        import comfy.ldm.modules.attention as attention

        env["attention_backend"] = attention.optimized_attention.__name__
    except (ImportError, AttributeError):
        pass
    return env


def _dtype_name(dtype) -> str:
    return {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}.get(dtype, _dtype(torch.empty(0, dtype=dtype)))


def model_fingerprint(model, model_options: dict) -> dict:
    """The manifest's model fingerprint: stage ``loaded``, the trace crate's recipe over the
    values the model computes with (float32 bytes under the compute dtype's name), taken while
    ComfyUI has the model loaded, so LoRA and other weight patches are included."""
    import samplediff

    diffusion = model.model.diffusion_model
    kind, shift, multiplier = model_sampling_of(model)
    detail = {
        "model_class": type(model.model).__name__,
        "diffusion_model": type(diffusion).__name__,
        "latent_format": latent_format_of(model),
        "model_sampling": {"kind": kind, "shift": shift, "multiplier": multiplier},
        "patched_keys": len(getattr(model, "patches", {}) or {}),
        "object_patches": sorted(getattr(model, "object_patches", {}) or {}),
        "post_cfg_functions": post_cfg_description(model_options),
    }
    named = ((k, v.detach()) for k, v in diffusion.state_dict().items())
    return {"stages": [samplediff.weights_hash("loaded", named, dtype_name=_dtype_name(model.model_dtype()), detail=detail)]}


def trace_file(prefix: str) -> str:
    import folder_paths

    folder, filename, counter, _subfolder, _ = folder_paths.get_save_image_path(prefix, output_dir())
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{filename}_{counter:05}_.safetensors")


class TraceKSampler:
    """KSampler with the samplediff core's loop and a trace of the run."""

    @classmethod
    def INPUT_TYPES(cls):
        types = comfy_nodes.KSampler.INPUT_TYPES()
        types = {k: dict(v) for k, v in types.items()}
        types["optional"] = {
            "trace_prefix": (
                "STRING",
                {"default": "samplediff/trace", "tooltip": "Trace file name prefix under ComfyUI's output folder."},
            )
        }
        return types

    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent (the same as KSampler's).",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "A drop-in KSampler: the samplediff core runs the sampling loop with this model as the denoiser "
        "(bit-identical on CPU/float32) and records a trace under the output folder."
    )

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0,
               trace_prefix="samplediff/trace"):
        try:
            import samplediff  # noqa: F401
        except ImportError as e:
            reason = f"the samplediff package is not installed ({e}); pip install the samplediff wheel"
        else:
            reason = unsupported_reason(model, sampler_name, latent_image)
        if reason is None:
            try:
                return self._core(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                                  denoise, trace_prefix)
            except Exception as e:  # noqa: BLE001
                # The model's own errors and ComfyUI's interrupt behave exactly as in KSampler;
                # anything else is samplediff's failure, and the stock KSampler takes over.
                if getattr(e, "samplediff_from_model", False) or isinstance(
                    e, comfy.model_management.InterruptProcessingException
                ):
                    raise
                reason = f"the samplediff core failed: {type(e).__name__}: {e}"
        result = comfy_nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                             latent_image, denoise=denoise)
        return {"ui": ui(f"samplediff: ran ComfyUI's stock KSampler, no trace ({reason})"), "result": result}

    def _core(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise, prefix):
        import samplediff

        kind, shift, multiplier = model_sampling_of(model)
        latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
        batch_inds = latent.get("batch_index")
        # Both from the core: ComfyUI's prepare_noise (torch CPU randn) and KSampler's schedule.
        noise = torch.from_numpy(samplediff.noise(seed, list(latent_image.shape), batch_inds))
        sigmas = torch.from_numpy(
            samplediff.sigmas(steps=steps, scheduler=scheduler, denoise=denoise, sampler=sampler_name,
                              shift=shift, multiplier=multiplier, model_sampling=kind)
        )
        pos_tensors, pos_meta = conditioning(positive, "positive")
        neg_tensors, neg_meta = conditioning(negative, "negative")
        settings = {
            "name": os.path.basename(prefix),
            "seed": seed,
            "steps": steps,
            "cfg": cfg,
            "sampler": sampler_name,
            "scheduler": scheduler,
            "denoise": denoise,
            "cfgnorm": cfgnorm_strength(model.model_options),
        }

        def trace_info(model_options):
            manifest = {
                "tool": f"comfyui-samplediff Trace KSampler (samplediff {samplediff.__version__})",
                "conditioning": {"positive": pos_meta, "negative": neg_meta},
                "noise": {"source": "torch_cpu", "seed": seed},
            }
            for key, make in (("environment", lambda: environment(model)),
                              ("model", lambda: model_fingerprint(model, model_options))):
                try:
                    manifest[key] = make()
                except Exception as e:  # noqa: BLE001 - fingerprints are analysis
                    manifest[f"{key}_error"] = f"{type(e).__name__}: {e}"
            # latent_in: the LATENT as given to the node (before the empty-latent fix), as
            # ComfyUI recordings hold it.
            return {"trace_settings": settings, "trace_manifest": manifest,
                    "trace_tensors": {**pos_tensors, **neg_tensors, "latent_in": latent["samples"]}}

        guider = CoreGuider(
            model,
            sampler_name=sampler_name,
            core_kwargs=dict(cfg=cfg, latent_format=latent_format_of(model), model_sampling=kind, shift=shift,
                             multiplier=multiplier),
            trace_info=trace_info,
        )
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        callback = latent_preview.prepare_callback(model, steps)
        disable_pbar = not comfy.utils.PROGRESS_BAR_ENABLED
        samples = guider.sample(noise, latent_image, None, sigmas, denoise_mask=None, callback=callback,
                                disable_pbar=disable_pbar, seed=seed)
        samples = samples.to(comfy.model_management.intermediate_device())
        out = latent.copy()
        out["samples"] = samples

        if guider.trace is None:  # no sigmas (denoise 0): ComfyUI returns the latent untouched
            return {"ui": ui("samplediff: nothing to sample (empty schedule), no trace"), "result": (out,)}
        try:
            path = guider.trace.save(trace_file(prefix))
            text = (f"samplediff trace: {path}\n{guider.trace.steps} steps, {guider.trace.calls} model calls, "
                    f"sampler {sampler_name}, scheduler {scheduler}, seed {seed}")
        except Exception as e:  # noqa: BLE001 - the LATENT flows even if the trace cannot be written
            text = failure_text("writing the trace", e)
        return {"ui": ui(text), "result": (out,)}
