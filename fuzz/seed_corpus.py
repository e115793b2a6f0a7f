#!/usr/bin/env python3
"""Write the initial seed corpus of every fuzz target into fuzz/corpus/<target>/ (standard library only).

Seeds are the repository's own test files: tests/fixtures/formats (valid files of every format),
tests/fixtures/hostile (one file per attack; files over 64 KiB are left out, the hostile tests
cover them), tests/fixtures/metrics, the data.pkl of every torch.save file (the pickles torch
really writes), and trace manifests: the one `samplediff run` writes and one in the shape the
ComfyUI node writes (node-plugin/nodes/trace_ksampler.py), alone and inside a small trace file.
Existing files are kept: the corpus also holds every input that once crashed a target.

    python3 fuzz/seed_corpus.py
"""

import json
import struct
import zipfile
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
FIX = FUZZ.parent / "tests" / "fixtures"
MAX_SEED = 64 << 10


def small(paths):
    return [p for p in sorted(paths) if p.is_file() and p.stat().st_size <= MAX_SEED]


def put(target: str, name: str, data: bytes) -> None:
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def copy(target: str, paths) -> None:
    for p in small(paths):
        put(target, f"{p.parent.name}_{p.name}", p.read_bytes())


def safetensors(tensors: dict, metadata: dict) -> bytes:
    """tensors: name -> (dtype, shape, raw bytes)."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


formats, hostile, metrics = FIX / "formats", FIX / "hostile", FIX / "metrics"
hostile_files = [p for p in hostile.iterdir() if p.suffix not in (".py", ".json")]

copy("safetensors", [*formats.glob("*.safetensors"), *formats.glob("*.latent"), *hostile.glob("st_*"),
                     *metrics.glob("*.safetensors")])
copy("npy", [*formats.glob("*.npy"), *hostile.glob("npy_*"), *metrics.glob("*.npy")])
copy("npz", [*formats.glob("*.npz"), *hostile.glob("*.npz"), hostile / "zip_neither.zip"])
copy("torch", [*formats.glob("*.pt"), *hostile.glob("*.pt")])
copy("pickle", hostile.glob("*.pkl"))
for pt in small([*formats.glob("*.pt"), *hostile.glob("*.pt")]):
    try:
        with zipfile.ZipFile(pt) as z:
            for name in z.namelist():
                if name.endswith("data.pkl") and z.getinfo(name).file_size <= MAX_SEED:
                    put("pickle", f"{pt.parent.name}_{pt.stem}_data.pkl", z.read(name))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
        pass  # broken on purpose; the torch target has the file itself
copy("load", [formats / n for n in ("cond.pt", "dtypes.safetensors", "sample.latent", "fortran_f8.npy",
                                    "arrays_compressed.npz", "zero_d.npy")]
     + [p for p in hostile_files if p.stat().st_size <= 4096])

# Trace manifests. `samplediff run` writes the first; the second has every field the ComfyUI node
# fills in (values typed in here, in that node's shapes).
minimal = {"format": "samplediff-trace", "version": 1, "tool": "samplediff 0.1.0"}
full = {
    "format": "samplediff-trace", "version": 1,
    "tool": "comfyui-samplediff Trace KSampler (samplediff 0.1.0)",
    "environment": {
        "tool": "ComfyUI", "torch_version": "2.9.1+cu128", "devices": ["NVIDIA H100 80GB HBM3"],
        "dtypes": {"model": "BF16", "latent": "float32"},
        "determinism": {"deterministic_algorithms": False, "cudnn_benchmark": False},
        "samplediff": "0.1.0", "python": "3.12.3", "torch_threads": 16, "attention_backend": "attention_pytorch",
    },
    "model": {"stages": [{"stage": "loaded", "sha256": "0" * 64, "keys": 58, "dtypes": {"BF16": 58},
                          "detail": {"model_class": "QwenImage", "patched_keys": 0, "object_patches": [],
                                     "model_sampling": {"kind": "ModelSamplingAuraFlow", "shift": 3.1,
                                                        "multiplier": 1.0}}}]},
    "conditioning": {"positive": [{"tensor": "positive", "meta": {"pooled_output": None}}],
                     "negative": [{"tensor": "negative", "meta": {}}]},
    "noise": {"source": "torch_cpu", "seed": 42},
    "future_field": [1, 2.5, "x"],
}
put("trace_manifest", "manifest_minimal.json", json.dumps(minimal).encode())
put("trace_manifest", "manifest_full.json", json.dumps(full, indent=1).encode())
settings = {"name": '"tiny"', "seed": "42", "steps": "2", "cfg": "3.0", "sampler": '"euler"',
            "scheduler": '"simple"', "denoise": "1.0"}
latent = struct.pack("<4f", 0.5, -1.0, 2.0, 0.0)
put("trace_manifest", "trace_tiny.safetensors",
    safetensors({"latent_in": ("F32", [1, 1, 2, 2], latent), "step000.x": ("F32", [1, 1, 2, 2], latent)},
                {**settings, "samplediff.manifest": json.dumps(full, separators=(",", ":"))}))
