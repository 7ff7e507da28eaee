"""`blendgan video` (the original gen_video.py): one video per face morphing through 8 randomly chosen styles,
`{face}.mp4` = [face | sliding style panels | stylized], 227 frames at 30 fps."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from ..defaults import VIDEO_ADD_WEIGHT_INDEX, VIDEO_FPS
from ..errors import BlendGANError
from ..io import images
from .common import Aligner, PathLike, Report, chunks, progress, read_face, split_options
from .options import MorphVideoOptions

if TYPE_CHECKING:
    import torch

    from ..pipeline import BlendGAN

VIDEO_STYLES_PER_FACE = 8
VIDEO_HOLD_FRAMES = 10


def video_alphas() -> list[float]:
    """gen_video's 31 blend factors: 0, sigmoid(-5.0 ... 4.5 step 0.5), then ten 1s."""
    return [0.0] + [float(1.0 / (1.0 + np.exp(-a))) for a in np.arange(-5, 5, 0.5)] + [1.0] * 10


def video_frames(
    bg: BlendGAN,
    face_bgr: np.ndarray,
    style_bgrs: Sequence[np.ndarray],
    add_weight_index: int = VIDEO_ADD_WEIGHT_INDEX,
    *,
    edit: Callable[[torch.Tensor], torch.Tensor] | None = None,
    **controls,
) -> Iterator[np.ndarray]:
    """gen_video's frames (H x 3W x 3 uint8 RGB) for one face and its chosen styles, streamed.

    `controls`: `space` and the controls of `BlendGAN.interpolate` (defaults: the original frames). `edit`
    (a `blendgan.editing.apply.Edits`, or None) moves the face's codes before it is stylized.

    `face_bgr` and `style_bgrs` are already resized to size x size; they are encoded as such."""
    size = bg.size
    face_panel = images.tensor_to_video_frame_rgb(images.bgr_to_tensor(face_bgr))
    style_panels = [images.tensor_to_video_frame_rgb(images.bgr_to_tensor(s)) for s in style_bgrs]
    zs = [bg.embed_style_bgr(s) for s in style_bgrs]
    codes = bg.encode_face_bgr(face_bgr)
    if edit is not None:
        codes = edit(codes)
    alphas = video_alphas()
    frame = None
    for t in range(len(style_bgrs) - 1):
        stacked = np.concatenate([style_panels[t], style_panels[t + 1]], axis=0)  # prev above next
        for chunk in chunks(alphas, bg.batch_size):
            out = bg.interpolate(codes, zs[t], zs[t + 1], chunk, add_weight_index=add_weight_index, **controls)
            for alpha, result in zip(chunk, images.tensors_to_video_frames_rgb(out)):
                top = int(size * alpha)  # sliding window: alpha 0 shows prev, 1 shows next
                frame = np.concatenate([face_panel, stacked[top : top + size], result], axis=1)
                yield frame
    for _ in range(VIDEO_HOLD_FRAMES):
        yield frame


def frames_per_video(n_styles: int = VIDEO_STYLES_PER_FACE) -> int:
    return (n_styles - 1) * len(video_alphas()) + VIDEO_HOLD_FRAMES


def gen_video(
    bg: BlendGAN,
    faces: Sequence[Path],
    styles: Sequence[Path],
    outdir: PathLike,
    report: Report,
    options: MorphVideoOptions | None = None,
    *,
    aligner: Aligner | None = None,
    **kwargs,
) -> None:
    """`{face}.mp4`: 227 frames morphing through 8 randomly chosen styles per face.

    `kwargs`: fields of `MorphVideoOptions` (replacing those of `options`) and the controls: `space` ('z' the
    original, 'w' the W-space mix) and strength, layer_weights, preserve_color."""
    from ..io.video import FrameDumper, VideoWriter

    options, controls = split_options(MorphVideoOptions, options, kwargs)
    add_weight_index, seed, codec = options.add_weight_index, options.seed, options.codec
    frames_dir, skip_existing = options.frames_dir, options.skip_existing
    outdir = Path(outdir)
    size = bg.size
    rng = random.Random(seed)  # the original's global `random` seeded at import
    style_cache = {}

    def style_image(path):
        if path not in style_cache:
            style_cache[path] = images.resize_square(images.read_image_bgr(path), size)
        return style_cache[path]

    usable = []
    for path in styles:  # unreadable styles are reported once and never chosen
        try:
            style_image(path)
            usable.append(path)
        except BlendGANError as err:
            report.fail(path, err)
    if not usable:
        return
    n_frames = frames_per_video()
    edit = {} if options.edit is None else {"edit": options.edit}  # no edit: the original call
    for face_path in faces:
        choices = rng.choices(usable, k=VIDEO_STYLES_PER_FACE)  # drawn even when skipped: same stream
        target = outdir / f"{Path(face_path).stem}.mp4"
        if skip_existing and target.exists():
            report.skipped += 1
            continue
        try:
            face = images.resize_square(read_face(face_path, aligner), size)
        except BlendGANError as err:
            report.fail(face_path, err)
            continue
        dumper = FrameDumper(Path(frames_dir) / Path(face_path).stem) if frames_dir else None
        frames = video_frames(bg, face, [style_image(p) for p in choices], add_weight_index, **edit, **controls)
        with VideoWriter(target, 3 * size, size, fps=VIDEO_FPS, codec=codec) as writer:
            for frame in progress(frames, total=n_frames, desc=Path(face_path).name, unit="frame", leave=False):
                writer.write(frame)
                if dumper is not None:
                    dumper.write(frame)
        report.written += 1
