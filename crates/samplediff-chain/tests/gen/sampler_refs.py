#!/usr/bin/env python3
"""Reference runs of ComfyUI's own samplers and post-CFG nodes, for the samplers the golden
workflows do not cover (tests/sampler_refs.rs replays them bit for bit).

Usage:  python3 sampler_refs.py COMFYUI_CHECKOUT OUT.safetensors

COMFYUI_CHECKOUT needs comfy/k_diffusion/{sampling,utils,deis,sa_solver}.py, comfy/model_sampling.py
and comfy_extras/nodes_cfg.py (the project follows commit a125cd84). Only those files are imported;
ComfyUI's heavier modules (model management, node API, torchsde, ...) are replaced by stubs that the
code paths exercised here never reach. Runs on the CPU in float32, torch single-threaded.

Each case drives `comfy.k_diffusion.sampling.sample_<name>` with a small deterministic toy "model"
(cond and uncond x0 predictions from elementwise formulas), ComfyUI's CFG formula
`uncond + (cond - uncond) * cfg` with the cfg == 1 shortcut (uncond = zeros), and the real
CFGNorm / CFGZeroStar post-CFG functions from comfy_extras/nodes_cfg.py. Per-step noise comes from
ComfyUI's default_noise_sampler (a CPU generator seeded with the seed); dpmpp_2m_sde, whose default
is torchsde's Brownian tree, is given the same kind of CPU-generator noise sampler instead.

Recorded per case (prefix `<case>.`): sigmas, x_init, callNNN.{x,sigma,cond,uncond,denoised},
stepNNN.{x,denoised}, out (the sampler's return value). The metadata key `cases` lists the cases.
"""
import importlib.util
import json
import math
import sys
import types

import torch

torch.set_num_threads(1)


def load_comfy(root):
    def stub(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules[name] = mod
        return mod

    for name in ("comfy", "comfy.k_diffusion", "comfy.extra_samplers", "comfy_extras", "comfy.ldm",
                 "comfy.ldm.modules", "comfy.ldm.modules.diffusionmodules"):
        pkg = stub(name)
        pkg.__path__ = [f"{root}/{name.replace('.', '/')}"]
    stub("comfy.ldm.modules.diffusionmodules.util", make_beta_schedule=None)
    stub("comfy.model_patcher")
    for optional in ("torchsde", "scipy", "scipy.integrate", "PIL", "PIL.Image"):
        try:
            importlib.import_module(optional)
        except ImportError:
            stub(optional, Image=None, integrate=None, BrownianTree=None)
    try:
        importlib.import_module("tqdm.auto")
    except ImportError:
        stub("tqdm")
        stub("tqdm.auto", trange=lambda n, **k: range(n), tqdm=lambda x, **k: x)

    class _Anything:
        """Stands for any node-API name (schemas, inputs, outputs) nodes_cfg mentions."""

        def __init__(self, *args, **kwargs):
            pass

    class _Io:
        def __getattr__(self, name):
            return _Anything

    stub("comfy_api")
    stub("comfy_api.latest", ComfyExtension=object, io=_Io())

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, f"{root}/{path}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    import comfy  # noqa: F401  (the stub package)
    ms = load("comfy.model_sampling", "comfy/model_sampling.py")
    sys.modules["comfy"].model_sampling = ms
    sys.modules["comfy"].model_patcher = sys.modules["comfy.model_patcher"]
    load("comfy.k_diffusion.utils", "comfy/k_diffusion/utils.py")
    load("comfy.k_diffusion.deis", "comfy/k_diffusion/deis.py")
    load("comfy.k_diffusion.sa_solver", "comfy/k_diffusion/sa_solver.py")
    sampling = load("comfy.k_diffusion.sampling", "comfy/k_diffusion/sampling.py")
    nodes_cfg = load("comfy_extras.nodes_cfg", "comfy_extras/nodes_cfg.py")
    uni_pc = load("comfy.extra_samplers.uni_pc", "comfy/extra_samplers/uni_pc.py")
    return ms, sampling, nodes_cfg, uni_pc


class CapturePatcher:
    """Just enough of a ModelPatcher for CFGNorm.execute / CFGZeroStar.execute."""

    def __init__(self):
        self.post_cfg = []

    def clone(self):
        return self

    def set_model_sampler_post_cfg_function(self, fn, disable_cfg1_optimization=False):
        self.post_cfg.append(fn)


def toy_predictions(x, sigma):
    s = sigma.reshape(-1, 1, 1, 1, 1)
    w = torch.linspace(0.5, 1.5, x.shape[1]).view(1, -1, 1, 1, 1)
    cond = (1 - s) * 0.8 * x * w + 0.3 * torch.sin(x * 1.7)
    uncond = (1 - s) * 0.6 * x + 0.2 * torch.cos(x * w)
    return cond, uncond


def main(root, out_path):
    ms_mod, sampling, nodes_cfg, uni_pc = load_comfy(root)

    class FlowConst(ms_mod.ModelSamplingDiscreteFlow, ms_mod.CONST):
        pass

    def model_sampling(shift):
        m = FlowConst()
        m.set_parameters(shift=shift, multiplier=1.0)
        return m

    def simple_sigmas(m, steps):
        # comfy.samplers.simple_scheduler
        s = m.sigmas
        ss = len(s) / steps
        return torch.FloatTensor([float(s[-(1 + int(x * ss))]) for x in range(steps)] + [0.0])

    shape = [1, 16, 1, 6, 5]
    cases = [
        dict(name="euler_ancestral_cfgnorm", sampler="euler_ancestral", steps=5, cfg=2.5, post=["cfgnorm:0.9"], seed=42, shift=3.1),
        dict(name="euler_ancestral_eta05", sampler="euler_ancestral", steps=4, cfg=3.0, post=[], seed=7, shift=2.0, eta=0.5, s_noise=0.8),
        dict(name="lcm_cfg1", sampler="lcm", steps=4, cfg=1.0, post=["cfgnorm:1.0"], seed=3, shift=3.1),
        dict(name="res_multistep_zerostar", sampler="res_multistep", steps=6, cfg=3.0, post=["cfgzerostar"], seed=11, shift=3.1),
        dict(name="res_multistep_ancestral", sampler="res_multistep_ancestral", steps=5, cfg=2.0, post=["cfgnorm:1.0"], seed=5, shift=1.73),
        dict(name="dpmpp_2m_sde", sampler="dpmpp_2m_sde", steps=6, cfg=2.0, post=["cfgnorm:1.0"], seed=9, shift=3.1),
        dict(name="dpmpp_2m_sde_heun", sampler="dpmpp_2m_sde_heun", steps=5, cfg=4.0, post=[], seed=13, shift=3.1),
        dict(name="ddim_truncated", sampler="ddim", steps=3, cfg=2.0, post=["cfgnorm:2.5"], seed=17, shift=3.1, truncate=5),
        dict(name="euler_one_step", sampler="euler", steps=1, cfg=5.0, post=["cfgnorm:1.0", "cfgzerostar"], seed=19, shift=3.1),
        dict(name="heun_one_step", sampler="heun", steps=1, cfg=1.0, post=[], seed=23, shift=3.1),
        dict(name="uni_pc", sampler="uni_pc", steps=5, cfg=2.0, post=["cfgnorm:1.0"], seed=31, shift=3.1, discard_penultimate=True),
        dict(name="uni_pc_bh2", sampler="uni_pc_bh2", steps=4, cfg=1.0, post=[], seed=37, shift=3.1, discard_penultimate=True),
        dict(name="uni_pc_two_steps", sampler="uni_pc", steps=2, cfg=3.0, post=[], seed=41, shift=2.0, discard_penultimate=True),
        dict(name="dpmpp_2m_open_end", sampler="dpmpp_2m", steps=4, cfg=2.0, post=["cfgnorm:0.5"], seed=29, shift=3.1, drop_last=True),
    ]
    tensors = {}
    for case in cases:
        name = case["name"]
        m = model_sampling(case["shift"])
        sigmas = simple_sigmas(m, case["steps"] + case.get("truncate", 0) + (1 if case.get("discard_penultimate") else 0))
        if case.get("discard_penultimate"):  # KSampler's DISCARD_PENULTIMATE_SIGMA_SAMPLERS
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        if "truncate" in case:  # KSampler's denoise < 1: keep the last steps + 1
            sigmas = sigmas[-(case["steps"] + 1):]
        if case.get("drop_last"):  # KSamplerAdvanced-style end before sigma 0
            sigmas = sigmas[:-1]
        case["sigmas_len"] = len(sigmas)
        posts = []
        for p in case["post"]:
            patcher = CapturePatcher()
            if p.startswith("cfgnorm:"):
                nodes_cfg.CFGNorm.execute(patcher, float(p.split(":")[1]))
            else:
                nodes_cfg.CFGZeroStar.execute(patcher)
            posts += patcher.post_cfg
        g = torch.Generator("cpu").manual_seed(case["seed"])
        noise = torch.randn(shape, generator=g)
        latent = torch.randn(shape, generator=g) * 0.5
        x_init = m.noise_scaling(sigmas[0], noise, latent)
        calls, steps = [], []
        cfg = case["cfg"]

        def model(x, sigma, **kwargs):
            cond, uncond = toy_predictions(x, sigma)
            if math.isclose(cfg, 1.0):
                uncond = torch.zeros_like(x)
            d = uncond + (cond - uncond) * cfg
            for fn in posts:
                d = fn({"denoised": d, "cond": None, "uncond": None, "cond_scale": cfg, "model": None,
                        "uncond_denoised": uncond, "cond_denoised": cond, "sigma": sigma, "model_options": {},
                        "input": x})
            calls.append((x.clone(), sigma.clone(), cond, uncond, d))
            return d

        class ModelK:
            """k-diffusion's view of the model: callable, with the attributes samplers inspect."""
            inner_model = types.SimpleNamespace(
                inner_model=types.SimpleNamespace(model_sampling=m),
                model_patcher=types.SimpleNamespace(get_model_object=lambda _name: m))

            def __call__(self, x, sigma, **kwargs):
                return model(x, sigma, **kwargs)

        callback = lambda d: steps.append((d["x"].clone(), d["denoised"].clone()))  # noqa: E731
        extra = {"seed": case["seed"]}
        kwargs = {}
        if "eta" in case:
            kwargs.update(eta=case["eta"], s_noise=case["s_noise"])
        if case["sampler"].startswith("dpmpp_2m_sde"):
            gen = torch.Generator("cpu").manual_seed(case["seed"])
            kwargs["noise_sampler"] = lambda s, sn: torch.randn(x_init.size(), generator=gen)
        fn = sampling.sample_euler if case["sampler"] == "ddim" else getattr(sampling, "sample_" + case["sampler"], None)
        if case["sampler"] == "uni_pc":
            fn = uni_pc.sample_unipc
        elif case["sampler"] == "uni_pc_bh2":
            fn = uni_pc.sample_unipc_bh2
        # sample_unipc writes 0.001 over a last sigma of 0 in place; record the schedule first.
        recorded_sigmas = sigmas.clone()
        out = fn(ModelK(), x_init.clone(), sigmas, extra_args=extra, callback=callback, disable=True, **kwargs)
        case["sigma_last_after"] = float(sigmas[-1])

        tensors[f"{name}.sigmas"] = recorded_sigmas.float()
        tensors[f"{name}.x_init"] = x_init
        tensors[f"{name}.out"] = out
        for i, (x, sigma, cond, uncond, d) in enumerate(calls):
            for k, v in (("x", x), ("sigma", sigma), ("cond", cond), ("uncond", uncond), ("denoised", d)):
                tensors[f"{name}.call{i:03d}.{k}"] = v.contiguous()
        for i, (x, d) in enumerate(steps):
            tensors[f"{name}.step{i:03d}.x"] = x.contiguous()
            tensors[f"{name}.step{i:03d}.denoised"] = d.contiguous()
        case["calls"], case["recorded_steps"] = len(calls), len(steps)
        print(name, "calls", len(calls), "steps", len(steps), "out abs mean", float(out.abs().mean()))

    from safetensors.torch import save_file
    meta = {"cases": json.dumps(cases), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    save_file({k: v.detach().float().clone().contiguous() for k, v in tensors.items()}, out_path, metadata=meta)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
