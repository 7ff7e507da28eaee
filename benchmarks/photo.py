"""Whole photos (`blendgan stylize`): a 4000 x 3000 photo with three faces through the 1024 px generator.

    python benchmarks/photo.py                       # fp32 and bf16, 2 runs each, writes results/photo_cpu.md
    python benchmarks/photo.py --precisions fp32 --runs 1
    python benchmarks/photo.py --quick               # fp32, 1 run, nothing written: that it runs

Each precision runs in a child process (so its peak RSS is its own) over the same job the command runs
(`blendgan.jobs.stylize_photos`: read, detect, align, encode, stylize, paste back, write). The networks'
calls (style encoder, pSp encoder, generator) are timed where the pipeline makes them; everything else is
"outside the networks" (decoding, detection, landmarks, alignment, masks, warping back, blending, JPEG
writing). The weights are random (same shapes as the real ones): timing does not depend on their values,
and the faces are found by dlib's real detector on the photo made here from the bundled photos.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BF16_NOTE = "this CPU has no oneDNN bf16 kernels, bf16 convolutions run on reference code (docs/speed.md)"


def bf16_emulated():
    import torch

    from blendgan.ops.bf16 import bf16_is_emulated

    return bf16_is_emulated(torch.device("cpu"))


sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_photo(path, width=4000, height=3000):
    """Three faces (the bundled photos' people, enlarged) on a smooth, slightly noisy background."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    small = cv2.resize(
        rng.integers(60, 200, (6, 8, 3)).astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC
    )
    canvas = np.clip(small.astype(np.int16) + rng.integers(-6, 7, small.shape), 0, 255).astype(np.uint8)
    photos = ROOT / "test_imgs" / "photos"
    people = [
        cv2.imread(str(photos / "grace_hopper.jpg")),
        cv2.imread(str(photos / "astronaut.jpg")),
        cv2.flip(cv2.imread(str(photos / "grace_hopper.jpg")), 1),
    ]
    for k, (img, scale) in enumerate(zip(people, (2.2, 2.6, 1.8))):
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        x0 = 150 + k * 1300
        y0 = 400 if k != 1 else 900
        h, w = min(img.shape[0], height - y0), min(img.shape[1], width - x0)
        canvas[y0 : y0 + h, x0 : x0 + w] = img[:h, :w]
    cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])


def child(args):
    import torch

    from blendgan import jobs
    from blendgan.allocator import reuse_freed_memory
    from blendgan.models import Generator, PSPEncoder
    from blendgan.photo import make_aligner
    from blendgan.pipeline import BlendGAN

    import harness

    torch.manual_seed(0)
    bg = BlendGAN(Generator(1024), PSPEncoder(18), device="cpu", precision=args.precision)
    reuse_freed_memory()
    spent = {"networks": 0.0, "faces": 0}
    harness.time_calls(bg, ["encode_face_bgr", "embed_style_bgr", "stylize"], spent)
    encode = bg.encode_face_bgr

    def counted(image):
        spent["faces"] += 1
        return encode(image)

    bg.encode_face_bgr = counted

    class Report:
        written = skipped = failed = 0

        def fail(self, path, reason):
            raise RuntimeError(f"{path}: {reason}")

        def note(self, message):
            print(message, file=sys.stderr)

    aligner = make_aligner()
    style = ROOT / "test_imgs" / "style_imgs" / "cartoon_astronaut.jpg"
    runs = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.runs):
            bg.clear_caches()
            spent["networks"], spent["faces"] = 0.0, 0
            t0 = time.perf_counter()
            jobs.stylize_photos(bg, [args.photo], style, out, Report(), aligner=aligner)
            total = time.perf_counter() - t0
            runs.append({"total": total, "networks": spent["networks"], "faces": spent["faces"]})
    best = min(runs, key=lambda r: r["total"])
    print(
        json.dumps(
            {
                "precision": args.precision,
                **best,
                "runs": runs,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--photo", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "photo_cpu.md"))
    parser.add_argument("--quick", action="store_true", help="fp32, 1 run, no file written: that the benchmark runs")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.precisions, args.runs, args.out = ["fp32"], 1, None
    import harness

    rep = harness.Report()
    rep.add("## Whole photo, 4000 x 3000, three faces, 1024 px generator (`blendgan stylize`)")
    rep.add()
    rep.add(f"Command: `python benchmarks/photo.py {' '.join(sys.argv[1:])}`; best of {args.runs} run(s) per precision")
    rep.add()
    rep.add(harness.machine_line())
    rep.add()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "group.jpg"
        make_photo(photo)
        for precision in args.precisions:
            if precision == "bf16" and bf16_emulated():
                rows.append([precision, "not run: " + BF16_NOTE, "", "", "", "", ""])
                continue
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--precision",
                    precision,
                    "--photo",
                    str(photo),
                    "--runs",
                    str(args.runs),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=False,
            )
            if done.returncode:
                sys.exit(done.stderr)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            outside = r["total"] - r["networks"]
            rows.append(
                [
                    precision,
                    r["faces"],
                    f"{r['total']:.2f}",
                    f"{r['networks']:.2f}",
                    f"{outside:.2f}",
                    f"{100 * outside / r['total']:.1f} %",
                    f"{r['peak_rss_mb']:.0f}",
                ]
            )
    rep.table(["precision", "faces", "total s", "networks s", "outside s", "outside share", "peak RSS MB"], rows)
    rep.add(harness.finish_line())
    if args.out:
        rep.write(args.out)


if __name__ == "__main__":
    main()
