"""Benchmark: `blendgan dataset` images per second at 1024 px, faces and styles, one process and two (torchrun).

    python benchmarks/dataset.py              # 24 made files per kind
    python benchmarks/dataset.py --files 24 --size 512

Inputs are made from the bundled pictures: faces are the two photos enlarged 3.2 times (so that each main face's
FFHQ crop is above the default --min_resolution of 512 px), shifted and mirrored in 2400 x 2000 canvases; styles are the
five artworks enlarged to 1200 px and cropped to landscape/portrait shapes. Each configuration runs the command
in a fresh output folder; the rates are files (every one examined: decoded, faces detected and aligned) and kept
images per wall-clock second of the whole command (process start and the landmark model's loading included).
--dup_threshold 0 drops only identical hashes (copies of one face at other canvas positions align identically).
Prints a Markdown table with the CPU model + flags, the load average and the peak RSS of the command's processes.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMGS = ROOT / "test_imgs"


def cpu_info():
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    have = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return model, " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have)


def make_faces(folder, n):
    folder.mkdir(parents=True)
    photos = [cv2.imread(str(p)) for p in sorted((IMGS / "photos").glob("*.jpg"))]
    rng = np.random.default_rng(0)
    for i in range(n):
        photo = cv2.resize(photos[i % len(photos)], None, fx=3.2, fy=3.2, interpolation=cv2.INTER_CUBIC)
        if i // len(photos) % 2:
            photo = photo[:, ::-1]
        canvas = np.full((2000, 2400, 3), int(rng.integers(60, 200)), np.uint8)
        h, w = photo.shape[:2]
        y, x = int(rng.integers(0, 2000 - h + 1)), int(rng.integers(0, 2400 - w + 1))
        canvas[y : y + h, x : x + w] = photo
        cv2.imwrite(str(folder / f"photo_{i:03d}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])


def make_styles(folder, n):
    folder.mkdir(parents=True)
    arts = [cv2.imread(str(p)) for p in sorted((IMGS / "style_imgs").glob("*.jpg"))]
    for i in range(n):
        art = cv2.resize(arts[i % len(arts)], (1200, 1200), interpolation=cv2.INTER_CUBIC)
        art = art[: 900 + 100 * (i % 4), : 1200 - 100 * (i % 3)]
        if i // len(arts) % 2:
            art = art[:, ::-1]
        cv2.imwrite(str(folder / f"art_{i:03d}.jpg"), art, [cv2.IMWRITE_JPEG_QUALITY, 95])


MEASURE = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(r.returncode)"
)


def run(kind, src, out, procs, size):
    launcher = [sys.executable, "-m", "blendgan"]
    if procs > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
        launcher += ["-m", "blendgan"]
    cmd = [*launcher, "dataset", str(src), "--outdir", str(out), "--kind", kind, "--size", str(size)]
    cmd += ["--dup_threshold", "0", "--no_progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", MEASURE, *cmd], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    rss = int(r.stderr.strip().splitlines()[-1].split()[1]) / 1024
    kept = sum(1 for _ in open(out / "manifest.jsonl"))
    return kept, seconds, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dataset_bench_"))
    try:
        make_faces(work / "faces", args.files)
        make_styles(work / "styles", args.files)
        rows = []
        for kind in ("faces", "styles"):
            rates = {}
            for procs in (1, 2):
                kept, seconds, rss = run(kind, work / kind, work / f"out_{kind}_{procs}", procs, args.size)
                rates[procs] = args.files / seconds
                load = " ".join(f"{v:.2f}" for v in os.getloadavg())
                rows.append((kind, procs, args.files, kept, seconds, args.files / seconds, kept / seconds, rss, load))
            rows[-1] = (*rows[-1], f"{rates[2] / rates[1]:.2f}x")
        model, flags = cpu_info()
        print(
            "| kind | processes | files | images kept | seconds | files/s | kept images/s | speed-up (files/s) "
            "| peak RSS (MB) | load avg |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for kind, procs, files, kept, seconds, rate, kept_rate, rss, load, *speedup in rows:
            print(
                f"| {kind} | {procs} | {files} | {kept} | {seconds:.1f} | {rate:.2f} | {kept_rate:.2f} "
                f"| {(speedup or [''])[0]} | {rss:.0f} | {load} |"
            )
        print(f"\n{args.size} px; CPU: {model} ({flags}), {os.cpu_count()} cores; OMP_NUM_THREADS=1 per process")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
