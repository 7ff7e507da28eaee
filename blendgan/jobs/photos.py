"""`blendgan stylize PHOTO`: your photos at their own size and format, every face stylized and pasted back,
`{photo}_v_{style}{ext}`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from .. import photo as photo_mod
from ..errors import BlendGANError
from ..io import images
from .common import PathLike, Report, numbered_face_codes, progress, read_styles, split_options
from .options import PhotoOptions

if TYPE_CHECKING:
    from ..align import FaceAligner
    from ..pipeline import BlendGAN

PANEL_MAX_HEIGHT = 2048  # side-by-side panels of larger photos are shrunk to this height


def stylize_photos(
    bg: BlendGAN,
    photos: Sequence[Path],
    style_img: PathLike | Sequence[PathLike],
    outdir: PathLike,
    report: Report,
    options: PhotoOptions | None = None,
    *,
    aligner: FaceAligner | None = None,
    **kwargs,
) -> None:
    """`{photo}_v_{style}{ext}`: each photo at its own size and format with every face stylized and pasted back.

    `style_img`: the artwork's path, or several paths mixed with the `style_weights` control (the name then
    joins their stems with '+'). `controls` go to `BlendGAN.stylize` (e.g. `add_weight_index`). A photo in
    which no face is found is a failure unless `keep_faceless`, which writes it unchanged. `save_crops` also
    writes each face's aligned and stylized squares; `panel` a [photo | result] picture. `refine` > 0: each
    face's codes are refined for that many steps first (`face_codes`). `kwargs`: fields of `PhotoOptions`
    (replacing those of `options`) and the stylization controls."""
    options, controls = split_options(PhotoOptions, options, kwargs)
    faces, refine, skip_existing = options.faces, options.refine, options.skip_existing
    keep_faceless, save_crops, panel = options.keep_faceless, options.save_crops, options.panel
    outdir = Path(outdir)
    z_embed, style_stem = read_styles(bg, style_img)
    if aligner is None:
        same = options.detect_size == photo_mod.DETECT_SIZE
        aligner = bg.face_aligner() if same else photo_mod.make_aligner(options.detect_size)
    limits = {"min_face": options.min_face, "min_score": options.min_score}
    for path in progress(photos, desc="photos", unit="photo"):
        path = Path(path)
        target = outdir / f"{path.stem}_v_{style_stem}{path.suffix}"
        if skip_existing and target.exists():
            report.skipped += 1
            continue
        try:
            picture = images.read_image_bgr(path)
            records = photo_mod.find_faces(aligner, picture, faces, **limits)
        except BlendGANError as err:
            report.fail(path, err)
            continue
        for item in records:
            if item.skipped and "--min_face" in item.skipped:
                report.note(f"{path}: skipped a {item.skipped}")
        if not any(item.aligned is not None for item in records):
            if not keep_faceless:
                report.fail(path, "no face found to stylize; pass --keep_faceless to write such photos unchanged")
                continue
            report.note(f"{path}: no face found; written unchanged (--keep_faceless)")
        result = photo_mod.stylize_faces(
            bg,
            picture,
            records,
            z_embed,
            face_codes=numbered_face_codes(bg, refine, path.name, report, options.edit),
            **controls,
        )
        images.write_image_atomic(target, result)
        report.written += 1
        if save_crops:
            for k, item in enumerate(r for r in records if r.stylized is not None):
                stem = target.with_suffix("").name
                images.write_image_atomic(outdir / f"{stem}_face{k}_aligned.png", item.aligned)
                images.write_image_atomic(outdir / f"{stem}_face{k}_stylized.png", item.stylized)
        if panel:
            images.write_image_atomic(outdir / f"{target.stem}_panel.jpg", _side_by_side(picture, result))


def _side_by_side(left, right):
    """[left | right] at most PANEL_MAX_HEIGHT high."""
    pair = np.concatenate([left, right], axis=1)
    if pair.shape[0] > PANEL_MAX_HEIGHT:
        scale = PANEL_MAX_HEIGHT / pair.shape[0]
        pair = cv2.resize(pair, (round(pair.shape[1] * scale), PANEL_MAX_HEIGHT), interpolation=cv2.INTER_AREA)
    return pair
