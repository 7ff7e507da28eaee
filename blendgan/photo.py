"""Whole photos: every face found, aligned, stylized and pasted back into the picture.

The geometry is the FFHQ alignment's own (``blendgan.align.CropPlacement``): a generated face is the
aligned square crop re-drawn, so warping it with the crop's similarity transform puts it back where the
face was. What is taken from the generated square is decided by a mask drawn in crop coordinates:

* a head-shaped region from the 68 landmarks: the jaw line and its mirror image above the eyebrows
  (the forehead and the hair on top of it), filled as one convex polygon;
* feathered outwards by a Gaussian whose width is a fixed fraction of the crop, so the seam scales
  with the face (a 40-px face and a 1000-px face get the same-looking transition);
* multiplied by the photo area the crop took untouched (``CropPlacement.content``): where the alignment
  had to reflect-pad and blur beyond the photo's border, the crop is not photo content and the photo
  keeps its own pixels.

Faces are composited smallest first, so where two masks overlap the larger (usually nearer) face is on
top. Pixels outside every mask are the photo's own bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .align import CropPlacement, Face, ffhq_quad
from .defaults import DETECT_SIZE, MIN_FACE, MIN_SCORE

#: faces are aligned at the size the original GUI aligns at, then resized to the generator's size
ALIGN_SIZE = 1024
#: resolution at which the paste-back mask is drawn (it is smooth: warped up or down with bilinear filtering)
MASK_SIZE = 256
#: Gaussian feather of the head region, as a fraction of the crop side (the fade is about 2.5x this wide)
FEATHER = 0.035
#: the head region's extent beyond the face: above the eyebrows, as a fraction of the eyebrows-to-chin
#: depth (1.0 would mirror the chin), and sideways, as a fraction of the jaw's half width
HAIR_HEIGHT = 0.85
HAIR_WIDTH = 0.2
#: the mask reaches 0 this far (a fraction of the side) inside the crop's own edge
EDGE_FADE = 0.05
#: fade at the edge of the photo area the crop took untouched, as a fraction of the crop side
CONTENT_FADE = 0.03


@dataclass
class PhotoFace:
    """One face of a photo: the detection, where its crop sits, and what was done with it.

    ``aligned``: the FFHQ-aligned crop (BGR); ``stylized``: the generated face (BGR, generator size);
    ``mask``: the paste-back mask (``MASK_SIZE``² float32 in [0, 1]); ``skipped``: why it was left as is."""

    face: Face
    placement: CropPlacement
    aligned: np.ndarray | None = None
    stylized: np.ndarray | None = None
    mask: np.ndarray | None = None
    skipped: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def side(self) -> float:
        return self.placement.side


def select_faces(faces: list[Face], which: str | int = "all") -> list[Face]:
    """The faces to stylize: ``"all"``, ``"largest"``, or an int K (the K largest), in detector order."""
    if which == "all":
        return list(faces)
    k = 1 if which == "largest" else int(which)
    keep = sorted(range(len(faces)), key=lambda i: (-faces[i].area, i))[: max(k, 0)]
    return [faces[i] for i in sorted(keep)]


def landmarks_in_crop(landmarks: np.ndarray, placement: CropPlacement, crop_size: int) -> np.ndarray:
    """Photo landmarks (pixel indices) in the pixel indices of a ``crop_size``² crop."""
    m = placement.photo_to_crop(crop_size)
    pts = np.asarray(landmarks, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def head_mask(landmarks_crop: np.ndarray, size: int = MASK_SIZE) -> np.ndarray:
    """Float32 ``size``² mask in [0, 1]: 1 on the head region (jaw line and its mirror above the eyebrows),
    fading to 0 outside it over a width proportional to ``size``, and 0 at the crop's border."""
    lm = np.asarray(landmarks_crop, dtype=np.float64)
    jaw = lm[0:17]
    brows = lm[17:27].mean(axis=0)
    eye_dir = lm[42:48].mean(axis=0) - lm[36:42].mean(axis=0)
    eye_dir /= max(np.hypot(*eye_dir), 1e-9)
    up = np.array([eye_dir[1], -eye_dir[0]])  # perpendicular to the eye line, towards the forehead
    depth = (jaw - brows) @ up  # negative below the eyebrows
    # the jaw mirrored above the eyebrows, a little lower than a full mirror (FFHQ crops keep the crown
    # inside the square), then everything widened around the face's centre line for the hair at the sides
    mirrored = jaw - (1.0 + HAIR_HEIGHT) * depth[:, None] * up[None, :]
    points = np.concatenate([jaw, mirrored])
    across = (points - brows) @ eye_dir
    points += (HAIR_WIDTH * across)[:, None] * eye_dir[None, :]
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))
    region = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(region, hull, 1.0, lineType=cv2.LINE_AA, shift=4)
    sigma = FEATHER * size
    # blurred edge is 0.5 on the region's outline: doubling keeps the whole region at 1 and fades outside it
    mask = np.clip(cv2.GaussianBlur(region, (0, 0), sigma) * 2.0, 0.0, 1.0)
    # never reach the square's own edge (the warped square would show as a seam)
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / (EDGE_FADE * size), 0.0, 1.0)
    return (mask * ramp[None, :] * ramp[:, None]).astype(np.float32)


def _content_weight(placement: CropPlacement, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """Weight in [0, 1] of the photo region [x0, x0 + width) x [y0, y0 + height): 0 outside the crop's
    untouched content rectangle, rising to 1 over ``CONTENT_FADE`` of the crop side inside it; the
    photo's own border counts as content (nothing was blurred there unless padding happened)."""
    cx0, cy0, cx1, cy1 = placement.content
    fade = max(CONTENT_FADE * placement.side, 1.0)
    pw, ph = placement.photo_size

    def axis(lo, hi, start, n, full):
        centres = np.arange(start, start + n, dtype=np.float64) + 0.5
        w = np.ones(n)
        if lo > 0:
            w = np.minimum(w, np.clip((centres - lo) / fade, 0.0, 1.0))
        if hi < full:
            w = np.minimum(w, np.clip((hi - centres) / fade, 0.0, 1.0))
        return w

    wx = axis(cx0, cx1, x0, width, pw)
    wy = axis(cy0, cy1, y0, height, ph)
    return (wy[:, None] * wx[None, :]).astype(np.float32)


def paste_region(placement: CropPlacement) -> tuple[int, int, int, int] | None:
    """The photo pixels (x0, y0, x1, y1) a pasted face can change: the crop's bounding box within the
    photo and its content rectangle; ``None`` when empty."""
    pw, ph = placement.photo_size
    cx0, cy0, cx1, cy1 = placement.content
    xs, ys = placement.corners[:, 0], placement.corners[:, 1]
    x0 = max(int(np.floor(max(xs.min(), cx0))), 0)
    y0 = max(int(np.floor(max(ys.min(), cy0))), 0)
    x1 = min(int(np.ceil(min(xs.max(), cx1))), pw)
    y1 = min(int(np.ceil(min(ys.max(), cy1))), ph)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _warp_into(
    src: np.ndarray, placement: CropPlacement, region, border_mode, border_value=0, interpolation=cv2.INTER_LINEAR
) -> np.ndarray:
    """``src`` (a square crop at any resolution) warped into the photo region's pixel grid."""
    x0, y0, x1, y1 = region
    # Shrinking by more than 4x in one interpolation skips source pixels (aliasing): halve with a Gaussian
    # pyramid first. Not further: every extra low-pass costs detail (measured on the identity round trip,
    # docs/photo.md), and a single cubic interpolation at up to 4x keeps the most.
    while src.shape[0] > 4 * max(placement.side, 1.0) and src.shape[0] >= 16:
        src = cv2.pyrDown(src)
    inverse = placement.shifted(x0, y0).photo_to_crop(src.shape[0])
    return cv2.warpAffine(
        src,
        inverse,
        (x1 - x0, y1 - y0),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=border_mode,
        borderValue=border_value,
    )


def photo_mask(mask: np.ndarray, placement: CropPlacement) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The crop mask in photo coordinates: (region, float32 weights of that region), content rectangle applied."""
    region = paste_region(placement)
    if region is None:
        return None
    x0, y0, x1, y1 = region
    weight = _warp_into(mask, placement, region, cv2.BORDER_CONSTANT, 0)
    weight *= _content_weight(placement, x0, y0, x1 - x0, y1 - y0)
    return region, weight


def paste_face(photo: np.ndarray, face: np.ndarray, mask: np.ndarray, placement: CropPlacement) -> None:
    """Blend the square ``face`` (H×W×3 uint8, any resolution) into ``photo`` (uint8, changed in place) where
    ``mask`` (square float32, crop coordinates) says. Pixels where the warped mask is 0 keep their bytes."""
    found = photo_mask(mask, placement)
    if found is None:
        return
    (x0, y0, _, _), weight = found
    rows, cols = np.nonzero(weight.any(axis=1))[0], np.nonzero(weight.any(axis=0))[0]
    if not len(rows):
        return
    # only the mask's bounding box is warped and blended
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    weight = weight[top:bottom, left:right, None]
    region = (x0 + left, y0 + top, x0 + right, y0 + bottom)
    warped = _warp_into(face, placement, region, cv2.BORDER_REPLICATE, interpolation=cv2.INTER_CUBIC)
    roi = photo[region[1] : region[3], region[0] : region[2]]
    # base + (warped - base) * w is base exactly where w == 0, and within [0, 255] (both ends are uint8)
    blended = warped.astype(np.float32)
    base = roi.astype(np.float32)
    blended -= base
    blended *= weight
    blended += base
    roi[...] = np.rint(blended, out=blended).astype(np.uint8)


def composite(photo: np.ndarray, faces: list[PhotoFace]) -> np.ndarray:
    """A copy of ``photo`` with every stylized face pasted back, smallest first (larger faces on top)."""
    out = np.array(photo, copy=True)
    for item in sorted((f for f in faces if f.stylized is not None), key=lambda f: f.side):
        paste_face(out, item.stylized, item.mask, item.placement)
    return out


def mask_overlay(photo: np.ndarray, faces: list[PhotoFace], colour=(80, 220, 0)) -> np.ndarray:
    """The photo with every paste-back mask tinted in ``colour`` (BGR): how much of each pixel is replaced."""
    out = photo.astype(np.float32)
    for item in faces:
        if item.mask is None:
            continue
        found = photo_mask(item.mask, item.placement)
        if found is None:
            continue
        (x0, y0, x1, y1), weight = found
        roi = out[y0:y1, x0:x1]
        roi += (np.array(colour, np.float32) - roi) * (0.6 * weight[:, :, None])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def make_aligner(detect_size: int = DETECT_SIZE, predictor_path=None):
    """The face aligner for whole photos: dlib's detector on a copy at most ``detect_size`` px long."""
    from .align import FaceAligner

    return FaceAligner(predictor_path, detect_max_side=detect_size)


def find_faces(
    aligner,
    photo: np.ndarray,
    which: str | int = "all",
    min_face: float = MIN_FACE,
    min_score: float = MIN_SCORE,
    align_size: int = ALIGN_SIZE,
) -> list[PhotoFace]:
    """Detect, choose and FFHQ-align the faces of a BGR photo, in detector order. Detections scoring below
    ``min_score`` and faces whose crop is smaller than ``min_face`` photo pixels are kept with ``skipped``
    set (and no crop), so a caller can say why they were left as they are."""
    width, height = photo.shape[1], photo.shape[0]
    candidates = aligner.detect(photo)
    found = []
    for face in select_faces([f for f in candidates if f.score >= min_score], which):
        _, side = ffhq_quad(face.landmarks)
        if side < min_face:
            reason = (
                f"face at x={face.box[0]}, y={face.box[1]} is {side:.0f} px across, below --min_face "
                f"{min_face:g}: too few pixels for the encoder to keep the likeness"
            )
            found.append(PhotoFace(face, _nowhere(width, height), skipped=reason))
            continue
        # no 4096 px supersampling as in `blendgan align`: the encoder reads the crop at 256 px, and a direct
        # warp gives the same crop within 54 dB at a fraction of the time (docs/photo.md)
        aligned, placement = aligner.align_face(photo, face, align_size, transform_size=align_size)
        found.append(PhotoFace(face, placement, aligned=aligned))
    for face in candidates:
        if face.score < min_score:
            found.append(
                PhotoFace(
                    face,
                    _nowhere(width, height),
                    skipped=(
                        f"detection at x={face.box[0]}, y={face.box[1]} scored {face.score:.2f}, below --min_score "
                        f"{min_score:g} (likely not a face)"
                    ),
                )
            )
    return found


def _nowhere(width: int, height: int) -> CropPlacement:
    return CropPlacement(np.zeros((4, 2)), (0.0, 0.0, 0.0, 0.0), (width, height))


def stylize_faces(bg, photo: np.ndarray, faces: list[PhotoFace], z_embed, *, face_codes=None, **controls) -> np.ndarray:
    """Encode, stylize (``bg.stylize(codes, z_embed, **controls)``) and paste back every face that has a crop;
    returns the composited photo (BGR). Fills each face's ``stylized`` and ``mask``. ``face_codes(crop_bgr)``
    makes a crop's codes (default ``bg.encode_face_bgr``; e.g. refined ones, ``bg.refine_face_bgr``)."""
    import torch

    from .io import images

    todo = [f for f in faces if f.aligned is not None]
    if not todo:
        return np.array(photo, copy=True)
    crops = [f.aligned if f.aligned.shape[0] == bg.size else images.resize_square(f.aligned, bg.size) for f in todo]
    codes = torch.cat([(face_codes or bg.encode_face_bgr)(c) for c in crops])
    for item, result in zip(todo, images.tensors_to_bgr(bg.stylize(codes, z_embed, **controls))):
        item.stylized = result
        item.mask = head_mask(landmarks_in_crop(item.face.landmarks, item.placement, MASK_SIZE))
    return composite(photo, faces)


def stylize_photo(
    bg,
    image,
    style,
    faces: str | int = "all",
    *,
    min_face=None,
    min_score=None,
    aligner=None,
    refine: int = 0,
    edit=None,
    **controls,
) -> tuple[np.ndarray, list[PhotoFace]]:
    """A whole photo with every face stylized and pasted back by pipeline `bg`: ``(photo, records)``.

    ``image``: a photo (path, PIL image or H x W x 3 RGB array), any size. ``style``: an artwork (path,
    PIL, RGB array) or a style code ``z_embed`` [1, 512], or a list of them mixed with ``style_weights``.
    ``faces``: ``"all"``, ``"largest"`` or K (the K largest). ``controls`` go to ``bg.stylize`` (e.g.
    ``add_weight_index``, ``strength``). Returns the photo as an H x W x 3 uint8 RGB array at its own
    size, and one `PhotoFace` per detection (its placement, aligned crop, stylized face and mask, or why it
    was skipped), in detector order. ``refine`` > 0: each face's codes are refined for that many steps first
    (``bg.refine_face_bgr``, cached). ``edit``: a codes -> codes callable (``blendgan.editing.apply.Edits``)
    applied to each face's codes before stylizing."""
    import torch

    from .io import images

    def code(one):
        return one.reshape(1, -1) if torch.is_tensor(one) else bg.embed_style(one)

    # several styles (a list) are mixed with the `style_weights` control
    z_embed = [code(s) for s in style] if isinstance(style, (list, tuple)) else code(style)
    bgr = images.to_bgr(image)
    options = {k: v for k, v in (("min_face", min_face), ("min_score", min_score)) if v is not None}
    records = find_faces(aligner or bg.face_aligner(), bgr, faces, **options)

    def face_codes(crop):
        codes = bg.face_codes_bgr(crop, refine)
        return codes if edit is None else edit(codes)

    result = stylize_faces(bg, bgr, records, z_embed, face_codes=face_codes, **controls)
    return images.bgr_to_rgb_array(result), records


def resolution_for(side: float, size: int, floor: int = 64) -> int:
    """The generator resolution a face pasted `side` photo pixels across needs: the smallest power of two at
    least that side (and at least `floor`), at most the generator's `size`. The blocks above it draw detail the
    paste-back shrinks away."""
    r = floor
    while r < side and r < size:
        r *= 2
    return min(r, size)
