"""Benchmark: the cost of ADA (--augment) per `train generator` step.

    python benchmarks/ada.py                          # 256 px, 64-channel networks, batch 4, CPU
    python benchmarks/ada.py --max_channels 512       # config-f widths: a step takes minutes on a CPU

Two trainers are built in one process from the same data and seed, one with --augment none and one with
--augment fixed --augment_p P (the cost hardly depends on p once a batch holds one transformed sample: the
geometric transforms resample the whole batch); their steps are timed alternately (steps 2.. of each run,
after an untimed step 1; the lazy regularisations of step 0 are not timed). It also times the augmentation
alone (forward + backward of the nine calls a step makes). Prints a Markdown row with CPU model + flags,
load average and peak RSS.
"""

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def cpu_info():
    """(CPU model, the vector flags that matter for PyTorch on the CPU)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    have = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return model, " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have)


def trainer(cfg_kwargs, outdir):
    from blendgan import distributed
    from blendgan.training import loop
    from blendgan.training.config import GeneratorConfig
    from blendgan.training.generator_loop import GeneratorTrainer
    from blendgan.training.runs import RunDir

    cfg = GeneratorConfig(outdir=str(outdir), **cfg_kwargs)
    ctx = distributed.init("cpu")
    run = loop.Run(cfg, ctx, RunDir(cfg.outdir), None, log_file=open(os.devnull, "w"))
    t = GeneratorTrainer(run)
    t.parallel()
    return t, cfg, ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--max_channels", type=int, default=64, help="ADA's cost does not depend on it; the step's does")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    ap.add_argument("--p", type=float, default=0.6)
    args = ap.parse_args()

    import torch

    from blendgan.models import StyleEncoder
    from blendgan.training import augment, data

    import train_helpers

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="ada_bench_"))
    faces = train_helpers.make_folder(work / "faces", 8, size=args.size)
    styles = train_helpers.make_folder(work / "styles", 4, size=args.size, kind="styles", seed=1)
    torch.save(StyleEncoder(width=8).state_dict(), work / "se.pt")  # a narrow encoder: it runs once, untimed
    common = dict(
        faces=str(faces),
        styles=str(styles),
        style_encoder_ckpt=str(work / "se.pt"),
        size=args.size,
        max_channels=args.max_channels,
        batch=args.batch,
        progress=False,
    )
    plain = trainer(common, work / "none")
    ada = trainer({**common, "augment": "fixed", "augment_p": args.p}, work / "ada")
    times = {"none": [], "ada": []}
    for step in range(1, args.steps + 2):  # step 1 warms up (first backward passes allocate), untimed
        for name, (t, cfg, ctx) in (("none", plain), ("ada", ada)):
            positions = data.global_positions(step, cfg.batch, ctx)
            t0 = time.perf_counter()
            t.step(step, positions)
            if step > 1:
                times[name].append(time.perf_counter() - t0)

    # the augmentation alone: the 9 calls of a step (D: 3 reals + 3 fakes; G: 3 fakes), forward + backward
    x = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    alone = []
    for rep in range(args.steps):
        xs = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        out = sum(
            augment.augment(xs, args.p, 0, 40 + k, range(rep * 64, rep * 64 + args.batch)).sum() for k in range(9)
        )
        out.backward()
        alone.append(time.perf_counter() - t0)

    none_s, ada_s, alone_s = (statistics.median(v) for v in (times["none"], times["ada"], alone))
    model, flags = cpu_info()
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        "| size | width | batch | p | step, none (s) | step, ADA (s) | ADA cost | augment alone (s) | CPU | flags "
        "| threads | load avg | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.size} | {args.max_channels} | {args.batch} | {args.p} | {none_s:.3f} | {ada_s:.3f} "
        f"| {100 * (ada_s - none_s) / none_s:+.1f} % | {alone_s:.3f} ({100 * alone_s / none_s:.1f} % of a step) "
        f"| {model} | {flags} | {torch.get_num_threads()} | {load} | {rss:.0f} |"
    )
    shutil.rmtree(work, ignore_errors=True)
    print(f"steps none: {[round(t, 3) for t in times['none']]}, ada: {[round(t, 3) for t in times['ada']]}")


if __name__ == "__main__":
    main()
