"""Hostile and broken input raises SampleDiffError with the reader's message; nothing crashes."""

import json

import numpy as np
import pytest

import samplediff
from conftest import COMFY, HOSTILE

MANIFEST = json.loads((HOSTILE / "MANIFEST.json").read_text())


def test_error_type_is_a_value_error():
    assert issubclass(samplediff.SampleDiffError, ValueError)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_hostile_file_raises_its_message(name):
    path = HOSTILE / name
    with pytest.raises(samplediff.SampleDiffError) as e:
        samplediff.load(path)
    assert MANIFEST[name] in str(e.value), str(e.value)
    assert str(path) in str(e.value), "the message names the file"
    with pytest.raises(samplediff.SampleDiffError, match="^" + str(path)):
        samplediff.compare_files(path, COMFY / "wf_euler_simple_cfg3.safetensors")
    with pytest.raises(samplediff.SampleDiffError):
        samplediff.explain(COMFY / "wf_euler_simple_cfg3.safetensors", path)


def test_missing_file_and_bad_selector():
    with pytest.raises(samplediff.SampleDiffError, match="cannot read"):
        samplediff.load(HOSTILE / "does_not_exist.safetensors")
    with pytest.raises(samplediff.SampleDiffError, match="selector 'nope'"):
        samplediff.load(f"{COMFY / 'wf_euler_simple_cfg3.safetensors'}:nope")


def test_unsupported_arrays_are_errors_not_crashes():
    with pytest.raises(samplediff.SampleDiffError, match="unsupported array dtype"):
        samplediff.compare(np.array(["a", "b"]), np.array(["a", "b"]))
    with pytest.raises(samplediff.SampleDiffError, match="unsupported array dtype"):
        samplediff.compare(np.zeros(3, np.complex64), np.zeros(3, np.complex64))
    with pytest.raises(samplediff.SampleDiffError, match="cannot map errors of shapes"):
        samplediff.error_maps(np.zeros((2, 3)), np.zeros((3, 2)))


def test_write_trace_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(samplediff.SampleDiffError, match="cannot write"):
        samplediff.write_trace(tmp_path / "no" / "such" / "dir.safetensors", {"x": np.zeros(2, np.float32)})
    with pytest.raises(samplediff.SampleDiffError, match="unsupported array dtype"):
        samplediff.write_trace(tmp_path / "t.safetensors", {"x": np.zeros(2, np.uint32)})
    assert not list(tmp_path.iterdir()), "no partial file is left behind"
