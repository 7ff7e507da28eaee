"""The GPU machine's command (docs/development.md) kept working between loans: tests/test_cuda.py run CPU against
CPU, and benchmarks/gpu_timings.py's dry run on the CPU. Neither needs a GPU; CI has none."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "BLENDGAN_OFFLINE": "1"}


@pytest.mark.slow
def test_cuda_module_runs_cpu_against_cpu(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t")]
        + [str(ROOT / "tests" / "test_cuda.py")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env={**ENV, "BLENDGAN_PARITY_DEVICE": "cpu", "BLENDGAN_PARITY_SIZE": "64"},
    )
    # every model in fp32 and the training steps; reduced precision is a GPU-only comparison
    assert "6 passed, 10 skipped" in proc.stdout, proc.stdout[-3000:]


@pytest.mark.slow
def test_gpu_timings_dry_run_on_the_cpu():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_timings.py"), "--device", "cpu", "--size", "64", "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ("stylize", "pSp encode", "style encoder", "| discriminator", "projection discriminator", "training"):
        assert row in proc.stdout
    assert "Machine: " in proc.stdout and "load average" in proc.stdout


def test_gpu_timings_without_cuda_says_so():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the timings themselves would run")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_timings.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert proc.returncode == 0 and "no CUDA device" in proc.stdout
