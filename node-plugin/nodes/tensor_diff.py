"""Tensor Diff: compare two LATENTs, IMAGEs or CONDITIONINGs with the samplediff core."""

from __future__ import annotations

import numpy as np

from .common import CATEGORY, failure_text, ui
from .heatmap import blank_image, heatmap_image

ANY_TENSOR = "LATENT,IMAGE,CONDITIONING"


def tensors_of(value, side: str) -> dict:
    """The named tensors inside a ComfyUI value: a LATENT dict, an IMAGE tensor or a
    CONDITIONING list of [tensor, {"pooled_output": ..., ...}]."""
    import torch

    if isinstance(value, dict) and "samples" in value:  # LATENT
        out = {"samples": value["samples"]}
        if isinstance(value.get("noise_mask"), torch.Tensor):
            out["noise_mask"] = value["noise_mask"]
        return out
    if isinstance(value, torch.Tensor):  # IMAGE [B, H, W, C] -> [B, C, H, W] so channels are axis 1
        return {"image": value.movedim(-1, 1) if value.ndim == 4 else value}
    if isinstance(value, (list, tuple)):  # CONDITIONING
        out = {}
        for i, entry in enumerate(value):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
                raise ValueError(f"{side}: conditioning entry {i} is not [tensor, dict]")
            tensor, extra = entry
            out[f"cond{i}"] = tensor
            for k, v in (extra or {}).items():
                if isinstance(v, torch.Tensor):
                    out[f"cond{i}.{k}"] = v
        return out
    raise ValueError(f"{side}: a {type(value).__name__} is not a LATENT, IMAGE or CONDITIONING")


class TensorDiff:
    """The samplediff compare report of A against the reference B."""

    @classmethod
    def INPUT_TYPES(cls):
        tol = {"default": -1.0, "min": -1.0, "max": 1e6, "step": 1e-6, "round": False}
        return {
            "required": {
                "a": (ANY_TENSOR, {"tooltip": "The tensors under test."}),
                "b": (ANY_TENSOR, {"tooltip": "The reference: relative errors divide by B."}),
                "atol": ("FLOAT", {**tol, "tooltip": "Absolute tolerance; -1: torch.testing.assert_close's default for the dtypes."}),
                "rtol": ("FLOAT", {**tol, "tooltip": "Relative tolerance; -1: torch's default for the dtypes."}),
            }
        }

    RETURN_TYPES = ("STRING", "IMAGE", "BOOLEAN")
    RETURN_NAMES = ("report", "heatmap", "pass")
    OUTPUT_TOOLTIPS = (
        "The compare report (the same as `samplediff compare`).",
        "Per-channel |a-b| of the worst tensor, one colour scale; cyan marks unmatched NaN/Inf.",
        "True when every tensor is within tolerance.",
    )
    FUNCTION = "diff"
    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    DESCRIPTION = "Compare two LATENTs, IMAGEs or CONDITIONINGs: report, heatmap and pass/fail."

    def diff(self, a, b, atol=-1.0, rtol=-1.0):
        try:
            import samplediff

            ta, tb = tensors_of(a, "a"), tensors_of(b, "b")
            report, text = samplediff.compare(
                ta,
                tb,
                atol=None if atol < 0 else atol,
                rtol=None if rtol < 0 else rtol,
                labels=("a", "b"),
                text=True,
            )
            passed = report["verdict"] == "match"
            image = blank_image()
            ranking = report["summary"]["ranking"]
            if ranking:
                t = next(t for t in report["tensors"] if t["name"] == ranking[0]["name"])
                abs_maps, bad = samplediff.error_maps(ta[t["name_a"]], tb[t["name_b"]])
                image = heatmap_image(abs_maps, bad)
        except Exception as e:  # noqa: BLE001 - analysis must never break the workflow
            text, passed, image = failure_text("Tensor Diff", e), False, blank_image()
        import torch

        return {"ui": ui(text), "result": (text, torch.from_numpy(np.ascontiguousarray(image)), bool(passed))}
