"""`blendgan stylize VIDEO`: every frame, every face stylized and pasted back, stable over time, with its sound.

Two passes, so that what makes a frame-by-frame stylization flicker is fixed before any face is generated:

1. **Faces** (one process): every frame is searched for faces (on a shrunk copy) and their 68 landmarks
   (full resolution); faces are followed from frame to frame (`blendgan.tracking`), and each face's
   landmarks are smoothed over time with a centred Gaussian of ``smooth`` frames. The aligned crop, and
   so the pasted face, then moves with the face instead of with the landmark detector's jitter.
2. **Faces stylized**, split into segments of ``SEGMENT_FRAMES`` frames that processes share out
   (torchrun): (a) every face of a segment is aligned with the smoothed landmarks and encoded; (b) the
   pSp codes of each face are smoothed over time with the same filter (they jump where the crop barely
   moves), the faces are generated with the generator's fixed noise maps and pasted back, and the segment
   is written as H.264. Frames without a face pass through.

Finally one process joins the segments (no re-encoding) and carries over the audio of the same span.
Everything in between lives in a work folder next to the output (`.<name>.work/`): the faces of pass 1,
each segment's codes and each finished segment, all written atomically, so a run killed at any moment
resumes with ``skip_existing`` and gives the uninterrupted run's file. Memory does not grow with the clip:
frames stream through, and a segment needs only its neighbours' codes.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from tqdm import tqdm

from .. import distributed, photo, tracking
from ..align import align_landmarks_placed, ffhq_quad
from ..errors import BlendGANError, UsageError
from ..io import images
from ..io.files import write_bytes_atomic
from ..io.video import VideoWriter, iter_video_frames, join_segments, probe_video
from .common import PathLike, Report, read_styles, split_options
from .options import VideoOptions

if TYPE_CHECKING:
    import torch

    from ..align import FaceAligner
    from ..pipeline import BlendGAN


def _progress(**kwargs):
    return tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)


def _save_npz_atomic(path: Path, **arrays) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def _settings_key(path, info, z_embed, bg, settings) -> str:
    stat = Path(path).stat()
    h = hashlib.sha1(
        json.dumps(
            {
                "video": [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns],
                "info": [info["n_frames"], info["fps"], list(info["size"])],
                "generator": [bg.size, bg.precision],
                **settings,
            },
            sort_keys=True,
            default=str,
        ).encode()
    )
    for z in z_embed if isinstance(z_embed, (list, tuple)) else [z_embed]:
        h.update(np.ascontiguousarray(z.float().cpu().numpy()).tobytes())
    return h.hexdigest()


def find_video_faces(aligner, path, start, stop, which, min_face, min_score, smooth):
    """Pass 1: every face of frames [start, stop) with landmarks raw and smoothed over time, and its track."""
    frames, boxes, landmarks = [], [], []
    per_frame = []
    bar = _progress(total=stop - start, desc="faces", unit="frame")
    for t, rgb in enumerate(iter_video_frames(path, stop)):
        if t < start:
            continue
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        found = [f for f in aligner.detect(bgr) if f.score >= min_score]
        found = [f for f in photo.select_faces(found, which) if ffhq_quad(f.landmarks)[1] >= min_face]
        per_frame.append([f.box for f in found])
        for f in found:
            frames.append(t)
            boxes.append(f.box)
            landmarks.append(np.asarray(f.landmarks, np.float32))
        bar.update(1)
    bar.close()
    ids = [k for frame_ids in tracking.link_tracks(per_frame) for k in frame_ids]
    frames = np.asarray(frames, np.int64)
    tracks = np.asarray(ids, np.int64)
    raw = np.asarray(landmarks, np.float32).reshape(-1, 68, 2)
    smoothed = tracking.smooth_tracks(tracks, frames, raw, smooth) if len(raw) else raw
    return {
        "frame": frames,
        "track": tracks,
        "landmarks_raw": raw,
        "landmarks": smoothed,
        "box": np.asarray(boxes, np.int64).reshape(-1, 4),
    }


def _segments(start, stop, size):
    return [(s, min(s + size, stop)) for s in range(start, stop, size)]


def stylize_video(
    bg: BlendGAN,
    path: PathLike,
    z_embed: torch.Tensor | Sequence[torch.Tensor],
    target: PathLike,
    report: Report,
    options: VideoOptions | None = None,
    *,
    aligner: FaceAligner,
    ctx: distributed.Context | None = None,
    frames_dir: PathLike | None = None,
    **kwargs,
) -> dict | None:
    """Stylize the faces of the video at `path` into `target` (.mp4, H.264 yuv420p, the source's size, frame
    rate and audio). `start`/`end`: seconds of the source to use. Returns a dict of what was measured
    (`flicker`: the mean change between consecutive frames inside the faces, output over input) on the
    main process, None elsewhere. `frames_dir`: also write this video's frames as PNG there. `kwargs`: fields of
    `VideoOptions` (replacing those of `options`) and the stylization controls."""
    options, controls = split_options(VideoOptions, options, kwargs)
    faces, min_face, min_score, smooth = options.faces, options.min_face, options.min_score, options.smooth
    start, end, skip_existing = options.start, options.end, options.skip_existing
    segment_frames = max(1, int(options.segment_frames))
    ctx = ctx or distributed.Context(device=bg.device)
    target = Path(target)
    if frames_dir is not None:
        try:
            Path(frames_dir).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"{frames_dir}: cannot create the frames folder ({err.strerror or err})") from None
    if smooth < 0:
        raise UsageError(f"--smooth {smooth}: use 0 (off) or a positive number of frames")
    info = probe_video(path)
    fps = info["fps"]
    first = max(0, int(round(start * fps)))
    stop = info["n_frames"] if end is None else min(info["n_frames"], int(round(end * fps)))
    if first >= stop:
        raise UsageError(
            f"{path}: --start {start} / --end {end} select no frames (the video has "
            f"{info['n_frames']} frames at {fps:g} fps, {info['duration']:.2f} s)"
        )
    key_parts = {
        "faces": faces,
        "min_face": min_face,
        "min_score": min_score,
        "smooth": smooth,
        "first": first,
        "stop": stop,
        "segment": segment_frames,
        "controls": sorted(controls.items()),
    }
    edit = options.edit if options.edit is not None and options.edit.active else None
    if edit is not None:  # only then: the keys of unedited runs stay as they were
        key_parts["edit"] = edit.key()
    work = target.with_name(f".{target.stem}.work")
    key = _settings_key(path, info, z_embed, bg, key_parts)
    if ctx.is_main:
        settings = work / "settings.json"
        same = skip_existing and settings.is_file() and json.loads(settings.read_text()).get("key") == key
        if not same:
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        if not same:
            write_bytes_atomic(
                settings,
                json.dumps(
                    {"key": key, "source": str(path), **{k: v for k, v in key_parts.items() if k != "controls"}}
                ).encode(),
            )
        if not (work / "faces.npz").is_file():
            _save_npz_atomic(
                work / "faces.npz", **find_video_faces(aligner, path, first, stop, faces, min_face, min_score, smooth)
            )
    ctx.barrier()
    with np.load(work / "faces.npz") as data:
        found = {k: data[k] for k in data.files}
    segments = _segments(first, stop, segment_frames)
    mine = distributed.interleave(range(len(segments)), ctx.rank, ctx.world_size)
    _encode_segments(bg, path, found, segments, [k for k in mine if not (work / f"codes_{k:05d}.npz").is_file()], work)
    ctx.barrier()
    stats = _render_segments(
        bg, path, found, segments, mine, work, z_embed, smooth, fps, info["size"], frames_dir, controls, edit
    )
    ctx.barrier()
    if not ctx.is_main:
        return None
    parts = [json.loads((work / f"segment_{k:05d}.json").read_text()) for k in range(len(segments))]
    join_segments(
        [work / f"segment_{k:05d}.h264" for k in range(len(segments))],
        target,
        fps,
        audio_from=path if info["audio"] else None,
        audio_start=first / fps,
        audio_duration=(stop - first) / fps,
    )
    shutil.rmtree(work, ignore_errors=True)
    out_change = sum(p["out_change"] for p in parts)
    in_change = sum(p["in_change"] for p in parts)
    n_face_frames = len(np.unique(found["frame"]))
    measured = {
        "frames": stop - first,
        "frames_with_faces": int(n_face_frames),
        "tracks": len(np.unique(found["track"])),
        "flicker": out_change / in_change if in_change > 0 else float("nan"),
        "stats": stats,
    }
    report.note(
        f"{path}: {stop - first} frames, {n_face_frames} with faces, {measured['tracks']} face track(s); "
        f"flicker {measured['flicker']:.3f} (change between frames inside the faces, output / input)"
    )
    if n_face_frames == 0:
        report.note(f"{path}: no face found in any frame; the video was passed through unchanged")
    return measured


def _entries_of(found, lo, hi):
    return np.nonzero((found["frame"] >= lo) & (found["frame"] < hi))[0]


def _encode_segments(bg, path, found, segments, todo, work):
    """Pass 2a: align every face of the segments `todo` with its smoothed landmarks and encode it."""
    if not todo:
        return
    todo = sorted(todo)
    bar = _progress(total=sum(segments[k][1] - segments[k][0] for k in todo), desc="encode", unit="frame")
    by_frame = {}
    for k in todo:
        for e in _entries_of(found, *segments[k]):
            by_frame.setdefault(int(found["frame"][e]), []).append(int(e))
    results = {}
    last = segments[todo[-1]][1]
    pending = list(todo)
    for t, rgb in enumerate(iter_video_frames(path, last)):
        if not any(lo <= t < hi for lo, hi in (segments[k] for k in pending)):
            continue
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        for e in by_frame.get(t, []):
            aligned, placement = align_landmarks_placed(bgr, found["landmarks"][e], photo.ALIGN_SIZE, photo.ALIGN_SIZE)
            crop = aligned if aligned.shape[0] == bg.size else images.resize_square(aligned, bg.size)
            results[e] = (bg.encode_face_bgr(crop)[0].float().cpu().numpy(), placement)
        bar.update(1)
        lo, hi = segments[pending[0]]
        if t == hi - 1:  # the segment is complete: write it and forget its crops' codes
            entries = _entries_of(found, lo, hi)
            n_latent = bg.n_latent
            _save_npz_atomic(
                work / f"codes_{pending[0]:05d}.npz",
                entry=entries,
                codes=np.stack([results[e][0] for e in entries])
                if len(entries)
                else np.zeros((0, n_latent, 512), np.float32),
                corners=np.stack([results[e][1].corners for e in entries]) if len(entries) else np.zeros((0, 4, 2)),
                content=np.array([results[e][1].content for e in entries]).reshape(-1, 4),
            )
            for e in entries:
                results.pop(e, None)
            bg.clear_caches()  # the codes are on disk; the pipeline's cache would grow with the clip
            pending.pop(0)
            if not pending:
                break
    bar.close()


def _load_codes(work, segments, k, reach):
    """Entries, codes, corners, content of segment k and of the segments within `reach` frames of it."""
    lo, hi = segments[k]
    parts = [j for j in range(len(segments)) if segments[j][1] > lo - reach and segments[j][0] < hi + reach]
    loaded = []
    for j in parts:
        with np.load(work / f"codes_{j:05d}.npz") as data:
            loaded.append({name: data[name] for name in data.files})
    return {name: np.concatenate([d[name] for d in loaded]) for name in loaded[0]}


def _render_segments(bg, path, found, segments, mine, work, z_embed, smooth, fps, size, frames_dir, controls, edit):
    """Pass 2b: smooth the codes over time, generate, paste back and write each of this process' segments.
    `edit` (or None) moves every face's smoothed codes the same way in every frame."""
    import torch

    from ..align import CropPlacement

    todo = [
        k
        for k in mine
        if not ((work / f"segment_{k:05d}.h264").is_file() and (work / f"segment_{k:05d}.json").is_file())
    ]
    if not todo:
        return {}
    reach = int(math.ceil(3 * smooth)) + 1
    width, height = size
    bar = _progress(total=sum(segments[k][1] - segments[k][0] for k in todo), desc="stylize", unit="frame")
    frames = iter_video_frames(path, segments[todo[-1]][1])
    t = -1
    for k in todo:
        lo, hi = segments[k]
        near = _load_codes(work, segments, k, reach)
        entries = near["entry"]
        codes = tracking.smooth_tracks(found["track"][entries], found["frame"][entries], near["codes"], smooth)
        row = {int(e): i for i, e in enumerate(entries)}
        out_change = in_change = 0.0
        prev_in = prev_out = None
        with VideoWriter(work / f"segment_{k:05d}.h264", width, height, fps=fps, codec="h264") as writer:
            while t < hi - 1:
                t += 1
                rgb = next(frames)
                if t < lo:
                    continue
                bgr = np.ascontiguousarray(rgb[:, :, ::-1])
                records = []
                for e in _entries_of(found, t, t + 1):
                    i = row[int(e)]
                    placement = CropPlacement(near["corners"][i], tuple(near["content"][i]), (width, height))
                    records.append(
                        photo.PhotoFace(
                            None,
                            placement,
                            mask=photo.head_mask(
                                photo.landmarks_in_crop(found["landmarks"][e], placement, photo.MASK_SIZE)
                            ),
                            extra={"codes": codes[i]},
                        )
                    )
                result = bgr
                if records:
                    batch = torch.from_numpy(np.stack([r.extra["codes"] for r in records]))
                    if edit is not None:
                        batch = edit(batch)
                    for r, face in zip(records, images.tensors_to_bgr(bg.stylize(batch, z_embed, **controls))):
                        r.stylized = face
                    result = photo.composite(bgr, records)
                    weight = np.zeros((height, width), bool)
                    for r in records:
                        got = photo.photo_mask(r.mask, r.placement)
                        if got is not None:
                            (x0, y0, x1, y1), w = got
                            weight[y0:y1, x0:x1] |= w > 0
                    if prev_in is not None and weight.any():
                        out_change += float(np.abs(result.astype(np.int16) - prev_out)[weight].mean())
                        in_change += float(np.abs(bgr.astype(np.int16) - prev_in)[weight].mean())
                prev_in, prev_out = bgr.astype(np.int16), result.astype(np.int16)
                writer.write(np.ascontiguousarray(result[:, :, ::-1]))
                if frames_dir is not None:
                    images.write_image_atomic(Path(frames_dir) / f"{t:06d}.png", result)
                bar.update(1)
            # the numbers first: a segment counts as done once its video is there too
            write_bytes_atomic(
                work / f"segment_{k:05d}.json", json.dumps({"out_change": out_change, "in_change": in_change}).encode()
            )
    bar.close()
    frames.close()
    return {}


def stylize_videos(
    bg: BlendGAN,
    videos: Sequence[Path],
    style_img: Sequence[PathLike],
    outdir: PathLike,
    report: Report,
    options: VideoOptions | None = None,
    *,
    aligner: FaceAligner,
    ctx: distributed.Context | None = None,
    **kwargs,
) -> None:
    """`{video}_v_{style}.mp4` for each video (`stylize_video`); `style_img`: one artwork or several mixed with
    the `style_weights` control (the name then joins their stems with '+'). A video that fails is reported and
    the next one goes on; a user error (bad flags) stops the run. `kwargs` as in `stylize_video`."""
    options, controls = split_options(VideoOptions, options, kwargs)
    z_embed, style_stem = read_styles(bg, style_img)
    for path in videos:
        path = Path(path)
        target = Path(outdir) / f"{path.stem}_v_{style_stem}.mp4"
        if options.skip_existing and target.exists():
            report.skipped += 1
            continue
        frames_dir = Path(options.frames_dir) / path.stem if options.frames_dir else None
        try:
            stylize_video(
                bg, path, z_embed, target, report, options, aligner=aligner, ctx=ctx, frames_dir=frames_dir, **controls
            )
        except BlendGANError as err:
            if isinstance(err, UsageError):
                raise
            report.fail(path, err)
            continue
        report.written += 1
