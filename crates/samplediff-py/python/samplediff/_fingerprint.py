"""Model fingerprints with the trace crate's recipe (samplediff-trace, fingerprint.rs), streamed.

Tensors sorted by name; for each: the name, a 0 byte, the dtype name (``F32``, ``BF16``, ...),
a 0 byte, the shape as decimal numbers joined by ``,``, a 0 byte, the byte length as 8
little-endian bytes, then the tensor's little-endian bytes. Stage ``loaded`` hashes the values a
model computes with as float32 bytes under the compute dtype's name. Streaming one tensor at a
time keeps memory flat for multi-gigabyte models.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import numpy as np

from ._arrays import as_array, as_f32

_NUMPY_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32",
                "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def weights_hash(
    stage: str,
    tensors: Iterable[Tuple[str, Any]],
    *,
    dtype_name: Optional[str] = None,
    detail: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """A manifest ``WeightsHash`` (``stage``, ``sha256``, ``keys``, ``dtypes``, ``detail``).

    ``tensors``: ``(name, array or tensor)`` pairs, in any order. With ``dtype_name`` (stage
    ``loaded``) every tensor is hashed as float32 values under that name; without it, as stored
    (numpy/torch dtype, bfloat16/float8 as their bits).
    """
    items = sorted(tensors, key=lambda kv: kv[0])
    h = hashlib.sha256()
    dtypes: Dict[str, int] = {}
    for name, value in items:
        if dtype_name is not None:
            arr, dname = as_f32(value, name), dtype_name
        else:
            arr, override = as_array(value, name)
            dname = override or _NUMPY_NAMES.get(arr.dtype.name)
            if dname is None:
                raise TypeError(f"{name}: dtype {arr.dtype} has no samplediff name")
        data = np.ascontiguousarray(arr).tobytes()
        h.update(name.encode())
        h.update(b"\0")
        h.update(dname.encode())
        h.update(b"\0")
        h.update(",".join(str(d) for d in arr.shape).encode())
        h.update(b"\0")
        h.update(struct.pack("<Q", len(data)))
        h.update(data)
        dtypes[dname] = dtypes.get(dname, 0) + 1
    out: Dict[str, Any] = {"stage": stage, "sha256": h.hexdigest(), "keys": len(items), "dtypes": dtypes}
    if detail:
        out["detail"] = dict(detail)
    return out
