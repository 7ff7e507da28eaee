"""Benchmark: the training reader's memory does not grow with the number of shards.

    python benchmarks/shard_rss.py                # 1, 10 and 100 copies of a 250-image shard at 256 px

One `blendgan dataset`-style shard is made (250 PNGs at --size, from the bundled pictures), then folders
holding 1, 10, 100 copies of it; for each, a fresh process opens the folder with the trainer's reader
(`blendgan.training.data.open_images`) and reads 2000 images in the trainer's sampling order, as training
does. Prints a Markdown table: images in the set, peak RSS of the reading process, seconds, load average,
CPU model + flags.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

READ = """
import resource, sys
sys.path.insert(0, {root!r})
from blendgan.training import data
from blendgan.distributed import Context
imgs = data.open_images({folder!r}, {size}, "styles", Context())
sampler = data.Sampler(len(imgs), 0, 2)
for i, flip in sampler.draw(range({reads})):
    imgs.tensor(i, flip)
print(len(imgs), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def cpu_info():
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    have = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return model, " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=250, help="images in the shard")
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--reads", type=int, default=2000)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from blendgan import dataset_tool as dt

    import train_helpers

    work = Path(tempfile.mkdtemp(prefix="shard_rss_"))
    try:
        raw = train_helpers.make_folder(work / "raw", args.images, size=args.size, kind="styles")
        opts = dt.DatasetOptions(kind="styles", size=args.size, shards=1, dup_threshold=0, min_resolution=8)
        dt.make_dataset([raw], work / "one", opts, progress=False)
        shard = work / "one" / "styles-000000.tar"
        model, flags = cpu_info()
        print("| images in the set | shards | images read | peak RSS (MB) | seconds | load avg |")
        print("|---|---|---|---|---|---|")
        for copies in args.copies:
            folder = work / f"x{copies}"
            folder.mkdir()
            for k in range(copies):
                os.link(shard, folder / f"styles-{k:06d}.tar")  # hard links: the same bytes, no disk space
            code = READ.format(root=str(ROOT), folder=str(folder), size=args.size, reads=args.reads)
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - t0
            n, rss_kb = map(int, out.stdout.split())
            load = " ".join(f"{v:.2f}" for v in os.getloadavg())
            print(f"| {n} | {copies} | {args.reads} | {rss_kb / 1024:.0f} | {seconds:.1f} | {load} |")
        print(f"\n{args.size} px PNGs; CPU: {model} ({flags})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
