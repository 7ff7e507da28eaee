"""`blendgan stylize VIDEO`: every frame, every face stylized and pasted back, stable over time, with its sound.

Two passes, so that what makes a frame-by-frame stylization flicker is fixed before any face is generated. The
clip is cut into segments of ``segment_frames`` frames that the processes share out round-robin (torchrun);
every step below works on this process's segments only:

1. **Faces**: every frame of a segment is searched for faces (on a shrunk copy) and their 68 landmarks (full
   resolution), written as the segment's part; with ``detect_every`` N > 1 only some frames are searched and
   the faces of the others are followed with the landmark model (`tracking.FaceFollower`). Once every part is
   there, each process joins them and follows the faces from frame to frame (`blendgan.tracking`, the same
   result on every process); a frame a track missed (up to ``tracking.MAX_GAP`` frames) gets the landmarks
   interpolated along the track, so its face stays stylized; each face's landmarks are smoothed over time with
   a centred Gaussian of ``smooth`` frames.
2. **Faces stylized**: (a) every face of a segment is aligned with the smoothed landmarks and encoded; (b)
   once the neighbouring segments' codes are there, the pSp codes of each face are smoothed over time with the
   same filter, the faces are generated with the generator's fixed noise maps and pasted back (fading in over
   ``tracking.FADE_FRAMES`` frames where a face appears and out where it leaves), and the segment is written
   as H.264. Frames without a face pass through (re-encoded).

Finally the main process joins the segments (no re-encoding) and carries over the audio of the same span.

Processes wait for each other's parts by watching the work folder next to the output (`.<name>.work/`), not
in a collective: the only collective of a clip is the barrier after the main process has prepared that folder,
so no process-group timeout can fire while another process works through a long clip. A failure on one
process (an unreadable frame, a full disk) is written to the work folder as one line; every process that is
waiting reads it and reports the same line for that clip, and all go on to the next input. Everything in the
work folder is written atomically, so a run killed at any moment resumes with ``skip_existing`` and gives the
uninterrupted run's file. Memory does not grow with the clip beyond the faces' landmarks: frames stream
through, and a segment needs only its neighbours' codes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .. import distributed, photo, tracking
from ..align import align_landmarks_placed, crop_placement, ffhq_quad
from ..errors import BlendGANError, UsageError
from ..io import images
from ..io.files import write_bytes_atomic
from ..io.video import VideoWriter, check_x264_preset, iter_video_frames, join_segments, probe_video
from .common import PathLike, Report, edited_codes, generator_resolution, output_stems, read_styles, split_options
from .options import VideoOptions

if TYPE_CHECKING:
    import torch

    from ..align import FaceAligner
    from ..pipeline import BlendGAN


def _progress(**kwargs):
    return tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)


def _swap_red_blue(frame: np.ndarray) -> np.ndarray:
    """RGB to BGR or back, as a new contiguous array: the same bytes as numpy's reversed-channel copy, an
    element-by-element strided copy where OpenCV's swap is vectorised (docs/speed.md, figures behind comments)."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def _save_npz_atomic(path: Path, **arrays) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


#: how often a process looks at the work folder while it waits for another's part
POLL_SECONDS = 0.2
#: test hook: "RANK:SECONDS" makes that rank sleep in its part of pass 1 (a slow process, on purpose)
SLOW_PASS1_ENV = "BLENDGAN_TEST_SLOW_PASS1"
#: test hook: "RANK:SEGMENT" makes that rank fail while it encodes that segment (a failure on one process)
FAIL_SEGMENT_ENV = "BLENDGAN_TEST_FAIL_SEGMENT"


class VideoFailed(BlendGANError):
    """This clip failed on some process (the same one line on every process); the next input goes on."""


def _settings_key(path, info, z_embed, bg, settings) -> str:
    """What the pixels of the output depend on: the source (path, size, mtime), the models' weights (adapters
    merged) and precision, the style codes, the controls and the job's settings."""
    stat = Path(path).stat()
    h = hashlib.sha1(
        json.dumps(
            {
                "video": [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns],
                "info": [info["n_frames"], info["fps"], list(info["size"])],
                "generator": [bg.size, bg.precision, bg.weights_id],
                **settings,
            },
            sort_keys=True,
            default=str,
        ).encode()
    )
    for z in z_embed if isinstance(z_embed, (list, tuple)) else [z_embed]:
        h.update(np.ascontiguousarray(z.float().cpu().numpy()).tobytes())
    return h.hexdigest()


def detect_segments(aligner, path, segments, todo, work, which, min_face, min_score, detect_every=1) -> None:
    """Pass 1 on the segments `todo`, in one decoding of the clip: every face kept (score, size, which) with its
    frame, box and raw landmarks, written as `faces_<k>.npz` as soon as segment k is complete. `detect_every` N
    > 1: the detector runs only where `tracking.FaceFollower` needs it; the other frames' faces are followed with
    the landmark model from the boxes of their last detection."""
    if not todo:
        return
    todo = sorted(todo)
    part = None

    def detect(bgr):
        found = [f for f in aligner.detect(bgr) if f.score >= min_score]
        return [f for f in photo.select_faces(found, which) if ffhq_quad(f.landmarks)[1] >= min_face]

    def keep(landmarks):
        return ffhq_quad(landmarks)[1] >= min_face

    with contextlib.closing(iter_video_frames(path, segments[todo[-1]][1])) as decoded:  # closed on errors too
        for t, rgb in enumerate(decoded):
            lo, hi = segments[todo[0]]
            if t < lo:
                continue
            if part is None:
                part = {"frame": [], "box": [], "landmarks": [], "count": []}
                follower = tracking.FaceFollower(detect_every)  # each segment on its own: any process can do it
            bgr = _swap_red_blue(rgb)
            found = follower.step(bgr, detect, aligner.landmarks_at, keep)
            part["count"].append(len(found))
            for box, landmarks in found:
                part["frame"].append(t)
                part["box"].append(box)
                part["landmarks"].append(np.asarray(landmarks, np.float32))
            if t == hi - 1:  # the segment is complete
                _save_npz_atomic(
                    work / f"faces_{todo[0]:05d}.npz",
                    frame=np.asarray(part["frame"], np.int64),
                    box=np.asarray(part["box"], np.int64).reshape(-1, 4),
                    landmarks=np.asarray(part["landmarks"], np.float32).reshape(-1, 68, 2),
                    count=np.asarray(part["count"], np.int64),
                )
                part = None
                todo.pop(0)
                if not todo:
                    return
    raise BlendGANError(f"{path}: ends before frame {segments[todo[0]][1]}, which its header announced")


def link_faces(parts: list[dict], first: int, stop: int, smooth: float, encode_every: int = 1) -> dict:
    """Tracks over the whole span from the segments' detections (in order): faces linked from frame to frame,
    the frames a track missed filled by interpolation (`interpolated` marks them), landmarks smoothed over time
    per track, and each entry's fade weight (`tracking.fade_weights`)."""
    frames = np.concatenate([p["frame"] for p in parts]) if parts else np.zeros(0, np.int64)
    boxes = np.concatenate([p["box"] for p in parts]) if parts else np.zeros((0, 4), np.int64)
    raw = np.concatenate([p["landmarks"] for p in parts]) if parts else np.zeros((0, 68, 2), np.float32)
    per_frame, i = [], 0
    for count in np.concatenate([p["count"] for p in parts]) if parts else []:
        per_frame.append([tuple(b) for b in boxes[i : i + count]])
        i += int(count)
    tracks = np.asarray([k for ids in tracking.link_tracks(per_frame) for k in ids], np.int64)
    gap_frames, gap_tracks, gap_values = tracking.fill_gaps(
        frames, tracks, np.concatenate([raw.reshape(len(raw), 68 * 2), boxes.astype(np.float32)], axis=1)
    )
    interpolated = np.concatenate([np.zeros(len(frames), bool), np.ones(len(gap_frames), bool)])
    frames = np.concatenate([frames, gap_frames])
    tracks = np.concatenate([tracks, gap_tracks])
    raw = np.concatenate([raw, gap_values[:, : 68 * 2].reshape(-1, 68, 2)])
    boxes = np.concatenate([boxes, np.rint(gap_values[:, 68 * 2 :]).astype(np.int64)])
    order = np.lexsort((tracks, frames))  # frame order, then track, so each frame's entries are together
    frames, tracks, raw, boxes, interpolated = (a[order] for a in (frames, tracks, raw, boxes, interpolated))
    smoothed = tracking.smooth_tracks(tracks, frames, raw, smooth) if len(raw) else raw
    return {
        "frame": frames,
        "track": tracks,
        "landmarks_raw": raw,
        "landmarks": smoothed,
        "box": boxes,
        "interpolated": interpolated,
        "fade": tracking.fade_weights(frames, tracks, first, stop),
        "key": tracking.keyframes(frames, tracks, encode_every),
    }


class _Waiting:
    """One process's waits for the others' parts of a clip, by watching the clip's work folder (never in a
    collective), with the seconds it spent waiting and since it started the clip (the share it idled)."""

    def __init__(self, work: Path):
        self.work, self.waited, self.started = work, 0.0, time.perf_counter()

    def _until(self, done) -> None:
        """Poll until `done()`; raise `VideoFailed` with the reason once a process recorded a failure."""
        started = time.perf_counter()
        try:
            while not done():
                failure = self.work / "failed.txt"
                if failure.is_file():
                    raise VideoFailed(failure.read_text().strip())
                time.sleep(POLL_SECONDS)
        finally:
            self.waited += time.perf_counter() - started

    def for_files(self, paths: Sequence[Path]) -> None:
        """Return once every path exists."""
        pending = [Path(p) for p in paths]

        def present():
            pending[:] = [p for p in pending if not p.is_file()]
            return not pending

        self._until(present)

    def until_joined(self) -> None:
        """Return once the main process has joined the clip (it then removes the work folder)."""
        self._until(lambda: not self.work.exists())

    def note(self, report, path, ctx) -> float:
        """The clip's seconds on this process so far; with several processes, one note of the share it waited."""
        seconds = time.perf_counter() - self.started
        if ctx.distributed:
            share = self.waited / seconds if seconds > 0 else 0.0
            report.note(
                f"{path}: process {ctx.rank} waited {self.waited:.1f} s of {seconds:.1f} s ({share:.0%}) for the others"
            )
        return seconds


def _record_failure(work: Path, err: BaseException) -> None:
    """Tell the other processes, through the work folder, that this clip failed and why (one line)."""
    import contextlib

    if work.is_dir() and not (work / "failed.txt").is_file():
        with contextlib.suppress(OSError, BlendGANError):
            write_bytes_atomic(work / "failed.txt", (str(err).splitlines() or ["failed"])[0].encode())


def _test_hook(env: str, rank: int) -> float | None:
    """The value of a test hook `RANK:VALUE` for this rank, else None (never set outside the tests)."""
    import os

    spec = os.environ.get(env, "")
    who, _, value = spec.partition(":")
    return float(value) if who and value and int(who) == rank else None


def _segments(start, stop, size):
    return [(s, min(s + size, stop)) for s in range(start, stop, size)]


def _codes_reach(smooth: float, key_spacing: int) -> int:
    """Frames around a segment whose codes its rendering reads: the smoothing's 3 sigma, plus the distance to the
    encoded faces on either side when only some faces are encoded (`key_spacing` 1: every face is)."""
    return int(math.ceil(3 * smooth)) + 1 + max(0, int(key_spacing) - 1)


def _key_spacing(found) -> int:
    """The largest distance in frames between consecutive encoded faces of a track (1 when every face is)."""
    spacing = 1
    for k in np.unique(found["track"]):
        frames = np.sort(found["frame"][(found["track"] == k) & found["key"]])
        if len(frames) > 1:
            spacing = max(spacing, int(np.diff(frames).max()))
    return spacing


def _near_segments(segments, k, reach):
    """Segment k and those within `reach` frames of it: the codes that smoothing segment k reads."""
    lo, hi = segments[k]
    return [j for j in range(len(segments)) if segments[j][1] > lo - reach and segments[j][0] < hi + reach]


def _prepare_work(work: Path, key: str, skip_existing: bool, settings: dict) -> None:
    """The clip's work folder, kept when resuming the same settings, else made anew with its settings file."""
    path = work / "settings.json"
    same = skip_existing and path.is_file() and json.loads(path.read_text()).get("key") == key
    if same:
        (work / "failed.txt").unlink(missing_ok=True)  # a resumed run tries again what failed
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, json.dumps({"key": key, **settings}, default=str).encode())


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
    encode_every = int(options.encode_every)
    if encode_every < 1:
        raise UsageError(f"--encode_every {options.encode_every}: use 1 (every face) or more")
    detect_every = int(options.detect_every)
    if detect_every < 1:
        raise UsageError(f"--detect_every {options.detect_every}: use 1 (every frame) or more")
    check_x264_preset(options.x264_preset)  # before pass 1, not when the first segment is written
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
        raise VideoFailed(
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
        **({"encode_every": encode_every} if encode_every != 1 else {}),  # 1: today's key, today's work folder
        **({"detect_every": detect_every} if detect_every != 1 else {}),  # the same
        **({"max_resolution": options.max_resolution} if options.max_resolution is not None else {}),
        **({"x264_preset": options.x264_preset} if options.x264_preset != "medium" else {}),  # the same
    }
    edit = options.edit if options.edit is not None and options.edit.active else None
    if edit is not None:  # only then: the keys of unedited runs stay as they were
        key_parts["edit"] = edit.key()
    work = target.with_name(f".{target.stem}.work")
    key = _settings_key(path, info, z_embed, bg, key_parts)
    if ctx.is_main:
        _prepare_work(work, key, skip_existing, {"source": str(path), **key_parts})
    ctx.barrier()  # the clip's one collective: it waits only for the folder above, never for the clip's work
    waiting = _Waiting(work)
    segments = _segments(first, stop, segment_frames)
    mine = distributed.interleave(range(len(segments)), ctx.rank, ctx.world_size)
    try:
        # pass 1, this process's segments; then everyone's, joined into tracks (the same on every process)
        slow = _test_hook(SLOW_PASS1_ENV, ctx.rank)
        if slow:
            time.sleep(slow)
        todo = [k for k in mine if not (work / f"faces_{k:05d}.npz").is_file()]
        detect_segments(aligner, path, segments, todo, work, faces, min_face, min_score, detect_every)
        waiting.for_files([work / f"faces_{k:05d}.npz" for k in range(len(segments))])
        parts = []
        for k in range(len(segments)):
            with np.load(work / f"faces_{k:05d}.npz") as data:
                parts.append({name: data[name] for name in data.files})
        found = link_faces(parts, first, stop, smooth, encode_every)
        del parts
        # pass 2: encode this process's segments, then render them once their neighbours' codes are there
        todo = [k for k in mine if not (work / f"codes_{k:05d}.npz").is_file()]
        _encode_segments(bg, path, found, segments, todo, work, _test_hook(FAIL_SEGMENT_ENV, ctx.rank))
        reach = _codes_reach(smooth, _key_spacing(found))
        near = {j for k in mine for j in _near_segments(segments, k, reach)}
        waiting.for_files([work / f"codes_{j:05d}.npz" for j in sorted(near)])
        stats = _render_segments(
            bg, path, found, segments, mine, work, z_embed, reach, info, frames_dir, controls, options, edit
        )
        if not ctx.is_main:
            waiting.until_joined()  # the main process's join, watched here rather than in a collective
            waiting.note(report, path, ctx)
            return None
        waiting.for_files([work / f"segment_{k:05d}.{ext}" for k in range(len(segments)) for ext in ("h264", "json")])
        parts = [json.loads((work / f"segment_{k:05d}.json").read_text()) for k in range(len(segments))]
        join_segments(
            [work / f"segment_{k:05d}.h264" for k in range(len(segments))],
            target,
            fps,
            audio_from=path if info["audio"] else None,
            audio_start=first / fps,
            audio_duration=(stop - first) / fps,
        )
        if edit is not None:
            _note_edit_identity(bg, path, found, segments, work, edit, report)
    except VideoFailed:
        raise
    except BlendGANError as err:
        _record_failure(work, err)
        if isinstance(err, UsageError):
            raise
        raise VideoFailed(str(err)) from None
    except OSError as err:  # a full disk, a folder removed under us: this clip's failure, in one line
        failure = VideoFailed(f"{path}: {err.strerror or err}" + (f" ({err.filename})" if err.filename else ""))
        _record_failure(work, failure)
        raise failure from None
    shutil.rmtree(work, ignore_errors=True)
    seconds = waiting.note(report, path, ctx)
    out_change = sum(p["out_change"] for p in parts)
    in_change = sum(p["in_change"] for p in parts)
    n_face_frames = len(np.unique(found["frame"]))
    n_filled = int(found["interpolated"].sum())
    measured = {
        "frames": stop - first,
        "frames_with_faces": int(n_face_frames),
        "tracks": len(np.unique(found["track"])),
        "interpolated": n_filled,
        "flicker": out_change / in_change if in_change > 0 else float("nan"),
        "stats": stats,
        "seconds": seconds,
        "waited_seconds": waiting.waited,
    }
    report.note(
        f"{path}: {stop - first} frames, {n_face_frames} with faces ({n_filled} face(s) missed by the detector "
        f"filled in along their track), {measured['tracks']} face track(s); "
        f"flicker {measured['flicker']:.3f} (change between frames inside the faces, output / input)"
    )
    if n_face_frames == 0:
        report.note(f"{path}: no face found in any frame; its frames were re-encoded unchanged, with the sound")
    return measured


def _note_edit_identity(bg, path, found, segments, work, edit, report):
    """The photos' identity note (`edited_codes`: dlib descriptors of the unedited and the edited face,
    unstylized) for the first encoded face of each track, once per clip (the same move is in every frame)."""
    import torch

    keys = np.nonzero(found["key"])[0]
    for track in np.unique(found["track"][keys]):
        entries = keys[found["track"][keys] == track]
        e = int(entries[np.argmin(found["frame"][entries])])
        frame = int(found["frame"][e])
        k = next(j for j, (lo, hi) in enumerate(segments) if lo <= frame < hi)
        with np.load(work / f"codes_{k:05d}.npz") as data:
            codes = data["codes"][int(np.nonzero(data["entry"] == e)[0][0])]
        name = f"{Path(path).name} track {int(track)} (frame {frame})"
        edited_codes(bg, torch.from_numpy(codes)[None], edit, name, report)


def _entries_of(found, lo, hi):
    return np.nonzero((found["frame"] >= lo) & (found["frame"] < hi))[0]


def _encode_segments(bg, path, found, segments, todo, work, fail_at=None):
    """Pass 2a: align every face of the segments `todo` with its smoothed landmarks and encode it. `fail_at`: a
    segment at which to fail on purpose (the tests' hook for a failure on one process)."""
    if not todo:
        return
    if fail_at is not None and int(fail_at) in todo:
        raise BlendGANError(f"{path}: a failure injected for the tests while encoding segment {int(fail_at)}")
    todo = sorted(todo)
    bar = _progress(total=sum(segments[k][1] - segments[k][0] for k in todo), desc="encode", unit="frame")
    by_frame = {}
    for k in todo:
        for e in _entries_of(found, *segments[k]):
            by_frame.setdefault(int(found["frame"][e]), []).append(int(e))
    results = {}
    last = segments[todo[-1]][1]
    pending = list(todo)
    with contextlib.closing(iter_video_frames(path, last)) as decoded:  # the ffmpeg reader, also on errors
        for t, rgb in enumerate(decoded):
            if not any(lo <= t < hi for lo, hi in (segments[k] for k in pending)):
                continue
            bgr = None  # made for the first face that is encoded
            for e in by_frame.get(t, []):
                if not found["key"][e]:  # filled in from the track's encoded faces when it is rendered: its
                    # crop is never looked at, only where it lies (the same placement, without the warp)
                    placement = crop_placement((rgb.shape[1], rgb.shape[0]), found["landmarks"][e], photo.ALIGN_SIZE)
                    results[e] = (np.full((bg.n_latent, 512), np.nan, np.float32), placement)
                    continue
                bgr = _swap_red_blue(rgb) if bgr is None else bgr
                aligned, placement = align_landmarks_placed(
                    bgr, found["landmarks"][e], photo.ALIGN_SIZE, photo.ALIGN_SIZE
                )
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
    parts = _near_segments(segments, k, reach)
    loaded = []
    for j in parts:
        with np.load(work / f"codes_{j:05d}.npz") as data:
            loaded.append({name: data[name] for name in data.files})
    return {name: np.concatenate([d[name] for d in loaded]) for name in loaded[0]}


def _render_segments(bg, path, found, segments, mine, work, z_embed, reach, info, frames_dir, controls, options, edit):
    """Pass 2b: smooth the codes over time, generate, paste back and write each of this process' segments, with
    the clip's `info` (`probe_video`) and the job's `options` (smoothing, generator size, x264 preset).
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
    width, height = info["size"]
    smooth, fps, max_resolution = options.smooth, info["fps"], options.max_resolution
    bar = _progress(total=sum(segments[k][1] - segments[k][0] for k in todo), desc="stylize", unit="frame")
    frames = iter_video_frames(path, segments[todo[-1]][1])
    try:  # the decoder (an ffmpeg process) is closed also when a segment fails
        t = -1
        for k in todo:
            lo, hi = segments[k]
            near = _load_codes(work, segments, k, reach)
            entries = near["entry"]
            codes = near["codes"]
            if not found["key"][entries].all():  # faces between encoded ones: interpolated along their track
                frames_k, tracks_k = found["frame"][entries], found["track"][entries]
                codes = tracking.fill_between_keys(frames_k, tracks_k, codes, found["key"][entries])
            codes = tracking.smooth_tracks(found["track"][entries], found["frame"][entries], codes, smooth)
            row = {int(e): i for i, e in enumerate(entries)}
            out_change = in_change = 0.0
            prev_in = prev_out = None
            segment = work / f"segment_{k:05d}.h264"
            with VideoWriter(segment, width, height, fps=fps, codec="h264", preset=options.x264_preset) as writer:
                while t < hi - 1:
                    t += 1
                    rgb = next(frames)
                    if t < lo:
                        continue
                    bgr = _swap_red_blue(rgb)
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
                                )
                                * np.float32(found["fade"][e]),
                                extra={"codes": codes[i]},
                            )
                        )
                    result = bgr
                    if records:
                        batch = torch.from_numpy(np.stack([r.extra["codes"] for r in records]))
                        if edit is not None:
                            batch = edit(batch)
                        resolution = generator_resolution(max_resolution, records, bg.size)
                        extra = {} if resolution is None else {"max_resolution": resolution}
                        drawn = bg.stylize(batch, z_embed, **controls, **extra)
                        for r, face in zip(records, images.tensors_to_bgr(drawn)):
                            r.stylized = face
                        result = photo.composite(bgr, records)
                        if prev_in is not None:
                            changes = _change_inside_faces(records, (prev_in, bgr), (prev_out, result))
                            if changes is not None:
                                in_change += changes[0]
                                out_change += changes[1]
                    prev_in, prev_out = bgr, result  # fresh arrays every frame, never written to afterwards
                    writer.write(_swap_red_blue(result))
                    if frames_dir is not None:
                        images.write_image_atomic(Path(frames_dir) / f"{t:06d}.png", result)
                    bar.update(1)
                # the numbers first: a segment counts as done once its video is there too
                write_bytes_atomic(
                    work / f"segment_{k:05d}.json",
                    json.dumps({"out_change": out_change, "in_change": in_change}).encode(),
                )
    finally:
        frames.close()
        bar.close()
    return {}


def _change_inside_faces(records, *pairs):
    """For each (previous, current) pair of frames, the mean absolute change over the pixels that the faces'
    paste-back masks touch; None where they touch none. The same number as numpy's mean over those pixels of the
    whole frame, which it replaced: every partial sum of these integers is exact in float64, so neither where
    nor in what order they are added changes it; OpenCV adds them inside the masks' box at a fraction of the
    cost of numpy's boolean indexing."""
    boxes = []
    for r in records:
        got = photo.photo_mask(r.mask, r.placement)
        if got is not None:
            boxes.append(got)
    if not boxes:
        return None
    left, top = min(b[0][0] for b in boxes), min(b[0][1] for b in boxes)
    right, bottom = max(b[0][2] for b in boxes), max(b[0][3] for b in boxes)
    weight = np.zeros((bottom - top, right - left), np.uint8)
    for (x0, y0, x1, y1), w in boxes:
        weight[y0 - top : y1 - top, x0 - left : x1 - left] |= w > 0
    count = cv2.countNonZero(weight)
    if count == 0:
        return None
    region = (slice(top, bottom), slice(left, right))
    changes = []
    for before, now in pairs:
        diff = cv2.absdiff(now[region], before[region])
        diff = cv2.bitwise_and(diff, diff, mask=weight)
        changes.append(float(sum(cv2.sumElems(diff)[: diff.shape[2]]) / (diff.shape[2] * count)))
    return changes


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
    counts = ctx is None or ctx.is_main  # every process works on every clip; the main one counts the outcomes
    for path, stem in zip(videos, output_stems(videos, keep_suffix=False)):
        path = Path(path)
        target = Path(outdir) / f"{stem}_v_{style_stem}.mp4"
        if options.skip_existing and target.exists():
            report.skipped += counts
            continue
        frames_dir = Path(options.frames_dir) / stem if options.frames_dir else None
        try:
            stylize_video(
                bg, path, z_embed, target, report, options, aligner=aligner, ctx=ctx, frames_dir=frames_dir, **controls
            )
        except BlendGANError as err:
            if isinstance(err, UsageError):
                raise
            if counts:
                report.fail(path, err)
            else:  # the same line on every process; the main process counts it
                message = str(err)
                report.note(f"failed: {message if message.startswith(str(path)) else f'{path}: {message}'}")
            continue
        report.written += counts
