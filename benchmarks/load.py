"""Benchmark: loading the generator from `.pt` vs `.safetensors`, each in a fresh process.

    python benchmarks/load.py                    # pretrained_models/blendgan.pt (a .safetensors copy is
                                                 #   made in a temporary folder if there is none beside it)
    python benchmarks/load.py --recipe           # the 1024 px recipe generator (made on the fly)
    python benchmarks/load.py A.pt B.safetensors
    python benchmarks/load.py --quick            # the 64 px recipe generator, 1 run each: that it runs

For each file and page-cache state (warm: the file was just read; cold: its pages were dropped with
posix_fadvise first) it runs `--runs` fresh Python processes that import torch and blendgan, then load the
generator exactly as the commands do (`read_checkpoint` + `generator_from_checkpoint`; no sibling
substitution), and reports the median of: load seconds, the process's peak RSS growth during the load, and
the peak RSS growth once every tensor has been read (what the first forward pass does). For context it
also times what the original scripts do: `torch.load` of the whole file, `Generator(...)`, then
`load_state_dict`. Ratios are .pt / .safetensors measured in this run. Linux only (reads /proc).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
def rss_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
import torch
from blendgan import weights as checkpoints
from blendgan.models import Generator
path, how = sys.argv[1], sys.argv[2]
before = rss_kb("VmRSS")
t = time.perf_counter()
if how == "blendgan":
    model, _ = checkpoints.generator_from_checkpoint(checkpoints.read_checkpoint(path, prefer_safetensors=False))
else:  # the original scripts: read everything, build a randomly initialised model, copy the weights in
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = Generator(checkpoints.check_checkpoint(ckpt, "generator")["size"])
    model.load_state_dict(ckpt["g_ema"])
    del ckpt
load_s = time.perf_counter() - t
peak_load = rss_kb("VmHWM")
for p in model.state_dict().values():
    p.sum()
print(json.dumps({"load_s": load_s, "load_mb": (peak_load - before) / 1024,
                  "touched_mb": (rss_kb("VmHWM") - before) / 1024}))
"""


def drop_from_page_cache(path):
    os.sync()  # only clean pages can be dropped
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm_page_cache(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def run_child(path, how):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"loading {path} failed:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(path, how, cache, runs):
    results = []
    for _ in range(runs):
        (drop_from_page_cache if cache == "cold" else warm_page_cache)(path)
        results.append(run_child(path, how))
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def recipe_file(folder, size=1024):
    sys.path.insert(0, str(ROOT / "tests"))
    import helpers  # the tests' recipe weights: made from the model's keys, nothing to download

    return helpers.RecipeFiles(Path(folder)).blendgan(size)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="a .pt and/or a .safetensors generator")
    parser.add_argument("--recipe", action="store_true", help="benchmark the 1024 px recipe generator")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per measurement (default 3)")
    parser.add_argument("--no-original", action="store_true", help="skip the original scripts' way of loading")
    parser.add_argument("--quick", action="store_true", help="the 64 px recipe generator, 1 run: that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    print(harness.machine_line(), flush=True)
    sys.path.insert(0, str(ROOT))
    from blendgan import weights as checkpoints

    with tempfile.TemporaryDirectory(prefix="blendgan-load-") as tmp:
        files = list(args.files)
        if args.recipe or args.quick:
            files = [recipe_file(tmp, 64 if args.quick else 1024)]
        elif not files:
            files = [ROOT / "pretrained_models" / "blendgan.pt"]
        pts = [f for f in files if f.suffix != ".safetensors"]
        if pts and not any(f.suffix == ".safetensors" for f in files):
            sibling = pts[0].with_suffix(".safetensors")
            files.append(
                sibling
                if sibling.is_file()
                else checkpoints.convert_to_safetensors(pts[0], Path(tmp) / "blendgan.safetensors")
            )
        for f in files:
            if not f.is_file():
                sys.exit(f"{f} not found (run `blendgan download`, or pass --recipe)")
        rows = []
        for f in files:
            for cache in ("warm", "cold"):
                rows.append((f, "blendgan", cache, measure(f, "blendgan", cache, args.runs)))
            if f.suffix != ".safetensors" and not args.no_original:
                rows.append((f, "original", "warm", measure(f, "original", "warm", 1)))

    print(harness.markdown_row(["file", "loader", "page cache", "load s", "peak RSS growth MB", "all read MB"]))
    print(harness.markdown_row(["---"] * 6))
    for f, how, cache, m in rows:
        cells = [f.name, how, cache, f"{m['load_s']:.3f}", f"{m['load_mb']:.1f}", f"{m['touched_mb']:.1f}"]
        print(harness.markdown_row(cells))
    by = {(f.suffix == ".safetensors", how, cache): m for f, how, cache, m in rows}
    for cache in ("warm", "cold"):
        pt, st = by.get((False, "blendgan", cache)), by.get((True, "blendgan", cache))
        if pt and st:
            print(
                f"{cache}: .pt / .safetensors load time {pt['load_s'] / st['load_s']:.1f}x; peak RSS growth "
                f".pt {pt['load_mb']:.1f} MB, .safetensors {st['load_mb']:.1f} MB "
                f"({pt['load_mb'] - st['load_mb']:+.1f} MB for the .pt)"
            )

    print(harness.finish_line())


if __name__ == "__main__":
    main()
