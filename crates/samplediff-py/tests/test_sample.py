"""sample(): the reference chain with a Python model reproduces ComfyUI bit for bit.

The "model" replays the golden runs' recorded predictions (callNNN.cond_denoised /
uncond_denoised), so everything else -- noise from the seed, schedule, noise scaling, sampler,
CFG, CFGNorm, Wan 2.1 latent format -- is the chain's, and must give ComfyUI's latent_out exactly.
"""

import json
import subprocess

import numpy as np
import pytest

import samplediff
from conftest import CLI, COMFY, bits, read_safetensors, settings_of


class Replay:
    """A model that answers call k with ComfyUI's recorded predictions for call k, checking that
    it is asked at the recorded x and sigma."""

    def __init__(self, tensors, guided=False):
        self.t = tensors
        self.calls = 0
        self.guided = guided
        self.sides = []

    def __call__(self, x, sigma, side):
        k = self.calls - (side == "negative")
        if side != "negative":
            self.calls += 1
        self.sides.append(side)
        rec = lambda f: self.t[f"call{k:03d}.{f}"]  # noqa: E731
        assert x.dtype == np.float32 and sigma.dtype == np.float32
        assert sigma.shape == (x.shape[0],)
        assert np.array_equal(bits(x), bits(rec("x"))), f"call {k}: x differs from ComfyUI's"
        assert bits(sigma)[0] == bits(rec("sigma"))[0], f"call {k}: sigma differs"
        if side == "guided":
            return rec("denoised"), rec("cond_denoised"), rec("uncond_denoised")
        return rec("cond_denoised") if side == "positive" else rec("uncond_denoised")


def chain_settings(s):
    return dict(
        noise_seed=s["seed"],
        steps=s["steps"],
        cfg=s["cfg"],
        sampler=s["sampler"],
        scheduler=s["scheduler"],
        denoise=s["denoise"],
        shift=s["shift"],
        cfgnorm=s["cfgnorm"],
        model_sampling="aura_flow",
        latent_format="wan21",
    )


def test_replayed_model_gives_comfyui_latent_out_bit_for_bit(golden):
    path, t, s = golden
    model = Replay(t)
    out = samplediff.sample(model, latent=t["latent_in"], **chain_settings(s))
    assert out.shape == t["latent_out"].shape and out.dtype == np.float32
    assert np.array_equal(bits(out), bits(t["latent_out"])), f"{path.name}: latent_out differs from ComfyUI's"
    recorded_calls = sum(1 for k in t if k.startswith("call") and k.endswith(".x"))
    assert model.calls == recorded_calls
    # cfg == 1: ComfyUI never evaluates the negative prompt, nor does the chain.
    assert ("negative" in model.sides) == (s["cfg"] != 1.0)


def test_trace_records_what_comfyui_recorded(golden, tmp_path):
    path, t, s = golden
    trace_path = tmp_path / "run.safetensors"
    steps_seen = []
    out = samplediff.sample(
        Replay(t),
        latent=t["latent_in"],
        callback=lambda i, x, d, total: steps_seen.append((i, total)),
        trace=trace_path,
        trace_tensors={"positive": t["positive"], "negative": t["negative"]},
        # The golden run's own labels and how its model was loaded (the chain cannot know).
        trace_settings={k: s[k] for k in ("name", "lora", "lora_strength", "hw", "L", "init_latent") if k in s},
        **chain_settings(s),
    )
    trace = samplediff.read_trace(trace_path)
    recorded = [k for k in t if k.startswith(("step", "call")) or k in ("latent_in", "latent_out", "positive", "negative")]
    for k in recorded:
        assert np.array_equal(bits(trace.tensors[k]), bits(t[k])), f"{path.name}: trace tensor {k} differs"
    assert np.array_equal(bits(trace.tensors["latent_out"]), bits(out))
    assert trace.settings["seed"] == s["seed"] and trace.settings["sampler"] == s["sampler"]
    assert trace.steps == len(steps_seen) == s["steps"]
    assert [i for i, _ in steps_seen] == list(range(s["steps"]))
    want_noise = samplediff.noise(s["seed"], trace.tensors["noise"].shape)
    assert np.array_equal(bits(trace.tensors["noise"]), bits(want_noise))
    # explain against ComfyUI's own recording: only settings keys the other side lacks differ,
    # and they change no number.
    findings = samplediff.explain(trace_path, path, as_dict=True)["findings"]
    assert [f["cause"] for f in findings] == ["settings"], findings
    assert "No numeric effect: every tensor is bit-identical" in findings[0]["evidence"]
    assert samplediff.explain(trace_path, path).startswith("1. settings  (confidence 1.00; stage settings)")


def test_guided_model_and_its_trace(golden, tmp_path):
    path, t, s = golden
    model = Replay(t, guided=True)
    settings = chain_settings(s)
    out, trace = samplediff.sample(model, latent=t["latent_in"], prediction="guided", record=True, **settings)
    assert set(model.sides) == {"guided"}
    assert np.array_equal(bits(out), bits(t["latent_out"]))
    for k in t:
        if k.startswith("call"):
            assert np.array_equal(bits(trace.tensors[k]), bits(t[k])), k


def test_explain_is_the_cli_explain(tmp_path):
    a = COMFY / "wf_euler_simple_cfg3.safetensors"
    b = tmp_path / "b.safetensors"
    t, meta = read_safetensors(a)
    tensors = dict(t)
    tensors["call002.cond_denoised"] = t["call002.cond_denoised"] * np.float32(1.001)
    samplediff.write_trace(b, tensors, settings_of(meta))
    text = samplediff.explain(b, a)
    assert text.startswith("1. ") and samplediff.explain(a, a).startswith("1. identical")
    if not CLI.exists():
        pytest.skip(f"CLI binary {CLI} not built: cannot check the text against `samplediff explain`")
    out = subprocess.run([str(CLI), "explain", str(b), str(a)], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    assert text == out.stdout
    out = subprocess.run([str(CLI), "explain", str(b), str(a), "--json"], capture_output=True, text=True)
    assert samplediff.explain(b, a, as_dict=True) == json.loads(out.stdout)


def test_explain_names_the_first_divergence(tmp_path):
    path = COMFY / "wf_euler_simple_cfg3.safetensors"
    t, meta = read_safetensors(path)
    s = settings_of(meta)
    model = Replay(t)
    a = tmp_path / "a.safetensors"
    settings = chain_settings(s)
    samplediff.sample(model, latent=t["latent_in"], trace=a, **settings)
    # The same run with CFGNorm strength 0.9 instead of 1.0: the first call's guidance differs.
    b = tmp_path / "b.safetensors"
    settings["cfgnorm"] = 0.9
    model = Replay(t)
    with pytest.raises(AssertionError, match="call 1: x differs"):
        samplediff.sample(model, latent=t["latent_in"], trace=b, **settings)
    settings_b = dict(settings)

    def unchecked(x, sigma, side):  # the recorded answers, whatever x
        k = unchecked.calls - (side == "negative")
        unchecked.calls += side != "negative"
        return t[f"call{k:03d}.cond_denoised" if side == "positive" else f"call{k:03d}.uncond_denoised"]

    unchecked.calls = 0
    samplediff.sample(unchecked, latent=t["latent_in"], trace=b, **settings_b)
    findings = samplediff.explain(b, a, as_dict=True)["findings"]
    first = findings[0]
    assert first["cause"] == "cfgnorm" and first["stage"] == "guidance" and first["step"] == 0, findings
    assert samplediff.explain(a, a, as_dict=True)["findings"][0]["cause"] == "identical"


def test_velocity_prediction_is_x_minus_v_sigma():
    path = COMFY / "wf_euler_simple_cfg3.safetensors"
    t, meta = read_safetensors(path)
    s = settings_of(meta)
    calls = []

    def velocity(x, sigma, side):
        k = len(calls) - (side == "negative")
        if side == "positive":
            calls.append(k)
        x0 = t[f"call{k:03d}.cond_denoised" if side == "positive" else f"call{k:03d}.uncond_denoised"]
        return (x - x0) / sigma[0]

    out = samplediff.sample(velocity, latent=t["latent_in"], prediction="velocity", **chain_settings(s))
    # x - ((x - x0)/sigma)*sigma is x0 up to float32 rounding, so the output is close, not equal.
    np.testing.assert_allclose(out, t["latent_out"], rtol=0, atol=1e-4)


def test_sigmas_and_noise_match_comfyui():
    import json

    entries = json.loads((COMFY / "schedules.json").read_text())
    for e in entries:
        got = samplediff.sigmas(
            steps=e["steps"],
            scheduler=e["scheduler"],
            denoise=e["denoise"],
            sampler=e["sampler"],
            shift=e["shift"],
            multiplier=e["multiplier"],
        )
        want = np.array([float.fromhex(h) for h in e["sigmas_f32_hex"]], dtype=np.float32)
        assert got.shape == want.shape, e
        # The chain's own claim (crates/samplediff-chain/tests/golden_schedules.rs): exact, except
        # exponential and kl_optimal within 1 ulp (torch's float32 exp/tan).
        # (kl_optimal with 1 step divides by zero: NaN on both sides counts as equal.)
        both_nan = np.isnan(got) & np.isnan(want)
        ulp = np.abs(bits(got).astype(np.int64) - bits(want).astype(np.int64))[~both_nan].max(initial=0)
        assert ulp <= (1 if e["scheduler"] in ("exponential", "kl_optimal") else 0), e
    noise_t, _ = read_safetensors(COMFY / "noise.safetensors")
    for e in json.loads((COMFY / "noise.json").read_text()):
        got = samplediff.noise(e["seed"], e["shape"])
        assert np.array_equal(bits(got), bits(noise_t[e["key"]])), e["key"]


def test_model_errors_propagate_and_bad_answers_are_explained():
    lat = np.zeros((1, 16, 1, 4, 4), np.float32)
    base = dict(latent=lat, noise_seed=1, steps=2, shift=3.0)

    class Boom(Exception):
        pass

    def boom(x, sigma, side):
        raise Boom("model exploded")

    with pytest.raises(Boom, match="model exploded"):
        samplediff.sample(boom, **base)
    with pytest.raises(samplediff.SampleDiffError, match=r"shape \[1, 16, 1, 2, 2\], expected \[1, 16, 1, 4, 4\]"):
        samplediff.sample(lambda x, s, side: np.zeros((1, 16, 1, 2, 2), np.float32), **base)
    with pytest.raises(samplediff.SampleDiffError, match="positive prediction: got None"):
        samplediff.sample(lambda x, s, side: None, **base)
    with pytest.raises(samplediff.SampleDiffError, match="sampler 'nope' is not implemented"):
        samplediff.sample(lambda x, s, side: x, sampler="nope", **base)
    with pytest.raises(samplediff.SampleDiffError, match="latent has 3 dims"):
        samplediff.sample(lambda x, s, side: x, latent=np.zeros((1, 2, 3), np.float32), noise_seed=1, steps=2, shift=3.0)
    with pytest.raises(samplediff.SampleDiffError, match="needs a shift"):
        samplediff.sample(lambda x, s, side: x, latent=lat, noise_seed=1, steps=2)
    with pytest.raises(samplediff.SampleDiffError, match="draws noise"):
        samplediff.sample(lambda x, s, side: x, latent=lat, noise=np.zeros_like(lat), steps=2, shift=3.0, sampler="euler_ancestral")
    with pytest.raises(samplediff.SampleDiffError, match="more than"):
        samplediff.noise(0, [1 << 20, 1 << 20])
    seen = []

    def bad_callback(i, x, d, total):
        seen.append(i)
        raise KeyError("preview failed")

    with pytest.raises(KeyError, match="preview failed"):
        samplediff.sample(lambda x, s, side: x * 0, callback=bad_callback, **base)
    assert seen == [0], "the run stops at the first callback error"


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch", reason="torch not installed: the torch round trip is untested here")
    path = COMFY / "wf_heun_karras_cfg1.safetensors"
    t, meta = read_safetensors(path)
    s = settings_of(meta)
    tt = {k: torch.from_numpy(v.copy()) for k, v in t.items()}
    model = Replay(t)

    def torch_model(x, sigma, side):
        return torch.from_numpy(np.array(model(x, sigma, side)))

    out = samplediff.sample(torch_model, latent=tt["latent_in"], **chain_settings(s))
    assert isinstance(out, torch.Tensor)
    assert torch.equal(out, tt["latent_out"])


def test_weights_hash_is_the_trace_crates_recipe():
    import json

    rng = np.random.default_rng(3)
    tensors = {"b.weight": rng.standard_normal((3, 4)).astype(np.float32), "a.bias": np.arange(5, dtype=np.float16)}
    ours = samplediff.weights_hash("base", tensors.items())
    native = json.loads(samplediff._native.weights_hash("base", [(k, v, None) for k, v in tensors.items()]))
    assert ours == native and ours["keys"] == 2 and ours["dtypes"] == {"F16": 1, "F32": 1}
    # Stage "loaded": float32 values under the compute dtype's name; F32 arrays hash as stored.
    f32 = {"w": tensors["b.weight"]}
    assert samplediff.weights_hash("x", f32.items(), dtype_name="F32")["sha256"] == samplediff.weights_hash("x", f32.items())["sha256"]
    changed = {"b.weight": np.nextafter(tensors["b.weight"], 9), "a.bias": tensors["a.bias"]}
    assert samplediff.weights_hash("base", changed.items())["sha256"] != ours["sha256"]
    assert samplediff.weights_hash("base", [])["sha256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
