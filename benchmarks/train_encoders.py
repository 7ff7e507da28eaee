"""Benchmark: images/s and peak RSS of `blendgan train style-encoder` and `blendgan train psp`, one fresh run
per configuration.

    python benchmarks/train_encoders.py
    python benchmarks/train_encoders.py --quick       # one style-encoder run of 2 steps: that the benchmark runs
    python benchmarks/train_encoders.py --configs style:256:fp32:1 psp:256:16:fp32 psp:256:512:fp32

A configuration is style:SIZE:PRECISION:FROZEN_MLP_LAYERS (views rendered at SIZE, the real VGG19 and MLP
shapes with random weights; FROZEN_MLP_LAYERS 0 trains the 610304-wide layer too) or
psp:SIZE:MAX_CHANNELS:PRECISION (the frozen generator at SIZE with MAX_CHANNELS, random weights; 512 is the
real width; --id_lambda 0, as no ArcFace weights can be made here). Data: small artwork and face folders made
from the bundled test_imgs. Each run does --iters steps; images/s is the rate of the steps after the first
(log.jsonl), peak RSS the largest resident set of the training process (ru_maxrss of the children, as
benchmarks/train.py measures it). Prints a Markdown table. Run it on a quiet machine: the figures are
wall-clock rates.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
import harness  # noqa: E402

DEFAULT = ["style:256:fp32:1", "style:256:bf16:1", "psp:256:16:fp32", "psp:256:512:fp32"]


def make_data(folder):
    """(style_encoder.pt, artworks, faces, {size:max_channels: blendgan.pt}) made on the spot."""
    import encoder_training_helpers as helpers
    import train_helpers

    se = train_helpers.make_style_encoder(folder / "style_encoder.pt")
    art = folder / "art"
    helpers.make_artworks(art, helpers.contents(4, 256, seed=1))
    faces = helpers.make_faces(folder / "faces", 8, 256, seed=3)
    return se, art, faces


def generator_file(folder, se, size, width, cache):
    key = (size, width)
    if key not in cache:
        import torch

        import encoder_training_helpers as helpers

        cache[key] = helpers.make_tiny_blendgan(
            folder / f"blendgan_{size}_{width}.pt",
            torch.load(se, mmap=True, weights_only=True),
            size=size,
            max_channels=width,
        )
    return cache[key]


def command(cfg, args, data, work, cache):
    se, art, faces = data
    kind, *rest = cfg.split(":")
    out = work / cfg.replace(":", "_")
    common = [
        "--outdir",
        str(out),
        "--batch",
        str(args.batch),
        "--iters",
        str(args.iters),
        "--log_every",
        "1",
        "--snapshot_every",
        "1000000",
        "--sample_every",
        "1000000",
        "--no_progress",
        "--device",
        args.device,
    ]
    if kind == "style":
        size, precision, frozen = rest
        train = [
            "train",
            "style-encoder",
            "--styles",
            str(art),
            "--init",
            str(se),
            "--size",
            size,
            "--precision",
            precision,
            "--frozen_mlp_layers",
            frozen,
        ]
    else:
        size, width, precision = rest
        ckpt = generator_file(work, se, int(size), int(width), cache)
        train = [
            "train",
            "psp",
            "--faces",
            str(faces),
            "--ckpt",
            str(ckpt),
            "--id_lambda",
            "0",
            "--precision",
            precision,
        ]
    return out, [sys.executable, "-m", "blendgan", *train, *common]


def run_one(cfg, args, data, work, cache):
    out, cmd = command(cfg, args, data, work, cache)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", harness.CHILD_PEAK_RSS, *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-2:-1]}
    peak = int(proc.stderr.strip().splitlines()[-1].split()[-1])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steady = [r["images_per_s"] for r in log[1:]] or [log[-1]["images_per_s"]]
    return {"images_per_s": sum(steady) / len(steady), "peak_rss_gb": peak / 2**20, "wall_s": wall}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--configs",
        nargs="+",
        default=DEFAULT,
        help="style:SIZE:PRECISION:FROZEN_MLP_LAYERS or psp:SIZE:MAX_CHANNELS:PRECISION ...",
    )
    p.add_argument("--batch", type=int, default=2, help="per step (default: %(default)s)")
    p.add_argument("--iters", type=int, default=3, help="steps per run (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="(default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="only style:256:fp32:1, 2 steps: that the benchmark runs")
    args = p.parse_args()
    if args.quick:
        args.configs, args.iters = ["style:256:fp32:1"], 2
    print(harness.machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, cache = make_data(work), {}
        print(f"batch {args.batch}, {args.iters} steps per run", flush=True)
        print("| trainer | configuration | images/s | peak RSS (GB) | run wall s | load avg (1 min) after |")
        print("| --- | --- | --- | --- | --- | --- |")
        for cfg in args.configs:
            r = run_one(cfg, args, data, work, cache)
            kind, rest = cfg.split(":", 1)
            name = "style-encoder" if kind == "style" else "psp"
            if "error" in r:
                print(f"| {name} | {rest} | failed: {r['error']} | - | - | - |", flush=True)
                continue
            print(
                f"| {name} | {rest} | {r['images_per_s']:.3f} | {r['peak_rss_gb']:.2f} | {r['wall_s']:.0f} | "
                f"{os.getloadavg()[0]:.2f} |",
                flush=True,
            )
    print(harness.finish_line())


if __name__ == "__main__":
    main()
