"""Your own video (`blendgan stylize VIDEO`): a 720p clip with one face, 30 fps.

    python benchmarks/video.py                         # 10 s clip; 1024 px fp32 and bf16, 256 px fp32
    python benchmarks/video.py --seconds 2             # a shorter clip (frames/s is what it reports)
    python benchmarks/video.py --quick                 # 0.5 s, 256 px fp32, nothing written: that it runs
    python benchmarks/video.py --seconds 2 --configs 256:fp32 256:bf16 --settings every_frame default \
        encode_every_4 fast --out benchmarks/results/video_fast_cpu.md   # the defaults vs --every_frame, speed flags

Each configuration runs in a child process over the same job the command runs
(`blendgan.jobs.video.stylize_video`): pass 1 (decode, detect, landmarks, tracking, smoothing), pass 2
(decode, align, encode, smooth codes, generate, paste back, H.264 encode) and the final join with the audio.
The networks' calls (pSp encoder, generator) are timed where the pipeline makes them; the rest is "outside
the networks". Loading the models (the networks and dlib's) is not timed. Random weights (same shapes as the
real ones): timing does not depend on their values; the face is found by dlib's real detector in a clip made from
a bundled photo (`tests/helpers.make_face_clip`).
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
sys.path.insert(0, str(ROOT))
from blendgan.cli.stylize import FAST_ENCODE_EVERY, FAST_X264_PRESET  # noqa: E402 (the checkout's, not an install)

#: the job's settings a row can use: the defaults, `--every_frame` (the exact path of before, issue 33) and what
#: `--fast` sets besides the precision (a row's precision is its configuration's)
SETTINGS = {
    "default": {},
    "every_frame": {"encode_every": 1, "detect_every": 1},
    "encode_every_4": {"encode_every": 4},
    "fast": {"encode_every": FAST_ENCODE_EVERY, "x264_preset": FAST_X264_PRESET},
    "max_resolution_auto": {"max_resolution": "auto"},
}
BF16_NOTE = "this CPU has no oneDNN bf16 kernels, bf16 convolutions run on reference code (docs/speed.md)"


def bf16_emulated():
    import torch

    from blendgan.ops.bf16 import bf16_is_emulated

    return bf16_is_emulated(torch.device("cpu"))


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))


def child(args):
    import torch

    from blendgan.allocator import reuse_freed_memory
    from blendgan.jobs.video import stylize_video
    from blendgan.models import Generator, PSPEncoder
    from blendgan.models.generator import n_latent_for_size
    from blendgan.photo import make_aligner
    from blendgan.pipeline import BlendGAN

    import harness

    torch.manual_seed(0)
    bg = BlendGAN(
        Generator(args.size), PSPEncoder(n_latent_for_size(args.size)), device="cpu", precision=args.precision
    )
    reuse_freed_memory()
    spent = {"networks": 0.0}
    harness.time_calls(bg, ["encode_face_bgr", "stylize"], spent)
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))

    class Report:
        def note(self, message):
            print(message, file=sys.stderr)

    aligner = make_aligner()  # loaded before the clock starts, like the networks: a server loads them once
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        measured = stylize_video(
            bg, args.clip, z, Path(out) / "out.mp4", Report(), aligner=aligner, **SETTINGS[args.setting]
        )
        total = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "total": total,
                "networks": spent["networks"],
                "frames": measured["frames"],
                "flicker": measured["flicker"],
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--configs", nargs="+", default=["1024:fp32", "1024:bf16", "256:fp32"], help="generator size:precision pairs"
    )
    parser.add_argument(
        "--settings", nargs="+", default=["default"], choices=sorted(SETTINGS), help="job settings (SETTINGS)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setting", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--clip", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video_cpu.md"))
    parser.add_argument("--quick", action="store_true", help="0.5 s, 256:fp32, no file written: that it runs")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.seconds, args.configs, args.out = 0.5, ["256:fp32"], None
    import harness
    from helpers import make_face_clip

    rep = harness.Report()
    rep.add(f"## Your video: {args.seconds:g} s of 1280 x 720 at 30 fps, one face (`blendgan stylize VIDEO`)")
    rep.add()
    rep.add(f"Command: `python benchmarks/video.py {' '.join(sys.argv[1:])}`")
    rep.add()
    rep.add(harness.machine_line())
    rep.add()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_face_clip(Path(tmp) / "clip.mp4", seconds=args.seconds, fps=30, size=(1280, 720))
        for config in args.configs:
            size, precision = config.split(":")
            if precision == "bf16" and bf16_emulated():
                rows.append([size, precision, "", "not run: " + BF16_NOTE, "", "", "", "", ""])
                continue
            for setting in args.settings:
                command = [sys.executable, __file__, "--child", "--size", size, "--precision", precision]
                done = subprocess.run(
                    [*command, "--clip", str(clip), "--setting", setting],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    check=False,
                )
                if done.returncode:
                    sys.exit(done.stderr[-3000:])
                r = json.loads(done.stdout.strip().splitlines()[-1])
                outside = r["total"] - r["networks"]
                flags = " ".join(f"--{k} {v}" for k, v in SETTINGS[setting].items()) or "default"
                flags = {"every_frame": "--every_frame", "fast": f"--fast's: {flags}"}.get(setting, flags)
                rows.append(
                    [
                        size,
                        precision,
                        flags,
                        r["frames"],
                        f"{r['total']:.1f}",
                        f"{r['frames'] / r['total']:.3f}",
                        f"{r['total'] / r['frames']:.2f}",
                        f"{100 * outside / r['total']:.1f} %",
                        f"{r['peak_rss_mb']:.0f}",
                    ]
                )
    rep.table(
        [
            "generator",
            "precision",
            "settings",
            "frames",
            "total s",
            "frames/s",
            "s/frame",
            "outside the networks",
            "peak RSS MB",
        ],
        rows,
    )
    rep.add(harness.finish_line())
    if args.out:
        rep.write(args.out)


if __name__ == "__main__":
    main()
