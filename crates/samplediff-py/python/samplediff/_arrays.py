"""numpy arrays and torch tensors into the core without copies where the dtype allows.

The native module borrows C-contiguous, little-endian numpy buffers directly. A torch tensor on
the CPU becomes such a buffer through DLPack (``np.from_dlpack``: shared memory, no copy).
bfloat16 and float8 have no numpy dtype, so they travel as integer bit views with the dtype named
explicitly. Copies happen only when they must: a GPU tensor (moved to the CPU), a
non-contiguous or big-endian array (made contiguous / native).

torch is never imported here: a tensor is recognised only if torch is already loaded.
"""

from __future__ import annotations

import sys
from typing import Any, Optional, Tuple

import numpy as np

# torch dtype name -> (integer view dtype name, samplediff dtype name)
_BIT_VIEWS = {
    "bfloat16": ("int16", "BF16"),
    "float8_e4m3fn": ("uint8", "F8_E4M3"),
    "float8_e5m2": ("uint8", "F8_E5M2"),
}


def is_torch_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _torch_to_numpy(t: Any) -> Tuple[np.ndarray, Optional[str]]:
    import torch  # already imported by the caller's program

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if not t.is_contiguous():
        t = t.contiguous()
    dtype_name = str(t.dtype).removeprefix("torch.")
    if dtype_name in _BIT_VIEWS:
        view, name = _BIT_VIEWS[dtype_name]
        return np.from_dlpack(t.view(getattr(torch, view))), name
    try:
        return np.from_dlpack(t), None
    except (TypeError, RuntimeError, BufferError):
        return t.numpy(), None


def as_array(obj: Any, name: str = "tensor") -> Tuple[np.ndarray, Optional[str]]:
    """``(array, dtype_name_or_None)``: a C-contiguous native-endian numpy array viewing ``obj``."""
    if is_torch_tensor(obj):
        arr, dtype_name = _torch_to_numpy(obj)
    else:
        try:
            arr, dtype_name = np.asarray(obj), None
        except Exception as e:  # noqa: BLE001 - any conversion failure is the caller's input
            raise TypeError(f"{name}: cannot be read as an array ({e})") from e
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr, dtype_name


def as_f32(obj: Any, name: str = "tensor") -> np.ndarray:
    """A C-contiguous float32 array (no copy when ``obj`` already is one, or a CPU float32 tensor)."""
    arr, dtype_name = as_array(obj, name)
    if dtype_name is not None:  # bit view of bfloat16 / float8: decode through torch
        arr = np.from_dlpack(obj.detach().float().cpu().contiguous())
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def named_arrays(obj: Any, default_name: str) -> list:
    """``[(name, array, dtype_name)]`` for an array, a tensor, or a mapping of names to them."""
    if isinstance(obj, dict) or (hasattr(obj, "items") and not hasattr(obj, "shape")):
        return [(str(k), *as_array(v, str(k))) for k, v in obj.items()]
    return [(default_name, *as_array(obj, default_name))]
