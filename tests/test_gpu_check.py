"""benchmarks/gpu_check.py stays runnable: its equality check passes in Triton's CPU interpreter, and
without a GPU (and without --interpret) it says so in one line and exits 2. The timing part needs CUDA."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = str(REPO / "benchmarks" / "gpu_check.py")


def test_gpu_check_equality_in_the_triton_interpreter():
    pytest.importorskip("triton")
    proc = subprocess.run([sys.executable, SCRIPT, "--interpret"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count(" ok") >= 4 and proc.stdout.strip().endswith("equality: ok")
    assert "spikes equal (" in proc.stdout and "trivial" not in proc.stdout


def test_gpu_check_without_a_gpu_says_so():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would time it")
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no CUDA device here" in proc.stderr
