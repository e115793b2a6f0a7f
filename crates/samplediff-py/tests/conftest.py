"""Shared test helpers. The golden files are read here with a few lines of numpy (not with the
package under test), so a reader bug cannot hide behind itself."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
COMFY = FIXTURES / "comfyui"
HOSTILE = FIXTURES / "hostile"
# The debug CLI, when built: the Python results must equal its JSON and text.
CLI = Path(os.environ.get("CARGO_TARGET_DIR", "/work/cargo-target")) / "debug" / "samplediff"

_ST_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file, by the format's definition."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype=_ST_DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors, meta


def workflows():
    files = sorted(COMFY.glob("wf_*.safetensors"))
    assert len(files) >= 3, "the golden wf_* files are missing"
    return files


def settings_of(meta):
    return {k: json.loads(v) for k, v in meta.items()}


def bits(a):
    """The float32 bit patterns: equality here is bit-for-bit (NaN payloads and -0.0 included)."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@pytest.fixture(params=[p.name for p in sorted(COMFY.glob("wf_*.safetensors"))])
def golden(request):
    """One golden ComfyUI run: (path, tensors, settings)."""
    path = COMFY / request.param
    tensors, meta = read_safetensors(path)
    return path, tensors, settings_of(meta)
