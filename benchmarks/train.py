"""Benchmark: images/s and peak RSS of `blendgan train generator` steps, one fresh run per configuration.

    python benchmarks/train.py --style_encoder_ckpt pretrained_models/style_encoder.pt
    python benchmarks/train.py --quick           # one 64 px run of 2 steps with a style encoder made here
    python benchmarks/train.py --style_encoder_ckpt se.pt --configs 64:64:fp32:1 64:512:bf16:2 256:512:fp32:1

A configuration is SIZE:MAX_CHANNELS:PRECISION:PROCESSES. Data: a small face and style folder made from the
bundled test_imgs (crops and filters; --faces / --styles to use yours). Each run does --iters steps with the
regularisations at their default intervals; images/s is the rate of the steps after the first (log.jsonl),
peak RSS the largest resident set of one training process (ru_maxrss of the children). Prints a Markdown
table. Run it on a quiet machine: the figures are wall-clock rates.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [
    "64:64:fp32:1",
    "64:64:bf16:1",
    "64:512:fp32:1",
    "64:512:bf16:1",
    "64:64:fp32:2",
    "256:512:fp32:1",
    "256:512:bf16:1",
]


def make_data(folder, n_faces=8, n_styles=4):
    sys.path.insert(0, str(ROOT / "tests"))
    import train_helpers

    return (
        train_helpers.make_folder(folder / "faces", n_faces, size=256),
        train_helpers.make_folder(folder / "styles", n_styles, size=256, kind="styles", seed=1),
    )


def run_one(cfg, args, faces, styles, work, codes_cache):
    size, width, precision, procs = cfg.split(":")
    out = work / cfg.replace(":", "_")
    out.mkdir()
    if codes_cache.get(size):
        shutil.copy(codes_cache[size], out / "style_codes.pt")
    train = [
        "-m",
        "blendgan",
        "train",
        "generator",
        "--faces",
        str(faces),
        "--styles",
        str(styles),
        "--style_encoder_ckpt",
        args.style_encoder_ckpt,
        "--outdir",
        str(out),
        "--size",
        size,
        "--max_channels",
        width,
        "--precision",
        precision,
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
    cmd = [
        sys.executable,
        *(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", procs] if int(procs) > 1 else []),
        *train,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", harness.CHILD_PEAK_RSS, *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"config": cfg, "error": proc.stderr.strip().splitlines()[-2:-1]}
    peak = int(proc.stderr.strip().splitlines()[-1].split()[-1])
    codes_cache.setdefault(size, out / "style_codes.pt")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steady = [r["images_per_s"] for r in log[1:]] or [log[-1]["images_per_s"]]
    return {
        "config": cfg,
        "images_per_s": sum(steady) / len(steady),
        "peak_rss_gb": peak / 2**20,
        "wall_s": wall,
        "images_per_step": args.batch * int(procs),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--style_encoder_ckpt", default=None, help="style_encoder.pt or blendgan.pt (default: random, made here)"
    )
    p.add_argument("--quick", action="store_true", help="only 64:64:fp32:1, 2 steps: that the benchmark runs")
    p.add_argument("--configs", nargs="+", default=DEFAULT, help="SIZE:MAX_CHANNELS:PRECISION:PROCESSES ...")
    p.add_argument("--batch", type=int, default=4, help="per process (default: %(default)s)")
    p.add_argument("--iters", type=int, default=5, help="steps per run (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="(default: %(default)s)")
    args = p.parse_args()
    if args.quick:
        args.configs, args.iters = ["64:64:fp32:1"], 2
    print(harness.machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        faces, styles = make_data(work)
        if args.style_encoder_ckpt is None:
            import train_helpers

            args.style_encoder_ckpt = str(train_helpers.make_style_encoder(work / "style_encoder.pt"))
        cache = {}
        print("| size | max_channels | precision | processes | images/step | images/s | peak RSS (GB) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for cfg in args.configs:
            r = run_one(cfg, args, faces, styles, work, cache)
            s, w, prec, n = cfg.split(":")
            if "error" in r:
                print(f"| {s} | {w} | {prec} | {n} | - | failed: {r['error']} | - |", flush=True)
                continue
            print(
                f"| {s} | {w} | {prec} | {n} | {r['images_per_step']} | {r['images_per_s']:.2f} | "
                f"{r['peak_rss_gb']:.2f} |",
                flush=True,
            )
    print(harness.finish_line())


if __name__ == "__main__":
    main()
