"""Issue 9's contract for hostile files in Python: every file of tests/fixtures/hostile, on either
side of ``compare_files``, raises a Python exception (SampleDiffError, never a PanicException or a
crash of the interpreter) quickly, without a large allocation, and nothing it asks to run is run."""

import json
import resource
import time
from pathlib import Path

import pytest

import samplediff
from conftest import COMFY, HOSTILE

MANIFEST = json.loads((HOSTILE / "MANIFEST.json").read_text())
# The file every code-running payload of the corpus would create (make_hostile.py's MARKER).
MARKER = Path("/tmp/samplediff-hostile-executed")
GOOD = COMFY / "wf_euler_simple_cfg3.safetensors"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def test_every_hostile_file_raises_quickly_in_little_memory_and_runs_nothing():
    assert len(MANIFEST) >= 50
    MARKER.unlink(missing_ok=True)
    samplediff.compare_files(GOOD, GOOD)  # warm up: the first call maps the library's pages
    peak_before = peak_rss_mb()
    slowest = (0.0, "")
    for name, phrase in sorted(MANIFEST.items()):
        for a, b in ((HOSTILE / name, GOOD), (GOOD, HOSTILE / name)):
            start = time.perf_counter()
            with pytest.raises(samplediff.SampleDiffError) as e:
                samplediff.compare_files(a, b)
            took = time.perf_counter() - start
            slowest = max(slowest, (took, name))
            message = str(e.value)
            assert phrase in message and "\n" not in message, f"{name}: {message!r}"
            # The contract is one second; the margin absorbs a loaded CI machine.
            assert took < 5, f"{name}: {took:.2f} s"
    grew = peak_rss_mb() - peak_before
    print(f"{len(MANIFEST)} hostile files x 2 sides: slowest {slowest[0]:.3f} s ({slowest[1]}), "
          f"peak RSS grew {grew:.1f} MB")
    # A high-water mark: any file that allocated 100 MB more than the process held would show here.
    assert grew < 100, f"peak RSS grew by {grew:.0f} MB"
    assert not MARKER.exists(), f"a payload ran: {MARKER} exists"
