"""benchmarks/gpu_check.py is the only run the CUDA path gets (on a lent GPU machine): its dry run on the CPU
keeps the script working between loans."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_on_the_cpu():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--size", "64", "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("generator (stylize)", "pSp encoder", "style encoder", "discriminator", "projection discriminator"):
        assert f"| {row} | 0.0e+00 |" in proc.stdout  # the same device: exactly equal
    assert "all fp32 parities hold" in proc.stdout


def test_gpu_check_without_cuda_says_so():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the check itself would run")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0 and "no CUDA device" in proc.stdout
