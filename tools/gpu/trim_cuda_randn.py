"""Trims the H100 draws written by torch_cuda_randn.py to a small committed fixture.

    python3 trim_cuda_randn.py DIR_WITH_cuda_randn_s*.safetensors OUT.safetensors

Small shapes are kept whole; for the two large shapes (147x110, just under the H100's 270336
resident threads, and 130x130, just over) the first and last 2048 elements are kept, which is
where the thread-to-element mapping changes. Keys: `<original key>` or `<key>.head` / `.tail`.
"""
import glob, json, struct, sys
import numpy as np

def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; hdr = json.loads(f.read(n)); data = f.read()
    meta = hdr.pop("__metadata__", {})
    return meta, {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"]) for k, v in hdr.items()}

def write(path, tensors, meta):
    hdr, off, blobs = {}, 0, []
    for k in sorted(tensors):
        b = np.ascontiguousarray(tensors[k], dtype="<f4").tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b); blobs.append(b)
    hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h); f.write(b"".join(blobs))

out, meta = {}, {}
for p in sorted(glob.glob(f"{sys.argv[1]}/cuda_randn_s*.safetensors")):
    meta, ts = read(p)
    for k, t in ts.items():
        flat = t.reshape(-1)
        if flat.size > 4096:
            out[k + ".head"] = flat[:2048]; out[k + ".tail"] = flat[-2048:]
        else:
            out[k] = flat
meta["source"] = "tools/gpu/torch_cuda_randn.py on the device tool's H100, 2026-11-25"
write(sys.argv[2], out, meta)
print(len(out), "tensors")
