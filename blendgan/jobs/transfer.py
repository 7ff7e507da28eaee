"""`blendgan transfer` (the original style_transfer_folder.py): aligned faces x styles, each result written as
`{face}_v_{style}.jpg` = [face | style | stylized]."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from .. import distributed
from ..errors import BlendGANError
from ..io import images
from .common import (
    Aligner,
    PathLike,
    Report,
    chunks,
    edited_codes,
    face_codes,
    progress,
    read_face,
    split_options,
)
from .options import TransferOptions

if TYPE_CHECKING:
    from ..pipeline import BlendGAN


def style_transfer_folder(
    bg: BlendGAN,
    faces: Sequence[Path],
    styles: Sequence[Path],
    outdir: PathLike,
    report: Report,
    options: TransferOptions | None = None,
    *,
    aligner: Aligner | None = None,
    ctx: distributed.Context | None = None,
    **kwargs,
) -> None:
    """`{face}_v_{style}.jpg` = [face | style | stylized] for every face x style.

    `style_weights` (one per style): mix all the styles into one instead, `{face}_v_{a}+{b}.jpg` with the
    styles side by side in vertical stripes in the style panel. `controls`: strength, layer_weights,
    preserve_color as in `BlendGAN.stylize`. `refine` > 0: each face's codes are refined for that many steps
    (`face_codes`) and reused for every style.

    Each style is read and embedded once and each face encoded once; generation is batched over the
    styles of one face. Faces and styles are encoded at their own resolution, as in the original.
    Memory: the encoders are not needed once their codes are made, so the style encoder's pages are
    handed back after the styles, and the pSp encoder is dropped after every face is encoded (the
    faces are read again for their panels); the images are the same as encoding face by face.

    `kwargs`: fields of `TransferOptions` (replacing those of `options`) and the stylization controls. `ctx`
    (torchrun): this process does every world_size-th face (round-robin) with every style; the files are
    those of one process."""
    options, controls = split_options(TransferOptions, options, kwargs)
    add_weight_index, skip_existing, refine = options.add_weight_index, options.skip_existing, options.refine
    style_weights = options.style_weights
    outdir = Path(outdir)
    size = bg.size
    ctx = ctx or distributed.Context(device=bg.device)
    style_items = []  # (stem, display copy, z_embed)
    for path in progress(styles, desc="styles", unit="img"):
        try:
            img, z = bg.read_style(path)  # an image, or a fitted style code with its reference's thumbnail
            style_items.append((Path(path).stem, images.resize_square(img, size), z))
        except BlendGANError as err:
            if ctx.is_main:  # every process reads the styles; the main one reports them
                report.fail(path, err)
    if not style_items:
        return
    if style_weights is not None:
        if len(style_items) != len(styles):
            return  # a style of the mix could not be read (reported above): no partial mixes
        style_items = [_mixed_style_item(style_items, size)]
        controls["style_weights"] = style_weights
    bg.page_out_style_encoder()
    faces = distributed.interleave(faces, ctx.rank, ctx.world_size)
    work = []  # (face path, targets, indices to make, codes)
    for face_path in progress(faces, desc="faces", unit="img"):
        targets = [outdir / f"{Path(face_path).stem}_v_{stem}.jpg" for stem, _, _ in style_items]
        todo = [j for j, t in enumerate(targets) if not (skip_existing and t.exists())]
        report.skipped += len(targets) - len(todo)
        if not todo:
            continue
        try:
            codes = face_codes(bg, read_face(face_path, aligner), refine, Path(face_path).name, report)
            codes = edited_codes(bg, codes, options.edit, Path(face_path).name, report)
            work.append((face_path, targets, todo, codes))
        except BlendGANError as err:
            report.fail(face_path, err)
    bg.release_face_encoder()
    bg.release_refine_models()  # float32 copies a reduced-precision pipeline refined on, if any
    bar = progress(total=sum(len(todo) for _, _, todo, _ in work), desc="stylize", unit="img")
    for face_path, targets, todo, codes in work:
        try:
            face_display = images.resize_square(read_face(face_path, aligner), size)
        except BlendGANError as err:  # changed or removed since it was encoded
            report.fail(face_path, err)
            bar.update(len(todo))
            continue
        for chunk in chunks(todo, bg.batch_size):
            z = torch.cat([style_items[j][2] for j in chunk])
            out = bg.stylize(codes, z, add_weight_index=add_weight_index, **controls)
            for j, result in zip(chunk, images.tensors_to_bgr(out)):
                images.write_image_atomic(targets[j], images.hconcat([face_display, style_items[j][1], result]))
                report.written += 1
            bar.update(len(chunk))
    bar.close()


def _mixed_style_item(items, size):
    """One (stem, panel, codes [1, J, 512]) for a mix of styles: stems joined by '+', the style panel cut
    into J vertical stripes, one from each style."""
    panel = items[0][1].copy()
    n = len(items)
    for j, (_, display, _) in enumerate(items):
        lo, hi = j * size // n, (j + 1) * size // n
        panel[:, lo:hi] = display[:, lo:hi]
    return "+".join(stem for stem, _, _ in items), panel, torch.stack([z.reshape(-1) for _, _, z in items])[None]
