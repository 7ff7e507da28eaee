"""Pass 1 of `blendgan stylize VIDEO` (decode, find the faces, landmarks) with the detector on every frame and with
`--detect_every 5`, in one run on a 720p clip made from a bundled photo; the tracks compared; and the thumbnail
change between frames that the cut threshold was chosen from.

    python benchmarks/video_detect.py                  # 2 s of 1280 x 720 at 30 fps, 2 runs of each, alternating
    python benchmarks/video_detect.py --quick          # 0.5 s at 480 x 360, one run, nothing written: that it runs

Pass 1 is what `blendgan.jobs.video.detect_segments` does on all segments of the clip in one process (48-frame
segments, the default), then `link_faces` joins the tracks. The runs alternate (1, 5, 1, 5, ...) so that a change
in the machine's load hits both alike; the figure is the median per frame. The landmarks are compared with the
per-frame run's: the mean distance over the 68 points, per frame, against the face's aligned-crop side.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))


def pass_one(aligner, clip, n, every, work):
    import numpy as np

    from blendgan.defaults import MIN_FACE, MIN_SCORE, SEGMENT_FRAMES
    from blendgan.jobs.video import _segments, detect_segments, link_faces

    work.mkdir()
    segments = _segments(0, n, SEGMENT_FRAMES)
    t0 = time.perf_counter()
    detect_segments(aligner, clip, segments, list(range(len(segments))), work, "all", MIN_FACE, MIN_SCORE, every)
    parts = []
    for k in range(len(segments)):
        with np.load(work / f"faces_{k:05d}.npz") as data:
            parts.append({name: data[name] for name in data.files})
    found = link_faces(parts, 0, n, 2.0)
    return time.perf_counter() - t0, found


def thumbnail_changes(clip, cut_clip, cut_at):
    """Largest thumbnail change between consecutive frames of the smooth clip, and the change at the cut."""
    from blendgan import tracking
    from blendgan.io.video import read_video

    smooth = [tracking.thumbnail(f[:, :, ::-1].copy()) for f in read_video(clip)[0]]
    cut = [tracking.thumbnail(f[:, :, ::-1].copy()) for f in read_video(cut_clip)[0]]
    return (
        max(tracking.frame_change(a, b) for a, b in zip(smooth[:-1], smooth[1:])),
        tracking.frame_change(cut[cut_at - 1], cut[cut_at]),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video_detect_cpu.md"))
    parser.add_argument("--quick", action="store_true", help="0.5 s at 480 x 360, one run, nothing written")
    args = parser.parse_args()
    size, fps = (1280, 720), 30
    if args.quick:
        args.seconds, args.runs, args.out, size = 0.5, 1, None, (480, 360)

    import numpy as np

    from blendgan.align import ffhq_quad
    from blendgan.photo import make_aligner

    import harness
    from helpers import make_face_clip

    rep = harness.Report()
    rep.add(f"## Pass 1 of your video: detector on every frame vs `--detect_every {args.every}`")
    rep.add()
    rep.add(f"Command: `python benchmarks/video_detect.py {' '.join(sys.argv[1:])}`")
    rep.add()
    rep.add(harness.machine_line())
    rep.add()
    n = int(round(args.seconds * fps))
    aligner = make_aligner()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_face_clip(tmp / "clip.mp4", seconds=args.seconds, fps=fps, size=size, tone=False)
        times, found = {1: [], args.every: []}, {}
        for run in range(args.runs):
            for every in (1, args.every):
                seconds, found[every] = pass_one(aligner, clip, n, every, tmp / f"work{every}_{run}")
                times[every].append(seconds / n)
        per_frame, followed = found[1], found[args.every]
        side = ffhq_quad(per_frame["landmarks_raw"][0])[1]
        same_frames = np.array_equal(per_frame["frame"], followed["frame"])
        error = (
            np.linalg.norm(per_frame["landmarks_raw"] - followed["landmarks_raw"], axis=2).mean(axis=1)
            if same_frames
            else np.array([np.nan])
        )
        # the per-frame detector's own change from one frame to the next (its second difference: the motion of the
        # clip is smooth, so what is left is the jumps of its boxes and landmarks)
        raw = per_frame["landmarks_raw"]
        jitter = np.linalg.norm(raw[2:] - 2 * raw[1:-1] + raw[:-2], axis=2).mean(axis=1)
        cut_clip = make_face_clip(
            tmp / "cut.mp4", seconds=args.seconds, fps=fps, size=size, tone=False, cut_at=n // 2, cut_shift=(-90, 0)
        )
        smooth_change, cut_change = thumbnail_changes(clip, cut_clip, n // 2)
    t1, tn = statistics.median(times[1]), statistics.median(times[args.every])
    rows = [
        [1, n, f"{t1:.3f}", "1.00x", len(np.unique(per_frame["track"])), "-", "-"],
        [
            args.every,
            n,
            f"{tn:.3f}",
            f"{t1 / tn:.2f}x",
            len(np.unique(followed["track"])),
            f"{np.median(error):.1f} / {error.max():.1f} px" + ("" if same_frames else " (frames differ)"),
            f"{100 * np.median(error) / side:.1f} % / {100 * error.max() / side:.1f} %",
        ],
    ]
    rep.add(f"{n} frames of {size[0]} x {size[1]} at {fps} fps, one face ({side:.0f} px aligned-crop side)")
    rep.add()
    rep.table(
        [
            "detect every",
            "frames",
            "pass 1 s/frame (median)",
            "speed-up",
            "tracks",
            "landmarks vs per-frame: median / max",
            "of the face's side",
        ],
        rows,
    )
    rep.add(f"Landmarks identical to the per-frame run's on {int((error == 0).sum())} of {len(error)} frames.")
    rep.add()
    rep.add(
        f"The per-frame detector's own landmark jumps between consecutive frames (second difference, mean over the "
        f"points): median {np.median(jitter):.1f} px, max {jitter.max():.1f} px."
    )
    rep.add()
    rep.add(
        f"Thumbnail change (32 px wide grey, mean absolute, 0-255) between consecutive frames: at most "
        f"{smooth_change:.2f} on the smooth clip, {cut_change:.2f} at a cut to the face shifted 90 px "
        f"(`tracking.CUT_THRESHOLD` is 16)."
    )
    rep.add()
    rep.add(harness.finish_line())
    if args.out:
        rep.write(args.out)


if __name__ == "__main__":
    main()
