"""`blendgan stylize PHOTO`: your photos at their own size and format, every face stylized and pasted back,
`{photo}_v_{style}{ext}`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from .. import distributed
from .. import photo as photo_mod
from ..errors import BlendGANError
from ..io import images
from .common import (
    PathLike,
    Report,
    generator_resolution,
    numbered_face_codes,
    output_stems,
    progress,
    read_styles,
    split_options,
)
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
    ctx: distributed.Context | None = None,
    **kwargs,
) -> None:
    """`{photo}_v_{style}{ext}`: each photo at its own size and format with every face stylized and pasted back.

    `style_img`: the artwork's path, or several paths mixed with the `style_weights` control (the name then
    joins their stems with '+'). `controls` go to `BlendGAN.stylize` (e.g. `add_weight_index`). A photo in
    which no face is found is a failure unless `keep_faceless`, which writes it unchanged. `save_crops` also
    writes each face's aligned and stylized squares; `panel` a [photo | result] picture. `refine` > 0: each
    face's codes are refined for that many steps first (`face_codes`). `kwargs`: fields of `PhotoOptions`
    (replacing those of `options`) and the stylization controls.

    `ctx` (torchrun): this process stylizes every world_size-th photo (round-robin), each photo's outputs being
    those of one process. Photos whose outputs would share a name get distinct ones (`common.output_stems`).
    A photo with an alpha channel comes back with the same alpha. With `skip_existing`, a finished photo
    whose requested panel or crops are missing is done again (they are written before the photo itself)."""
    options, controls = split_options(PhotoOptions, options, kwargs)
    faces, refine, skip_existing = options.faces, options.refine, options.skip_existing
    keep_faceless, save_crops, panel = options.keep_faceless, options.save_crops, options.panel
    outdir = Path(outdir)
    z_embed, style_stem = read_styles(bg, style_img)
    if aligner is None:
        same = options.detect_size == photo_mod.DETECT_SIZE
        aligner = bg.face_aligner() if same else photo_mod.make_aligner(options.detect_size)
    limits = {"min_face": options.min_face, "min_score": options.min_score}
    ctx = ctx or distributed.Context(device=bg.device)
    stems = output_stems(photos, keep_suffix=True)
    mine = distributed.interleave(list(zip(photos, stems)), ctx.rank, ctx.world_size)
    for path, stem in progress(mine, desc="photos", unit="photo", disable=not ctx.is_main):
        path = Path(path)
        target = outdir / f"{stem}_v_{style_stem}{path.suffix}"
        if skip_existing and target.exists() and not _extras_missing(target, panel, save_crops):
            report.skipped += 1
            continue
        try:
            picture = images.read_image_bgr(path)
            alpha = images.read_alpha(path)
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
        faces_drawn = [r for r in records if r.aligned is not None]
        resolution = generator_resolution(options.max_resolution, faces_drawn, bg.size)
        extra = {} if resolution is None else {"max_resolution": resolution}
        result = photo_mod.stylize_faces(
            bg,
            picture,
            records,
            z_embed,
            face_codes=numbered_face_codes(bg, refine, path.name, report, options.edit),
            **controls,
            **extra,
        )
        # the extras first, the photo last: a run killed in between does the photo again on resume
        if save_crops:
            for k, item in enumerate(r for r in records if r.stylized is not None):
                images.write_image_atomic(outdir / f"{target.stem}_face{k}_aligned.png", item.aligned)
                images.write_image_atomic(outdir / f"{target.stem}_face{k}_stylized.png", item.stylized)
        if panel:
            images.write_image_atomic(_panel_path(target), _side_by_side(picture, result))
        # a photo with transparency keeps it: the faces are composited in colour, the alpha written back
        images.write_image_atomic(target, result if alpha is None else np.dstack([result, alpha]))
        report.written += 1


def _panel_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}_panel.jpg")


def _extras_missing(target: Path, panel: bool, save_crops: bool) -> bool:
    """Whether a finished photo lacks the panel or the crops this run asks for (then it is done again)."""
    import glob

    if panel and not _panel_path(target).exists():
        return True
    return save_crops and not any(target.parent.glob(f"{glob.escape(target.stem)}_face*_stylized.png"))


def _side_by_side(left, right):
    """[left | right] at most PANEL_MAX_HEIGHT high."""
    pair = np.concatenate([left, right], axis=1)
    if pair.shape[0] > PANEL_MAX_HEIGHT:
        scale = PANEL_MAX_HEIGHT / pair.shape[0]
        pair = cv2.resize(pair, (round(pair.shape[1] * scale), PANEL_MAX_HEIGHT), interpolation=cv2.INTER_AREA)
    return pair
