"""Benchmark: `blendgan pairs` throughput with 1 and N processes (torchrun), per checkpoint.

    python benchmarks/pairs.py CKPT_256.pt CKPT_1024.pt --pics 8 --procs 1 2 [--device cpu] [--batch_size 4]
    python benchmarks/pairs.py --quick        # the tests' 64 px recipe checkpoint, 2 pairs, 1 process: that it runs

Each run is a fresh command in a temporary folder (latent-guided, the original's defaults). The figures
are the ones the command prints at the end of its generation loop (rank 0, counts of all ranks): pairs/s
from the first pair to the last (loading and style embedding excluded) and CPU seconds per pair
(summed over the processes and their threads). One process uses torch's default thread count; under
torchrun each process gets one thread (torchrun's OMP_NUM_THREADS default). Weights may be random: the
cost does not depend on their values.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
NOTE = re.compile(r"generated (\d+) in ([\d.]+)s on (\d+) process\(es\): ([\d.]+) pairs/s, ([\d.]+) CPU s/pair")


def run(ckpt, procs, pics, device, batch_size):
    with tempfile.TemporaryDirectory() as out:
        args = [
            "-m",
            "blendgan",
            "pairs",
            "--ckpt",
            str(ckpt),
            "--pics",
            str(pics),
            "--outdir",
            out,
            "--device",
            device,
            "--batch_size",
            str(batch_size),
        ]
        if procs > 1:
            args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), *args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    found = NOTE.search(done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{ckpt} x {procs}: the command failed:\n{done.stderr[-2000:]}")
    return float(found[4]), float(found[5])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpts", nargs="*", help="blendgan.pt files (one per size)")
    parser.add_argument("--pics", type=int, default=8, help="pairs per run (default: %(default)s)")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts (default: 1 2)")
    parser.add_argument("--device", default="cpu", help="(default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=4, help="(default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a 64 px recipe checkpoint, 2 pairs, 1 process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            args.ckpts, args.pics, args.procs = [tiny_checkpoint(Path(tmp) / "blendgan_64.pt")], 2, [1]
        if not args.ckpts:
            parser.error("give blendgan.pt files (or --quick)")
        print(harness.machine_line(), flush=True)
        print(harness.markdown_row(["checkpoint", "processes", "pairs/s", "CPU s/pair"]))
        print(harness.markdown_row(["---"] * 4))
        for ckpt in args.ckpts:
            for procs in args.procs:
                rate, cpu = run(ckpt, procs, args.pics, args.device, args.batch_size)
                print(harness.markdown_row([Path(ckpt).name, procs, f"{rate:.3f}", f"{cpu:.2f}"]), flush=True)
        print(harness.finish_line())


def tiny_checkpoint(path):
    """The tests' 64 px recipe blendgan.pt at their narrow widths (tests/helpers.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import helpers

    return helpers.save(helpers.blendgan_checkpoint(helpers.generator_state_dict(64, tiny=True)), path)


if __name__ == "__main__":
    main()
