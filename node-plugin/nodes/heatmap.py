"""The heatmap IMAGE of Tensor Diff: per-channel |a-b| maps in a grid, one shared colour scale.

Same data as the CLI's `--heatmap` (samplediff.error_maps); drawn here with numpy into
ComfyUI's IMAGE layout [1, H, W, 3], float32 in [0, 1]. Pixels where a NaN/Inf is unmatched are
cyan, outside the scale; a thin dark gap separates tiles.
"""

from __future__ import annotations

import math

import numpy as np

# A perceptual dark-to-bright ramp (close to "inferno"): black, purple, red, orange, pale yellow.
_RAMP = np.array(
    [[0.0, 0.0, 0.02], [0.34, 0.06, 0.43], [0.73, 0.21, 0.33], [0.98, 0.55, 0.04], [0.99, 1.0, 0.64]],
    dtype=np.float32,
)
_BAD = np.array([0.0, 0.9, 1.0], dtype=np.float32)
_GAP = 2
_TARGET = 128  # tiles are scaled up to about this many pixels on their long side


def colorize(values: np.ndarray) -> np.ndarray:
    """values in [0, 1] -> RGB by linear interpolation along the ramp."""
    pos = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(pos).astype(np.int64).clip(0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None].astype(np.float32)
    return _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac


def heatmap_image(abs_maps: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """[C, H, W] maps -> [1, H', W', 3] float32 image."""
    c, h, w = abs_maps.shape
    scale = max(1, _TARGET // max(h, w))
    cols = max(1, math.ceil(math.sqrt(c)))
    rows = math.ceil(c / cols)
    th, tw = h * scale, w * scale
    img = np.full((rows * (th + _GAP) + _GAP, cols * (tw + _GAP) + _GAP, 3), 0.09, dtype=np.float32)
    finite = abs_maps[np.isfinite(abs_maps)]
    top = float(finite.max()) if finite.size else 0.0
    norm = abs_maps / top if top > 0 else np.zeros_like(abs_maps)
    for i in range(c):
        tile = colorize(norm[i])
        tile[bad[i]] = _BAD
        tile = np.kron(tile, np.ones((scale, scale, 1), dtype=np.float32))
        r, q = divmod(i, cols)
        y, x = _GAP + r * (th + _GAP), _GAP + q * (tw + _GAP)
        img[y : y + th, x : x + tw] = tile
    return img[None]


def blank_image(size: int = 64) -> np.ndarray:
    return np.full((1, size, size, 3), 0.09, dtype=np.float32)
