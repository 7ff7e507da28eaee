"""`blendgan fit-style` and its two stages: seconds per step at 256 and 1024 px, fp32 and bf16, and peak RSS.

    python benchmarks/fit_style.py       # 256 and 1024, fp32 and bf16; writes results/fit_style_cpu.md
    python benchmarks/fit_style.py --sizes 256 --precisions fp32 --steps 3
    python benchmarks/fit_style.py --quick      # 64 px, fp32, 2 steps per stage, nothing written: that it runs
    python benchmarks/fit_style.py --presets default quick --sizes 64    # whole fits, side by side
    python benchmarks/fit_style.py --presets quick --sizes 1024          # a whole `fit-style --quick` at 1024 px

`--presets` runs the command itself (`blendgan fit-style REF [--quick]`, sheet and snapshots included) once per
preset and size and gives its wall time, peak RSS and the style-taken measure of its report.json (the cosine of
style codes, result vs reference: base model, fitted code, code + adapter), so the default and the quick fit
are compared on the same weights in one run.

Each (size, precision) runs in a child process (its peak RSS is its own) through the real trainer
(`blendgan.training.fit_style_loop`, the command's code path) on random weights of the real shapes, saved as
blendgan.pt / psp_encoder.pt files once per size: timing does not depend on the weights' values. A step's time
is the log's elapsed time between two steps; the first step of each stage is left out (warm-up). The expected
time of a default fit (--code_steps 100, --iters 300, --batch 2) follows from the two stages' step times.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CODE_STEPS, DEFAULT_ITERS = 100, 300
EMPTY = "empty_sheet_faces"


def make_weights(folder, size):
    import torch

    from blendgan.models import Generator, PSPEncoder, n_latent_for_size

    folder.mkdir(parents=True, exist_ok=True)
    ck, psp = folder / f"blendgan_{size}.pt", folder / f"psp_{size}.pt"
    if not ck.exists():
        torch.manual_seed(0)
        g = Generator(size)
        torch.save({"g_ema": g.state_dict(), "latent_avg": torch.zeros(1, 512)}, ck)
        del g
    if not psp.exists():
        torch.manual_seed(1)
        enc = PSPEncoder(n_latent_for_size(size))
        sd = enc.state_dict()
        torch.save(
            {"state_dict": {k: v for k, v in sd.items() if k.startswith("encoder.")}, "latent_avg": sd["latent_avg"]},
            psp,
        )
    return ck, psp


def child(args):
    from blendgan.training.config import FitStyleConfig
    from blendgan.training.fit_style_loop import fit_style

    work = Path(args.work)
    (work / EMPTY).mkdir(exist_ok=True)
    run = work / f"run_{args.size}_{args.precision}_{time.time_ns()}"
    steps = args.steps
    cfg = FitStyleConfig(
        references=[str(ROOT / "test_imgs/style_imgs/cartoon_astronaut.jpg")],
        ckpt=args.ckpt,
        psp_encoder_ckpt=args.psp,
        outdir=str(run),
        iters=2 * steps,
        code_steps=steps,
        batch=args.batch,
        precision=args.precision,
        log_every=1,
        snapshot_every=10_000,
        sample_every=10_000,
        sheet_faces=str(work / EMPTY),
        progress=False,
        device="cpu",
        fit_resolution=args.fit_resolution,
    )
    t0 = time.perf_counter()
    fit_style(cfg)
    total = time.perf_counter() - t0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed_s"] for r in log]
    per_step = [b - a for a, b in zip(elapsed, elapsed[1:])]
    stage1 = per_step[: steps - 1]  # steps 2 ... steps
    stage2 = per_step[steps:]  # steps steps+2 ... 2*steps
    print(
        json.dumps(
            {
                "size": args.size,
                "precision": args.precision,
                "batch": args.batch,
                "fit_resolution": args.fit_resolution,
                "stage1_s": sum(stage1) / len(stage1),
                "stage2_s": sum(stage2) / len(stage2),
                "first_step_s": elapsed[0],
                "total_s": total,
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            }
        )
    )


def whole_fits(args, work):
    """Rows of `blendgan fit-style` run end to end, once per size and preset (args.presets)."""
    rows = []
    for size in args.sizes:
        if args.weights == "recipe-tiny":  # the tests' weights (tests/helpers.py): narrow, signals of a usable size
            sys.path.insert(0, str(ROOT / "tests"))
            from helpers import GENERATOR_SEED, RecipeFiles

            files = RecipeFiles(work / "recipe")
            ck, psp = files.blendgan(size, GENERATOR_SEED, True), files.psp_encoder(size, GENERATOR_SEED + 1, tiny=True)
        else:
            ck, psp = make_weights(work / "weights", size)
        for preset in args.presets:
            run = work / f"whole_{size}_{preset}"
            cmd = [
                sys.executable,
                "-m",
                "blendgan",
                "fit-style",
                str(ROOT / "test_imgs/style_imgs/cartoon_astronaut.jpg"),
            ]
            cmd += ["--outdir", str(run), "--ckpt", str(ck), "--psp_encoder_ckpt", str(psp), "--no_progress"]
            cmd += ["--device", "cpu"] + (["--quick"] if preset == "quick" else [])
            t0 = time.perf_counter()
            out = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT), "BLENDGAN_OFFLINE": "1"},
            )
            minutes = (time.perf_counter() - t0) / 60
            if out.returncode != 0:
                rows.append({"size": size, "preset": preset, "error": out.stderr.strip().splitlines()[-1]})
            else:
                config = json.loads((run / "config.json").read_text())
                taken = json.loads((run / "report.json").read_text())["style_taken"]
                rows.append(
                    {
                        "size": size,
                        "preset": preset,
                        "minutes": minutes,
                        "steps": f"{config['code_steps']} + {config['iters'] - config['code_steps']}",
                        "batch": config["batch"],
                        "taken": taken,
                    }
                )
            print(rows[-1], flush=True)
    lines = [
        "| size | preset | batch | steps (stage 1 + 2) | wall time | style taken: "
        + " / ".join(rows[0].get("taken", {}) or ["base", "code", "adapter"])
        + " |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['preset']} | {r['error']} | | | |")
            continue
        taken = " / ".join(f"{v:.3f}" for v in r["taken"].values())
        lines.append(
            f"| {r['size']} | {r['preset']} | {r['batch']} | {r['steps']} | {r['minutes']:.1f} min | {taken} |"
        )
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=3, help="steps of each stage measured (the first is warm-up)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument(
        "--fit_resolutions",
        type=int,
        nargs="+",
        default=[256, 0],
        help="--fit_resolution values to time (0: the whole generator)",
    )
    p.add_argument("--fit_resolution", type=int, default=256, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per child before it is stopped")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/fit_style_cpu.md"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--precision", help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--psp", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="64 px, fp32, 2 steps per stage, no file: that it runs")
    p.add_argument(
        "--presets",
        nargs="+",
        choices=["default", "quick"],
        help="run whole fits with these presets instead of timing steps (writes --out only when given)",
    )
    p.add_argument(
        "--weights",
        choices=["random", "recipe-tiny"],
        default="random",
        help="whole fits: random weights of the real shapes, or the tests' narrow recipe weights",
    )
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.presets:
        work = Path(tempfile.mkdtemp(prefix="bench_fit_"))
        lines = [
            f"# whole `blendgan fit-style` runs on this CPU ({os.cpu_count()} cores)",
            "",
            harness.machine_line(),
            "",
        ]
        lines += whole_fits(args, work) + ["", harness.finish_line()]
        if "--out" in sys.argv:
            Path(args.out).write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        return
    if args.quick:
        args.sizes, args.precisions, args.fit_resolutions, args.steps, args.out = [64], ["fp32"], [0], 2, None
    work = Path(tempfile.mkdtemp(prefix="bench_fit_"))
    rows = []
    start = harness.machine_line()
    for size in args.sizes:
        ck, psp = make_weights(work / "weights", size)
        # a --fit_resolution at or above the size runs the whole generator, as 0 does: timed once
        configs = [(p, r if 0 < r < size else 0) for p in args.precisions for r in args.fit_resolutions]
        for precision, fit_resolution in dict.fromkeys(configs):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--size",
                str(size),
                "--precision",
                precision,
                "--ckpt",
                str(ck),
                "--psp",
                str(psp),
                "--work",
                str(work),
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
                "--fit_resolution",
                str(fit_resolution),
            ]
            try:
                out = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=args.timeout,
                    env={**os.environ, "PYTHONPATH": str(ROOT), "BLENDGAN_OFFLINE": "1"},
                )
            except subprocess.TimeoutExpired:
                rows.append(
                    {
                        "size": size,
                        "precision": precision,
                        "fit_resolution": fit_resolution,
                        "error": f"stopped after {args.timeout:.0f} s",
                    }
                )
                print(rows[-1], flush=True)
                continue
            if out.returncode != 0:
                rows.append(
                    {
                        "size": size,
                        "precision": precision,
                        "fit_resolution": fit_resolution,
                        "error": out.stderr.strip().splitlines()[-1],
                    }
                )
            else:
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    lines = [
        f"# fit-style on this CPU ({os.cpu_count()} cores), batch {args.batch}",
        "",
        start,
        "",
        "Random weights of the real shapes; seconds per step without the first step of each stage.",
        "",
        "| size | precision | --fit_resolution | stage 1 s/step | stage 2 s/step | a default fit "
        "(100 + 200 steps) | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['size']} | {r['precision']} | {r['fit_resolution'] or r['size']} | {r['error']} | | | |"
            )
            continue
        minutes = (DEFAULT_CODE_STEPS * r["stage1_s"] + (DEFAULT_ITERS - DEFAULT_CODE_STEPS) * r["stage2_s"]) / 60
        lines.append(
            f"| {r['size']} | {r['precision']} | {r['fit_resolution'] or r['size']} | {r['stage1_s']:.2f} | "
            f"{r['stage2_s']:.2f} | "
            f"{minutes:.0f} min | {r['peak_rss_gb']:.1f} GB |"
        )
    lines += ["", harness.finish_line()]
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
