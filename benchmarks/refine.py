"""Refine a face (`BlendGAN.refine_face`, blendgan/fitting/refine.py): seconds per optimisation step and peak RSS.

    python benchmarks/refine.py                              # 256 and 1024 px, fp32 and bf16, 5 timed steps each
    python benchmarks/refine.py --quick                      # 64 px fp32, 2 steps: a quick check that it runs
    python benchmarks/refine.py --test-weights               # the tests' recipe weights: loss before/after

Each (size, precision) runs in a child process, so its peak RSS (VmHWM) is its own. The generator is
random-initialised with the real shapes (channel_multiplier 2, the style encoder's VGG19 and style matrix
included): a step's time does not depend on the weights' values. A step is what `refine_face` runs per
step: the generator forward from W+ codes with its stored noise, the losses at 256 px (L2 + VGG19
perceptual), the backward to the codes and an Adam update. The first step is a warm-up and not counted.
In a bf16 pipeline on CPU refine_face runs float32 copies of the generator and the VGG (bf16 convolutions'
backward takes PyTorch's slow reference kernel on CPUs without bf16 instructions); --raw times the bf16
networks themselves. A step slower than --max_seconds is stopped there (reported, not waited for).

--test-weights: the reconstruction loss (the refine's image terms) of pSp's codes and of the refined codes on
the 64 px recipe weights the tests use (tests/test_refine.py asserts a margin well inside these figures).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]


def child(size, precision, steps, max_seconds, raw=False):
    import numpy as np
    import torch

    from blendgan.fitting.refine import ReconstructionLoss, refine_codes
    from blendgan.io import images
    from blendgan.models import Generator
    from blendgan.pipeline import BlendGAN

    torch.manual_seed(0)
    generator = Generator(size)
    bg = BlendGAN.from_models(generator, None, device="cpu", precision=precision)
    del generator
    face = images.read_image_bgr(sorted((ROOT / "test_imgs" / "face_imgs").glob("*.*"))[0])
    init = bg.face_codes_from_z(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)))
    if raw:  # the pipeline's own (bf16) generator and VGG, as refine_face would run them without the copies
        generator, vgg, dtype = bg.generator, bg.generator.embedder.embedder.feature_extractor.vgg_layers, bg.dtype
    else:  # what refine_face runs (float32 copies in a bf16 pipeline on CPU)
        generator, vgg, dtype = bg.refiner.models()
    target = images.bgr_to_tensor(images.resize_square(face, size)).to(dtype)
    loss = ReconstructionLoss(vgg)
    stamps = [time.perf_counter()]

    class TooSlow(Exception):
        pass

    def progress(done, total, value):
        stamps.append(time.perf_counter())
        if stamps[-1] - stamps[-2] > max_seconds:
            raise TooSlow()

    stopped = False
    try:
        result = refine_codes(generator, target, init, loss, steps=steps + 1, progress=progress, dtype=dtype)
        losses = (result.loss_before, result.loss_after)
    except TooSlow:
        stopped, losses = True, (float("nan"), float("nan"))
    per_step = np.diff(stamps)
    peak = None
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return {
        "size": size,
        "precision": precision,
        "runs_in": str(dtype).replace("torch.", ""),
        "first_step_s": float(per_step[0]),
        "step_s": float(np.median(per_step[1:])) if len(per_step) > 1 else None,
        "steps_timed": max(len(per_step) - 1, 0),
        "stopped_slow": stopped,
        "peak_rss_mb": peak,
        "loss_before": losses[0],
        "loss_after": losses[1],
        "threads": torch.get_num_threads(),
    }


def test_weights(steps, lr):
    sys.path.insert(0, str(ROOT / "tests"))
    import torch

    from blendgan.fitting.refine import ReconstructionLoss
    from blendgan.io import images
    from blendgan.models import Generator, PSPEncoder
    from blendgan.models.loading import from_state_dict
    from blendgan.pipeline import BlendGAN

    import helpers

    g = from_state_dict(lambda: Generator(64), helpers.generator_state_dict(64))
    sd, latent_avg = helpers.psp_state_dict(64)
    psp = from_state_dict(
        lambda: PSPEncoder(latent_avg.shape[0]),
        {**{f"encoder.{k}": v for k, v in sd.items()}, "latent_avg": latent_avg},
    )
    bg = BlendGAN.from_models(g, psp, device="cpu")
    vgg = bg.generator.embedder.embedder.feature_extractor.vgg_layers
    rows = []
    for path in helpers.FACES:
        face = images.read_image_bgr(path)
        measure = ReconstructionLoss(vgg)
        with torch.no_grad():
            before = float(measure(bg.reconstruct(bg.encode_face_bgr(face)), images.bgr_to_tensor(face))[0])
            codes = bg.refine_face_bgr(face, steps, lr=lr)
            after = float(measure(bg.reconstruct(codes), images.bgr_to_tensor(face))[0])
        rows.append(
            {
                "face": path.name,
                "steps": steps,
                "lr": lr,
                "loss_psp": before,
                "loss_refined": after,
                "ratio": after / before,
                "seconds": bg.last_refine.seconds,
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    parser.add_argument("--max_seconds", type=float, default=60.0, help="stop a configuration slower than this")
    parser.add_argument("--test-weights", action="store_true", help="loss before/after on the tests' weights")
    parser.add_argument("--lr", type=float, default=0.05, help="--test-weights: learning rate (the tests' 0.05)")
    parser.add_argument(
        "--raw",
        action="store_true",
        help="bf16: time the bf16 generator itself instead of refine_face's float32 copies",
    )
    parser.add_argument("--quick", action="store_true", help="64 px, fp32, 2 steps: that the benchmark runs")
    parser.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, precision = args.child.split(":")
        print(json.dumps(child(int(size), precision, args.steps, args.max_seconds, args.raw)))
        return
    if args.quick:
        args.sizes, args.precisions, args.steps = [64], ["fp32"], 2
    print(harness.machine_line(), flush=True)
    if args.test_weights:
        for row in test_weights(3, args.lr):
            print(json.dumps(row), flush=True)
        return
    print(harness.markdown_row(["size", "precision", "runs in", "first step s", "step s (median)", "peak RSS MB"]))
    print(harness.markdown_row(["---"] * 6))
    for size in args.sizes:
        for precision in args.precisions:
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    f"{size}:{precision}",
                    "--steps",
                    str(args.steps),
                    "--max_seconds",
                    str(args.max_seconds),
                ]
                + ["--raw"] * args.raw,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if proc.returncode:
                print(f"{size} px {precision}: failed\n{proc.stderr[-2000:]}", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            step = "stopped: slower than --max_seconds" if r["stopped_slow"] else f"{r['step_s']:.2f}"
            cells = [size, precision, r["runs_in"], f"{r['first_step_s']:.2f}", step, f"{r['peak_rss_mb']:.0f}"]
            print(harness.markdown_row(cells), flush=True)
    print(harness.finish_line(), flush=True)


if __name__ == "__main__":
    main()
