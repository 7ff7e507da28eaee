"""``blendgan bench``: time the fast inference path against the plain reference path.

The benchmark itself is ``benchmarks/bench.py`` in a source checkout (it needs no real weights: it uses
the conformance recipe beside the checkout, or random weights); this command runs it with the same flags.
"""
import argparse
import importlib.util
from pathlib import Path

from ..errors import UsageError

HELP = "benchmark the fast path against the reference path (source checkout; writes benchmarks/results/)"
EXAMPLES = """
blendgan bench --quick --no-write
blendgan bench --device cuda --sizes 256,1024
"""
BENCH_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


def _bench_module():
    """benchmarks/bench.py as a module (reading it imports nothing heavy), or None if absent."""
    if not BENCH_SCRIPT.is_file():
        return None
    spec = importlib.util.spec_from_file_location("blendgan_benchmark", BENCH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    module = _bench_module()
    if module is not None:
        module.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    module = _bench_module()
    if module is None:
        raise UsageError(f"{BENCH_SCRIPT} not found: `blendgan bench` runs from a source checkout of the "
                         "repository (git clone, then `blendgan bench` or `python benchmarks/bench.py`)")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise UsageError(f"--device {args.device!r}: the benchmark runs on cpu or cuda")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    if args.runs < 1 or args.e2e_runs < 1:
        raise UsageError("--runs and --e2e-runs must be at least 1")
    return module.run(args)
