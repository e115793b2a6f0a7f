"""Reference draws of torch's CUDA randn (Philox) for checking samplediff's emulation.

Run on a machine with an NVIDIA GPU and torch:  python3 torch_cuda_randn.py OUT_DIR
Writes OUT_DIR/cuda_randn_s{seed}.safetensors: for each (seed, shape) three successive draws from one
`torch.Generator("cuda").manual_seed(seed)` (what ComfyUI's default_noise_sampler does per step),
keys `s{seed}_{shape}_d{k}`, with the device name, SM count and resident threads in the metadata.
"""
import json, sys, torch
from safetensors.torch import save_file

out = sys.argv[1] if len(sys.argv) > 1 else "."
p = torch.cuda.get_device_properties(0)
meta = {
    "device": p.name,
    "sm_count": str(p.multi_processor_count),
    "max_threads_per_sm": str(p.max_threads_per_multi_processor),
    "torch": torch.__version__,
    "cuda": str(torch.version.cuda),
}
for seed in (0, 42, 12345, 2**40 + 3):
    cases = {}
    for shape in ((1, 16, 1, 147, 110), (1, 16, 1, 8, 8), (1, 16, 1, 9, 12), (1, 16, 1, 130, 130), (5,)):
        g = torch.Generator("cuda").manual_seed(seed)
        for k in range(3):
            t = torch.randn(shape, dtype=torch.float32, device="cuda", generator=g)
            cases[f"s{seed}_{'x'.join(map(str, shape))}_d{k}"] = t.cpu().contiguous()
    save_file(cases, f"{out}/cuda_randn_s{seed}.safetensors", metadata=meta)
print(json.dumps(meta))
