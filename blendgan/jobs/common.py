"""What every job shares: the report protocol, progress bars, option objects and the face codes of a face."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, TypeVar, Union

import numpy as np
import torch
from tqdm import tqdm

from ..errors import BlendGANError, UsageError
from ..io import images

if TYPE_CHECKING:
    from ..pipeline import BlendGAN

PathLike = Union[str, "os.PathLike[str]"]
# aligner(image_bgr, path) -> the FFHQ-aligned face (blendgan.cli._common.make_aligner)
Aligner = Callable[[np.ndarray, Path], np.ndarray]
Options = TypeVar("Options")


class Report(Protocol):
    """What a job records (blendgan.cli._common.RunReport is the commands' one)."""

    written: int
    skipped: int

    def fail(self, path: PathLike, reason: str) -> None: ...

    def note(self, message: str) -> None: ...


def split_options(cls: type[Options], options: Options | None, kwargs: dict) -> tuple[Options, dict]:
    """(options, controls): the keywords that name fields of the option class `cls` replace those of `options`
    (default: `cls()`); the others are stylization controls passed on to the pipeline."""
    names = {f.name for f in dataclasses.fields(cls)}
    chosen = {k: v for k, v in kwargs.items() if k in names}
    controls = {k: v for k, v in kwargs.items() if k not in names}
    return dataclasses.replace(options if options is not None else cls(), **chosen), controls


def chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def progress(iterable=None, **kwargs):
    """tqdm progress bar on stderr (stdout keeps the summary line)."""
    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kwargs)


def read_face(path: PathLike, aligner: Aligner | None) -> np.ndarray:
    """A face image (BGR), FFHQ-aligned first when an aligner is given."""
    img = images.read_image_bgr(path)
    if aligner is not None:
        img = aligner(img, path)
    return img


def face_codes(bg: BlendGAN, image_bgr: np.ndarray, refine: int, name: str, report: Report) -> torch.Tensor:
    """pSp's codes of a face, or with `refine` > 0 its refined codes (`BlendGAN.refine_face_bgr`): a progress
    bar of the steps and one note per face with the seconds it took (or that it came from the cache)."""
    if not refine:
        return bg.encode_face_bgr(image_bgr)
    bar = progress(total=int(refine), desc=f"refine {name}", unit="step", leave=False)

    def step(done, total, loss):
        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        bar.update(1)

    try:
        codes = bg.refine_face_bgr(image_bgr, refine, progress=step)
    finally:
        bar.close()
    r = bg.last_refine
    how = "from the cache" if r.cached else f"{r.steps} step{'s' * (r.steps != 1)} in {r.seconds:.1f}s"
    report.note(f"refine {name}: {how}, reconstruction loss {r.loss_before:.4g} -> {r.loss_after:.4g}")
    return codes


def numbered_face_codes(bg: BlendGAN, refine: int, photo_name: str, report: Report, edit=None):
    """`face_codes` for the faces of one photo, named '<photo> face k' in the notes, moved by `edit` if any."""
    count = iter(range(1 << 30))

    def codes(crop):
        name = f"{photo_name} face {next(count)}"
        return edited_codes(bg, face_codes(bg, crop, refine, name, report), edit, name, report)

    return codes


def edited_codes(bg: BlendGAN, codes: torch.Tensor, edit, name: str, report: Report) -> torch.Tensor:
    """`codes` moved by `edit` (a `blendgan.editing.apply.Edits`; None or all amounts 0: the codes as given),
    with a note of the identity cosine between the unedited and the edited face (dlib descriptors, unstylized)."""
    if edit is None or not edit.active:
        return codes
    moved = edit(codes)
    cosine, distance = identity_cosine(bg, codes, moved)
    how = (
        f"identity cosine {cosine:.3f}, dlib distance {distance:.3f} (dlib's same-person rule: below 0.6)"
        if cosine == cosine
        else "identity not measured (dlib found no face)"
    )
    report.note(f"edit {edit.describe()} on {name}: {how} (dlib descriptors of the face before and after, unstylized)")
    return moved


def identity_cosine(bg: BlendGAN, codes: torch.Tensor, moved: torch.Tensor) -> tuple[float, float]:
    """(cosine, Euclidean distance) of dlib's face descriptors of the two codes' faces (unstylized, at least
    256 px); NaN without a face."""
    from ..editing.labels import identity_cosine as cosine

    faces = []
    for rgb in bg.to_rgb(bg.reconstruct(torch.cat([codes[:1].cpu(), moved[:1].cpu()]))):
        if rgb.shape[0] < 256:
            import cv2

            rgb = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_CUBIC)
        faces.append(np.ascontiguousarray(rgb))
    a, b = _labeller().descriptors(faces)
    return cosine(a, b), (float(np.linalg.norm(a - b)) if a is not None and b is not None else float("nan"))


_LABELLER = []


def _labeller():
    if not _LABELLER:
        from ..editing.labels import DlibLabeller

        _LABELLER.append(DlibLabeller(upsample=1))
    return _LABELLER[0]


def read_styles(bg: BlendGAN, style_img) -> tuple[torch.Tensor | list[torch.Tensor], str]:
    """(z_embed, name part) of `--style_img`: one artwork or style-code file, or several (their codes as a list,
    mixed by the `style_weights` control; the name joins their stems with '+'). An unreadable one is a user error."""
    paths = list(style_img) if isinstance(style_img, (list, tuple)) else [style_img]
    try:
        codes = [bg.read_style(p)[1] for p in paths]
    except BlendGANError as err:
        raise UsageError(f"--style_img {err}") from None
    return (codes[0] if len(codes) == 1 else codes), "+".join(Path(p).stem for p in paths)


def generator_resolution(max_resolution, records, size: int) -> int | None:
    """The `max_resolution` to stylize these faces at (`blendgan.photo.PhotoFace` records with a placement):
    None (the full generator), a number of pixels, or "auto": what the largest of them needs
    (`blendgan.photo.resolution_for`)."""
    from ..photo import resolution_for

    if max_resolution is None:
        return None
    if max_resolution == "auto":
        sides = [r.placement.side for r in records if r.placement is not None]
        return resolution_for(max(sides), size) if sides else None
    return min(int(max_resolution), size)


def output_stems(paths: Sequence[PathLike], keep_suffix: bool) -> list[str]:
    """The name part of each input's outputs: its stem, as the original names them. Inputs whose outputs would
    collide get their extension added (`clip.mov`, `clip.mp4` -> `clip_mov`, `clip_mp4`) and, where that is
    not enough (the same name in two folders), their position in the input list (`_2`, `_3`, ...).
    `keep_suffix`: the outputs keep the input's extension (photos), so only equal names collide."""

    def key(p, stem):
        return (stem, Path(p).suffix.lower()) if keep_suffix else stem

    stems = [Path(p).stem for p in paths]
    for rename in (lambda i: f"{Path(paths[i]).stem}_{Path(paths[i]).suffix.lstrip('.')}", lambda i: None):
        counts = Counter(key(p, s) for p, s in zip(paths, stems))
        clashing = [i for i, (p, s) in enumerate(zip(paths, stems)) if counts[key(p, s)] > 1]
        if not clashing:
            return stems
        for i in clashing:
            stems[i] = rename(i) or f"{stems[i]}_{i + 1}"
    return stems
