"""samplediff for Python: compare tensors, read and write sampling traces, explain where two runs
part, and sample exactly as ComfyUI does with your own model.

Everything runs in the same Rust core as the ``samplediff`` command line:

* :func:`compare` / :func:`compare_files` return the report of ``samplediff compare --json``
  as a dict (same schema, same numbers);
* :func:`read_trace` / :func:`write_trace` read and write traces (safetensors in the layout of
  ComfyUI recordings), :func:`load` reads any tensor file the CLI reads;
* :func:`explain` says where two traces part and what that points to; :func:`weights_hash`
  fingerprints a model's weights for a trace's manifest;
* :func:`sample` runs ComfyUI's KSampler chain (noise, sigmas, sampler, CFG, CFGNorm, latent
  format) around a Python callable, so a service samples bit for bit as the workflow did;
  :func:`sigmas` and :func:`noise` give its schedule and initial noise.

Arrays: numpy arrays or torch tensors (read through DLPack without copying where the dtype
allows; bfloat16/float8 as bit views). Errors: every failure raises :class:`SampleDiffError`
(a ``ValueError``) with a one-line message; exceptions raised by your callables propagate
unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._arrays import as_array, as_f32, is_torch_tensor, named_arrays
from ._fingerprint import weights_hash
from ._native import SampleDiffError, sampler_names

__version__ = _native.__version__

__all__ = [
    "SampleDiffError",
    "Trace",
    "compare",
    "compare_files",
    "error_maps",
    "explain",
    "load",
    "noise",
    "read_trace",
    "sample",
    "sigmas",
    "weights_hash",
    "write_trace",
]

PathLike = Union[str, "os.PathLike[str]"]


def _pairs(pairs: Iterable[Any]) -> list:
    out = []
    for p in pairs:
        out.append(p if isinstance(p, str) else f"{p[0]}={p[1]}")
    return out


def compare_files(
    path_a: PathLike,
    path_b: PathLike,
    *,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    rel_floor: Optional[float] = None,
    top_k: int = 10,
    pairs: Iterable[Any] = (),
    text: bool = False,
):
    """Compare every tensor of file A with its partner in the reference file B.

    Exactly ``samplediff compare A B --json [--atol ..] [--rtol ..] [--rel-floor ..]
    [--top-k ..] [--pair a=b ..]``: files are ``path`` or ``path:selector`` (safetensors,
    ComfyUI ``.latent``, torch ``.pt``, ``.npy``/``.npz``); ``pairs`` are ``"name_a=name_b"``
    strings or ``(name_a, name_b)`` tuples. Returns the report dict, or ``(report, text)`` with
    ``text=True`` (the CLI's terminal report).
    """
    js, txt = _native.compare_files(
        os.fspath(path_a), os.fspath(path_b), atol=atol, rtol=rtol, rel_floor=rel_floor, top_k=top_k, pairs=_pairs(pairs)
    )
    report = json.loads(js)
    return (report, txt) if text else report


def compare(
    a: Any,
    b: Any,
    *,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    rel_floor: Optional[float] = None,
    top_k: int = 10,
    pairs: Iterable[Any] = (),
    labels: Tuple[str, str] = ("A", "B"),
    text: bool = False,
):
    """Compare ``a`` against the reference ``b``: arrays/tensors, or mappings of names to them.

    Single arrays are compared with each other; mappings pair by name (and ``pairs``), like the
    tensors of two files. Same report (and options) as :func:`compare_files`. The arrays are read
    in place (no copy for C-contiguous numpy arrays and CPU torch tensors); do not modify them
    during the call.
    """
    js, txt = _native.compare_arrays(
        named_arrays(a, "tensor"),
        named_arrays(b, "tensor"),
        atol=atol,
        rtol=rtol,
        rel_floor=rel_floor,
        top_k=top_k,
        pairs=_pairs(pairs),
        label_a=labels[0],
        label_b=labels[1],
    )
    report = json.loads(js)
    return (report, txt) if text else report


def error_maps(a: Any, b: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel maps of ``|a - b|`` (the data of the CLI's ``--heatmap``).

    Returns ``(abs, bad)``, both ``[C, H, W]``: the largest ``|a-b|`` at each pixel over every
    other axis (batch, frames), channel axis 1 for 4-D/5-D tensors; ``bad`` marks pixels where a
    NaN/Inf on one side is not matched by the other.
    """
    (aa, da), (bb, db) = as_array(a, "a"), as_array(b, "b")
    return _native.error_maps(aa, bb, da, db)


def explain(path_a: PathLike, path_b: PathLike, *, as_dict: bool = False):
    """Why two traces differ, B being the reference: the trace crate's ordered findings (cause,
    stage, step, confidence, measured evidence), earliest root cause first -- each side's noise,
    schedule, guidance, sampler and output convention identified, then the first stage whose
    inputs agree and outputs do not. Returns the text report, or with ``as_dict=True`` the
    findings as a dict (``{"findings": [{"cause", "confidence", "stage", "step", "evidence"}]}``)."""
    js, text = _native.explain(os.fspath(path_a), os.fspath(path_b))
    return json.loads(js) if as_dict else text


_NUMPY_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def _arrays(items) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    tensors, source = {}, {}
    for name, dtype, source_dtype, shape, data in items:
        tensors[name] = np.frombuffer(data, dtype=_NUMPY_DTYPES[dtype]).reshape(shape)
        source[name] = source_dtype
    return tensors, source


def _load(path: PathLike) -> Tuple[Dict[str, np.ndarray], Dict[str, str], Dict[str, str]]:
    items, metadata = _native.load_file(os.fspath(path))
    tensors, source = _arrays(items)
    return tensors, metadata, source


def load(path: PathLike) -> Dict[str, np.ndarray]:
    """Every tensor of a file the CLI reads (``path`` or ``path:selector``), as read-only numpy
    arrays in file order. bfloat16/float8 tensors come back as exact float32."""
    return _load(path)[0]


MANIFEST_KEY = "samplediff.manifest"


@dataclass
class Trace:
    """A sampling trace: named tensors and string metadata (settings JSON-encoded per value, the
    manifest under ``samplediff.manifest``)."""

    tensors: Dict[str, np.ndarray]
    metadata: Dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Dict[str, Any]:
        """The settings: metadata values JSON-decoded where they are JSON (``"3.0"`` -> ``3.0``),
        without the manifest."""
        out = {}
        for k, v in self.metadata.items():
            if k == MANIFEST_KEY or k.startswith("__"):
                continue
            try:
                out[k] = json.loads(v)
            except ValueError:
                out[k] = v
        return out

    @property
    def manifest(self) -> Optional[Dict[str, Any]]:
        """The manifest (format, tool, environment, model fingerprint, conditioning, noise), if any."""
        raw = self.metadata.get(MANIFEST_KEY)
        return None if raw is None else json.loads(raw)

    def save(self, path: PathLike) -> str:
        """Write this trace (tensors and metadata as they are) atomically; returns the path."""
        path = os.fspath(path)
        _native.write_trace(path, [(k, *as_array(v, k)) for k, v in self.tensors.items()], dict(self.metadata))
        return path

    @property
    def steps(self) -> int:
        return sum(1 for k in self.tensors if k.startswith("step") and k.endswith(".x"))

    @property
    def calls(self) -> int:
        return sum(1 for k in self.tensors if k.startswith("call") and k.endswith(".x"))


def read_trace(path: PathLike) -> Trace:
    """Read a trace (or any tensor file) written by :func:`write_trace`, :func:`sample`, the
    ComfyUI node pack or ComfyUI recordings."""
    tensors, metadata, _ = _load(path)
    return Trace(tensors, dict(metadata))


def write_trace(
    path: PathLike,
    tensors: Mapping[str, Any],
    settings: Optional[Mapping[str, Any]] = None,
    manifest: Optional[Mapping[str, Any]] = None,
) -> str:
    """Write a trace file atomically: ``tensors`` (arrays or tensors of any dtype, written as
    they are, in execution order), ``settings`` (each value JSON-encoded, as ComfyUI recordings
    store them) and an optional ``manifest`` dict (format and version are filled in). Returns the
    path."""
    path = os.fspath(path)
    items = [(str(k), *as_array(v, str(k))) for k, v in tensors.items()]
    meta = {str(k): json.dumps(v) for k, v in (settings or {}).items()}
    if manifest is not None:
        meta[MANIFEST_KEY] = json.dumps({"format": "samplediff-trace", "version": 1, **dict(manifest)})
    _native.write_trace(path, items, meta)
    return path


def _write_bytes(path: PathLike, data: bytes) -> str:
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise SampleDiffError(f"{path}: cannot write: {e}") from e
    return path


def sigmas(
    *,
    steps: int,
    scheduler: str = "simple",
    denoise: float = 1.0,
    sampler: str = "euler",
    shift: Optional[float] = None,
    multiplier: float = 1.0,
    model_sampling: str = "discrete_flow",
) -> np.ndarray:
    """The float32 sigma schedule a ComfyUI ``KSampler(steps, sampler, scheduler, denoise)`` runs
    for a model whose sampling is ``model_sampling``: ``"discrete_flow"`` with ``shift`` and
    ``multiplier`` (ModelSamplingAuraFlow: multiplier 1; ModelSamplingSD3: 1000), ``"flux"`` with
    ``shift``, or ``"qwen_image_default"``."""
    return _native.sigmas(
        steps=steps,
        scheduler=scheduler,
        denoise=denoise,
        sampler=sampler,
        shift=shift,
        multiplier=multiplier,
        model_sampling=model_sampling,
    )


def noise(seed: int, shape: Sequence[int], batch_index: Optional[Sequence[int]] = None) -> np.ndarray:
    """ComfyUI's initial noise: ``comfy.sample.prepare_noise`` (torch CPU ``randn``, bit-exact)."""
    return _native.noise(int(seed), [int(s) for s in shape], None if batch_index is None else list(batch_index))


def _wrap_model(model_fn: Callable) -> Callable:
    def call(x, sigma, side):
        out = model_fn(x, sigma, side)
        if isinstance(out, tuple):
            return tuple(None if o is None else as_f32(o, f"model output {i}") for i, o in enumerate(out))
        if out is None:
            return None
        return as_f32(out, "model output")

    return call


def _wrap_noise_sampler(noise_sampler: Any) -> Any:
    if not callable(noise_sampler):
        return noise_sampler

    def call(sigma, sigma_next):
        return as_f32(noise_sampler(np.float32(sigma), np.float32(sigma_next)), "noise sampler output")

    return call


def sample(
    model_fn: Callable,
    *,
    latent: Any,
    noise_seed: Optional[int] = None,
    noise: Any = None,
    steps: Optional[int] = None,
    cfg: float = 1.0,
    sampler: str = "euler",
    scheduler: str = "simple",
    denoise: float = 1.0,
    shift: Optional[float] = None,
    multiplier: float = 1.0,
    model_sampling: str = "discrete_flow",
    cfgnorm: Optional[float] = None,
    latent_format: str = "wan21",
    prediction: str = "x0",
    sigmas: Any = None,
    batch_index: Optional[Sequence[int]] = None,
    noise_sampler: Any = None,
    callback: Optional[Callable] = None,
    trace: Optional[PathLike] = None,
    trace_tensors: Optional[Mapping[str, Any]] = None,
    trace_settings: Optional[Mapping[str, Any]] = None,
    trace_manifest: Optional[Mapping[str, Any]] = None,
    record: bool = False,
):
    """Run ComfyUI's KSampler chain with ``model_fn`` as the model; returns the output LATENT
    samples (numpy, or torch when ``latent`` is a torch tensor), exactly what ComfyUI's KSampler
    returns for the same model answers.

    The chain, all in the core (float32, ComfyUI's operation order): the empty-latent channel fix,
    the initial noise (``noise_seed``: torch CPU ``randn`` as ``prepare_noise``; or an explicit
    ``noise`` array), the sigma schedule (``steps``, ``scheduler``, ``denoise`` and the model
    sampling ``shift``/``multiplier``/``model_sampling``; or explicit ``sigmas``), the latent
    format's ``process_in`` (non-empty latents only), noise scaling, the ``sampler``'s updates,
    CFG with ``cfg`` and, if ``cfgnorm`` is a strength, the CFGNorm post-CFG function, inverse
    noise scaling and ``process_out``. Stochastic samplers draw per-step noise from a CPU
    generator seeded with ``noise_seed`` (ComfyUI on the CPU) unless ``noise_sampler`` is
    ``("cpu", seed)``, ``("cuda", seed, sm_count, max_threads_per_sm)`` (ComfyUI on that GPU) or a
    callable ``(sigma, sigma_next) -> noise``.

    The model contract -- ``model_fn(x, sigma, side) -> array``:

    * ``x``: float32 numpy array, the sampler state in the model's (normalised) latent space,
      ``[B, C, T, H, W]`` for 3-D latent formats (Wan 2.1 / Qwen-Image) or ``[B, C, H, W]`` for
      image formats; a fresh array per call, yours to keep.
    * ``sigma``: float32 array of shape ``[B]``, the noise level (k-diffusion's ``sigma * s_in``;
      for flow models ``x = sigma * noise + (1 - sigma) * x0``).
    * ``side``: ``"positive"`` then, unless ``cfg == 1`` (ComfyUI skips it), ``"negative"``:
      evaluate the model with that prompt's conditioning (which your callable owns).
    * return (numpy array or torch tensor of ``x``'s shape, cast to float32):
      ``prediction="x0"``: the denoised prediction x0; ``prediction="velocity"``: the raw output
      v of a rectified-flow model, turned into ``x - v * sigma`` exactly as ComfyUI's
      ``CONST.calculate_denoised``; ``prediction="guided"``: the callable is asked once per model
      call with ``side="guided"`` and returns the final denoised after its own CFG and post-CFG
      functions, optionally as ``(denoised, cond_denoised, uncond_denoised)`` so the trace records
      both sides (``cfg`` then only says whether ComfyUI skipped the negative side, ``cfgnorm`` is
      not applied by the core). This is how the ComfyUI node runs ComfyUI's own model.

    ``callback(i, x, denoised, total_steps)`` is called once per sampler step (ComfyUI's sampler
    callback; previews). ``trace`` writes a trace file (noise, sigmas, every step's x/denoised,
    every call's x/sigma/cond/uncond/denoised, the latents, the settings, plus ``trace_tensors``
    such as the ``positive``/``negative`` conditioning, ``trace_settings`` and a
    ``trace_manifest`` with environment, model fingerprint and conditioning metadata);
    ``record=True`` returns ``(latent, Trace)``. Exceptions raised by ``model_fn``,
    ``noise_sampler`` or ``callback`` propagate unchanged.
    """
    torch_out = is_torch_tensor(latent)
    want_trace = record or trace is not None
    settings = {
        "seed": noise_seed,
        "steps": steps if steps is not None else (None if sigmas is None else int(np.size(sigmas)) - 1),
        "cfg": float(cfg),
        "sampler": sampler,
        "scheduler": scheduler if sigmas is None else "custom",
        "denoise": float(denoise),
        "shift": shift,
        "multiplier": float(multiplier),
        "model_sampling": model_sampling,
        "cfgnorm": cfgnorm if prediction != "guided" else None,
        "latent_format": latent_format,
        "prediction": prediction,
    }
    settings.update(trace_settings or {})
    out, trace_bytes = _native.sample(
        _wrap_model(model_fn),
        as_f32(latent, "latent"),
        noise=None if noise is None else as_f32(noise, "noise"),
        noise_seed=None if noise_seed is None else int(noise_seed),
        batch_index=None if batch_index is None else [int(i) for i in batch_index],
        sigmas=None if sigmas is None else as_f32(sigmas, "sigmas").reshape(-1),
        steps=steps,
        scheduler=scheduler,
        denoise=float(denoise),
        sampler=sampler,
        cfg=float(cfg),
        cfgnorm=None if cfgnorm is None else float(cfgnorm),
        latent_format=latent_format,
        prediction=prediction,
        model_sampling=model_sampling,
        shift=None if shift is None else float(shift),
        multiplier=float(multiplier),
        noise_sampler=_wrap_noise_sampler(noise_sampler),
        callback=callback,
        record=want_trace,
        trace_settings={str(k): json.dumps(v) for k, v in settings.items()},
        trace_manifest=None if trace_manifest is None else json.dumps(dict(trace_manifest)),
        trace_tensors=[(str(k), *as_array(v, str(k))) for k, v in (trace_tensors or {}).items()],
    )
    result = out
    if torch_out:
        import torch

        result = torch.from_numpy(out)
    if trace is not None:
        _write_bytes(trace, trace_bytes)
    if record:
        items, metadata = _native.load_trace_bytes(trace_bytes)
        return result, Trace(_arrays(items)[0], dict(metadata))
    return result
