"""compare / compare_files: the report of `samplediff compare --json`, from arrays and files."""

import json
import subprocess

import numpy as np
import pytest

import samplediff
from conftest import CLI, COMFY, FIXTURES


def test_identical_arrays_match_with_zero_error():
    a = np.linspace(-3, 3, 2 * 16 * 5 * 7, dtype=np.float32).reshape(2, 16, 5, 7)
    r = samplediff.compare(a, a.copy())
    assert r["verdict"] == "match"
    (t,) = r["tensors"]
    assert t["status"] == "compared" and t["values_match"]
    assert t["max_abs"] == 0.0 and t["mismatched"] == 0 and t["numel"] == a.size
    assert len(t["per_channel"]) == 16


def test_metrics_agree_with_numpy():
    rng = np.random.default_rng(7)
    b = rng.standard_normal((1, 16, 1, 6, 5)).astype(np.float32)
    a = (b + rng.standard_normal(b.shape).astype(np.float32) * 1e-3).astype(np.float32)
    r = samplediff.compare(a, b)
    t = r["tensors"][0]
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    assert t["max_abs"] == pytest.approx(d.max(), rel=1e-12)
    assert t["mean_abs"] == pytest.approx(d.mean(), rel=1e-9)
    assert t["rmse"] == pytest.approx(np.sqrt((d**2).mean()), rel=1e-9)
    assert t["worst"][0]["index"] == list(np.unravel_index(d.argmax(), d.shape))
    close = d <= 1e-5 + 1.3e-6 * np.abs(b)  # torch's float32 defaults
    assert t["mismatched"] == int((~close).sum())
    assert r["verdict"] == ("match" if close.all() else "mismatch")


def test_mappings_pair_by_name_and_report_the_rest():
    x = np.ones((3,), np.float32)
    r = samplediff.compare({"x": x, "only_a": x}, {"x": x * 2, "only_b": x}, atol=0, rtol=0)
    by_name = {t["name"]: t for t in r["tensors"]}
    assert by_name["x"]["max_abs"] == 1.0 and by_name["x"]["mismatched"] == 3
    assert by_name["only_a"]["status"] == "only_in_a" and by_name["only_b"]["status"] == "only_in_b"
    assert r["summary"]["only_in_a"] == 1 and r["verdict"] == "mismatch"
    r = samplediff.compare({"p": x}, {"q": x}, pairs=[("p", "q")])
    assert r["tensors"][0]["name"] == "p=q" and r["verdict"] == "match"


def test_dtypes_and_layouts_are_read_as_they_are():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    r = samplediff.compare(a.T, np.ascontiguousarray(a.T).astype(np.float16))  # non-contiguous view
    t = r["tensors"][0]
    assert (t["dtype_a"], t["dtype_b"]) == ("F64", "F16")
    assert t["shape_a"] == [4, 3] and t["max_abs"] == 0.0
    big_endian = a.astype(">f8")
    assert samplediff.compare(big_endian, a)["tensors"][0]["max_abs"] == 0.0


def test_text_report_and_bad_options():
    a = np.zeros(4, np.float32)
    report, text = samplediff.compare(a, a + 1, text=True, labels=("mine", "ref"))
    assert report["verdict"] == "mismatch" and "mine" in text and "ref" in text
    with pytest.raises(samplediff.SampleDiffError, match="atol must be a finite number"):
        samplediff.compare(a, a, atol=-1)
    with pytest.raises(samplediff.SampleDiffError, match="NAME_A=NAME_B"):
        samplediff.compare(a, a, pairs=["nonsense"])
    with pytest.raises(samplediff.SampleDiffError, match="no tensor 'zz'"):
        samplediff.compare({"x": a}, {"x": a}, pairs=["zz=x"])


def test_compare_files_reads_selectors():
    wf = COMFY / "wf_euler_simple_cfg3.safetensors"
    r = samplediff.compare_files(f"{wf}:step003.x", f"{wf}:step003.x")
    assert r["verdict"] == "match"
    r = samplediff.compare_files(f"{wf}:step000.x", f"{wf}:step003.x")
    assert r["verdict"] == "mismatch" and r["tensors"][0]["max_abs"] > 0.1


def _cli_json(a, b, *extra):
    out = subprocess.run([str(CLI), "compare", str(a), str(b), "--json", *extra], capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "a, b, extra",
    [
        ("comfyui/wf_euler_simple_cfg3.safetensors", "comfyui/wf_euler_simple_cfg3.safetensors", ()),
        ("comfyui/wf_dpmpp2m_simple_d07.safetensors", "comfyui/wf_euler_simple_cfg3.safetensors", ("--atol", "0.01")),
        ("formats/arrays.npz", "formats/arrays_compressed.npz", ()),
        ("formats/c_f4.npy", "formats/fortran_f8.npy", ("--pair", "c_f4=fortran_f8")),
    ],
)
def test_compare_files_is_the_cli_json(a, b, extra):
    opts = {}
    it = iter(extra)
    for flag in it:
        if flag == "--atol":
            opts["atol"] = float(next(it))
        if flag == "--pair":
            opts["pairs"] = [next(it)]
    report = samplediff.compare_files(FIXTURES / a, FIXTURES / b, **opts)
    assert report["tensors"], "nothing compared"
    if not CLI.exists():
        pytest.skip(f"CLI binary {CLI} not built (cargo build -p samplediff-cli): cannot check the JSON against it")
    assert report == _cli_json(FIXTURES / a, FIXTURES / b, *extra)


def test_error_maps_locate_the_difference():
    b = np.zeros((1, 4, 3, 5), np.float32)
    a = b.copy()
    a[0, 2, 1, 3] = 0.5
    a[0, 0, 0, 0] = np.nan
    abs_maps, bad = samplediff.error_maps(a, b)
    assert abs_maps.shape == (4, 3, 5) and bad.shape == (4, 3, 5)
    assert abs_maps[2, 1, 3] == 0.5 and abs_maps.sum() == 0.5
    assert bad[0, 0, 0] and bad.sum() == 1


def test_torch_tensors_in_place_and_bfloat16():
    torch = pytest.importorskip("torch", reason="torch not installed: DLPack path untested here")
    t = torch.linspace(-2, 2, 64).reshape(1, 4, 4, 4)
    r = samplediff.compare(t, t.numpy().copy())
    assert r["verdict"] == "match" and r["tensors"][0]["dtype_a"] == "F32"
    bf = t.to(torch.bfloat16)
    r = samplediff.compare(bf, bf.float())
    assert r["tensors"][0]["dtype_a"] == "BF16" and r["tensors"][0]["max_abs"] == 0.0
    r = samplediff.compare(t[:, :, ::2], t[:, :, ::2].contiguous())  # strided view
    assert r["tensors"][0]["max_abs"] == 0.0
