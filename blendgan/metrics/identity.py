"""Face-recognition embeddings for the identity metric (cosine between the input face and the result).

- dlib's ResNet face-recognition model (`dlib_face_recognition_resnet_model_v1.dat`, 128-d descriptors) with
  its 5-point landmark model (`shape_predictor_5_face_landmarks.dat`); both ship with the pip package
  `face-recognition-models` (real trained weights, offline) and are found without importing it. The default.
- ArcFace IR-SE50 (`model_ir_se50.pth`, the weights pSp's identity loss uses; given by path) on pSp's face
  region of an FFHQ-aligned face (blendgan.losses.identity.identity_crop).

dlib: the face is found by dlib's HOG detector (largest face); where it finds none (stylized or small images)
the box where FFHQ alignment puts the face is used and the image is counted in `undetected`.
"""

import os
from pathlib import Path

import numpy as np

from ..align import bundled_model_file
from ..errors import CheckpointError, UsageError

DLIB_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_LANDMARKS5 = "shape_predictor_5_face_landmarks.dat"
INSTALL_HINT = (
    "dlib's face-recognition model ships with the package face-recognition-models: "
    'pip install "blendgan[align]" (or pass --arcface model_ir_se50.pth)'
)
# left, top, right, bottom of the face in an FFHQ-aligned square, as fractions of its side
ALIGNED_FACE_BOX = (0.2, 0.25, 0.8, 0.9)


def bundled_dlib_model(name: str) -> Path:
    """Path of one of the model files of `face-recognition-models`. UsageError when it is not installed."""
    found = bundled_model_file(name)
    if found is None:
        raise UsageError(f"{name} not found; {INSTALL_HINT}")
    return found


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, D] arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


class DlibFaceEmbedder:
    """Callable: list of H x W x 3 uint8 RGB images -> 128-d dlib descriptors [N, 128]."""

    name = "dlib-resnet-v1"

    def __init__(self, model_path=None, landmarks_path=None):
        try:
            import dlib
        except ImportError:
            raise UsageError(f"dlib is not installed; {INSTALL_HINT}") from None
        model = Path(model_path) if model_path else bundled_dlib_model(DLIB_RECOGNITION)
        landmarks = Path(landmarks_path) if landmarks_path else bundled_dlib_model(DLIB_LANDMARKS5)
        for p in (model, landmarks):
            if not p.is_file():
                raise UsageError(f"{p}: file not found; {INSTALL_HINT}")
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(os.fspath(landmarks))
        self.model = dlib.face_recognition_model_v1(os.fspath(model))
        self.undetected = 0

    def face_box(self, rgb):
        """(dlib.rectangle of the largest detected face, True) or (the aligned-face box, False)."""
        dlib = self._dlib
        faces = self.detector(rgb, 1 if max(rgb.shape[:2]) < 400 else 0)
        if len(faces):
            return max(faces, key=lambda r: r.area()), True
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = ALIGNED_FACE_BOX
        return dlib.rectangle(int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)), False

    def __call__(self, images):
        out = []
        for rgb in images:
            rgb = np.ascontiguousarray(rgb)
            box, found = self.face_box(rgb)
            self.undetected += not found
            shape = self.landmarks(rgb, box)
            out.append(np.array(self.model.compute_face_descriptor(rgb, shape, 0), np.float64))
        return np.stack(out)


class ArcFaceEmbedder:
    """Callable: list of FFHQ-aligned H x W x 3 uint8 RGB faces -> unit ArcFace embeddings [N, 512]."""

    name = "arcface-ir-se50"

    def __init__(self, path, device="cpu"):
        from ..losses.identity import load_arcface

        p = Path(path).expanduser()
        if not p.is_file():
            raise UsageError(
                f"--arcface {p}: file not found; it is pSp's model_ir_se50.pth (the ArcFace IR-SE50 "
                "weights of pixel2style2pixel's identity loss); leave out --arcface to use dlib's model"
            )
        try:
            self.net = load_arcface(p).to(device)
        except CheckpointError as err:  # its message names the pSp trainer's flag
            raise CheckpointError(str(err).replace("--id_weights", "--arcface")) from None
        self.device = device

    def __call__(self, images):
        import torch

        from ..losses.identity import identity_crop
        from .perceptual import to_tensor

        with torch.inference_mode():
            out = [self.net(identity_crop(to_tensor(im).to(self.device))) for im in images]
        return torch.cat(out).double().cpu().numpy()
