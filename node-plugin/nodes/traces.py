"""Load Trace and Compare Traces: a trace's summary, and where two traces part (samplediff explain)."""

from __future__ import annotations

import json

from .common import CATEGORY, failure_text, resolve_path, ui

_PATH_TIP = "A trace file: absolute, or relative to ComfyUI's output folder (Trace KSampler writes samplediff/trace_NNNNN_.safetensors)."


def summary(path: str) -> str:
    import samplediff

    trace = samplediff.read_trace(path)
    s = trace.settings
    lines = [f"samplediff trace: {path}"]
    keys = ["name", "seed", "steps", "cfg", "sampler", "scheduler", "denoise", "shift", "cfgnorm", "latent_format"]
    shown = [f"{k}={json.dumps(s[k])}" for k in keys if k in s]
    if shown:
        lines.append("settings: " + ", ".join(shown))
    lines.append(f"{trace.steps} steps, {trace.calls} model calls, {len(trace.tensors)} tensors")
    for name in ("noise", "latent_in", "latent_out", "positive", "negative"):
        if name in trace.tensors:
            t = trace.tensors[name]
            lines.append(f"  {name}: {list(t.shape)} {t.dtype}")
    env = s.get("environment")
    if isinstance(env, dict):
        lines.append("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    model = s.get("model")
    if isinstance(model, dict) and "weights_sample_sha256" in model:
        lines.append(f"model: {model.get('model_class')} {model.get('dtype')}, weights {model['weights_sample_sha256'][:16]}")
    return "\n".join(lines)


class LoadTrace:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"trace": ("STRING", {"default": "samplediff/trace_00001_.safetensors", "tooltip": _PATH_TIP})}}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    DESCRIPTION = "Read a samplediff trace and show its settings, sizes, environment and model fingerprint."

    def load(self, trace):
        try:
            text = summary(resolve_path(trace))
        except Exception as e:  # noqa: BLE001
            text = failure_text("Load Trace", e)
        return {"ui": ui(text), "result": (text,)}


class CompareTraces:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "trace_a": ("STRING", {"default": "samplediff/trace_00001_.safetensors", "tooltip": _PATH_TIP}),
                "trace_b": ("STRING", {"default": "samplediff/trace_00002_.safetensors", "tooltip": _PATH_TIP + " The reference."}),
            }
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    FUNCTION = "compare"
    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    DESCRIPTION = "Explain where two traces part: differing settings, the first divergent tensor and the stage it points to."

    def compare(self, trace_a, trace_b):
        try:
            import samplediff

            text = samplediff.explain(resolve_path(trace_a), resolve_path(trace_b))
        except Exception as e:  # noqa: BLE001
            text = failure_text("Compare Traces", e)
        return {"ui": ui(text), "result": (text,)}
