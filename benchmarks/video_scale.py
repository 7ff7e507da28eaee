"""Your video on several processes (issue 32): 1 vs 2 torchrun processes on one clip, one face.

    python benchmarks/video_scale.py                       # a 60 s 720p clip at the 256 px generator
    python benchmarks/video_scale.py --seconds 10 60       # peak RSS per process for two clip lengths
    python benchmarks/video_scale.py --join --seconds 10 60 600    # the final join alone (one process)

For each clip length and process count it runs the video job under `torch.distributed.run` (one thread per
process, random weights of the real shapes: timing does not depend on their values; the face is found by dlib's
real detector in a clip made from a bundled photo) and prints a Markdown row: wall time, speed-up over one
process, the share of the clip's time each process waited for the others (the job's own measure), and the peak
RSS of each process. Run it on a quiet machine: it states the CPU and the load average.

`--join` times the one step the main process does alone, the final join of the segments (`io.video.join_segments`:
a byte copy of the raw H.264 segments and one remux with the clip's audio, no re-encoding), on 720p segments of
48 frames written by the job's own writer, with a short tone as the audio to mux.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def child(args):
    """One process of the run: random models, the video job over `distributed.setup`'s context."""
    import torch

    from blendgan import distributed
    from blendgan.jobs.video import stylize_videos
    from blendgan.models import Generator, PSPEncoder
    from blendgan.models.generator import n_latent_for_size
    from blendgan.photo import make_aligner
    from blendgan.pipeline import BlendGAN

    ctx = distributed.setup("cpu")
    torch.manual_seed(0)
    bg = BlendGAN(Generator(args.size), PSPEncoder(n_latent_for_size(args.size)), device="cpu")
    notes = []

    class Report:
        written = skipped = failed = 0

        def note(self, message):
            notes.append(message)

        def fail(self, path, reason):
            raise SystemExit(f"failed: {path}: {reason}")

    from blendgan.fitting.style_code import save_style_code  # a style code file: no style image to embed

    style = Path(args.out) / "style.safetensors"
    if ctx.is_main:
        save_style_code(
            style,
            torch.randn(1, 512, generator=torch.Generator().manual_seed(1)),
            None,
            {"base_fingerprint": bg.generator.base_fingerprint},
        )
    ctx.barrier()
    started = time.perf_counter()
    stylize_videos(
        bg,
        [args.clip],
        [style],
        args.out,
        Report(),
        aligner=make_aligner(),
        ctx=ctx,
        segment_frames=args.segment_frames,
    )
    seconds = time.perf_counter() - started
    waited = next((n for n in notes if "waited" in n), "")
    print(
        json.dumps(
            {
                "rank": ctx.rank,
                "seconds": seconds,
                "waited": waited,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        ),
        flush=True,
    )
    ctx.close()


def run(clip, nproc, size, segment_frames):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(nproc),
            __file__,
            "--child",
            "--clip",
            str(clip),
            "--out",
            out,
            "--size",
            str(size),
            "--segment_frames",
            str(segment_frames),
        ]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
        wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return wall, sorted(rows, key=lambda r: r["rank"])


def time_join(seconds, segment_frames):
    """(seconds to join, MB joined) for a 720p clip of `seconds` at 30 fps in segments of `segment_frames`."""
    import numpy as np

    from blendgan.io.video import VideoWriter, join_segments

    from helpers import make_face_clip

    fps, n = 30, int(seconds * 30)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio = make_face_clip(tmp / "audio.mp4", seconds=1, fps=fps, size=(64, 64), tone=True)
        frame = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
        parts = []
        for k, lo in enumerate(range(0, n, segment_frames)):
            parts.append(tmp / f"segment_{k:05d}.h264")
            with VideoWriter(parts[-1], 1280, 720, fps=fps, codec="h264") as writer:
                for t in range(lo, min(n, lo + segment_frames)):
                    writer.write(np.roll(frame, 4 * t, axis=1))  # moving texture: real P-frame sizes
        mb = sum(p.stat().st_size for p in parts) / 1e6
        started = time.perf_counter()
        join_segments(parts, tmp / "joined.mp4", fps, audio_from=audio)
        return time.perf_counter() - started, mb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--segment_frames", type=int, default=48)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts (the first is the base)")
    parser.add_argument("--join", action="store_true", help="time the final join alone, per clip length")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    from helpers import make_face_clip

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "")
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    print(f"CPU: {cpu} ({', '.join(simd)}), {os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.2f}")
    print()
    if args.join:
        print("| clip | segments | MB of H.264 | join s |")
        print("| --- | ---: | ---: | ---: |")
        for seconds in args.seconds:
            took, mb = time_join(seconds, args.segment_frames)
            n = -(-int(seconds * 30) // args.segment_frames)
            print(f"| {seconds:g} s 720p | {n} | {mb:.1f} | {took:.2f} |", flush=True)
        return
    print("| clip | processes | wall s | speed-up | waited (per process) | peak RSS MB (per process) |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for seconds in args.seconds:
        with tempfile.TemporaryDirectory() as tmp:
            clip = make_face_clip(Path(tmp) / "clip.mp4", seconds=seconds, fps=30, size=(1280, 720), tone=True)
            one = None
            for nproc in args.procs:
                wall, rows = run(clip, nproc, args.size, args.segment_frames)
                one = one or (wall if nproc == 1 else None)
                speedup = f"{one / wall:.2f}x" if one else "-"
                waited = "; ".join(r["waited"].split(": ", 1)[-1] for r in rows if r["waited"]) or "-"
                rss = ", ".join(f"{r['peak_rss_mb']:.0f}" for r in rows)
                print(f"| {seconds:g} s 720p | {nproc} | {wall:.1f} | {speedup} | {waited} | {rss} |", flush=True)


if __name__ == "__main__":
    main()
