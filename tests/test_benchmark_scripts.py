"""Every benchmark script still starts: its module-level imports resolve against the checkout and its command line
parses (`--help`). Their `--quick` runs take minutes each, so CI runs only the GPU check's (test_gpu_timings.py);
this catches the breakage that a refactor leaves in a script nobody runs between measurements."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "harness.py")


def test_there_are_scripts_to_check():
    assert len(SCRIPTS) >= 20 and (ROOT / "benchmarks" / "harness.py").is_file()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_parses_its_command_line(script, tmp_path):
    # from another folder: a script must not depend on the working directory
    proc = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {script.name}"), proc.stdout[:300]
