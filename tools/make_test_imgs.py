"""Regenerate the bundled test images in ``test_imgs/`` from public-domain package data.

Sources (both public domain, shipped inside installed packages, nothing is downloaded):

- scikit-image ``skimage/data/astronaut.png``: Eileen Collins, NASA photograph.
- matplotlib ``mpl-data/sample_data/grace_hopper.jpg``: Grace Hopper, U.S. Navy photograph.

Outputs:

- ``test_imgs/photos/<name>.jpg``: the unaligned photo, re-encoded as JPEG.
- ``test_imgs/face_imgs/<name>.jpg``: a square crop around the face, 256x256, roughly FFHQ framing.
- ``test_imgs/style_imgs/*.jpg``: 256x256 artistic images made with deterministic OpenCV/NumPy filters.

Run from the repository root: ``python tools/make_test_imgs.py``. The face boxes below are fixed
numbers (found once with dlib's frontal face detector) so the output does not depend on a detector.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np

JPEG_QUALITY = 92
STYLE_SIZE = 256
FACE_SIZE = 256


# Face boxes (left, top, right, bottom) in source pixels, from dlib.get_frontal_face_detector()(img, 1).
def package_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package (located without importing the package)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {package!r} is not installed; it provides the source image")
    path = Path(list(spec.submodule_search_locations)[0], *parts)
    if not path.is_file():
        raise SystemExit(f"{path}: source image not found in the installed {package}")
    return path


def sources() -> dict[str, Path]:
    return {
        "astronaut": package_file("skimage", "data", "astronaut.png"),
        "grace_hopper": package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
    }


def write_jpeg(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SystemExit(f"{path}: JPEG encoding failed")
    path.write_bytes(buf.tobytes())


def aligned_face(photo_path: Path) -> np.ndarray:
    """FFHQ alignment of the (re-encoded) photo with blendgan's own aligner, at 256 px."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from blendgan.align import FaceAligner
    from blendgan.io.images import read_image_bgr

    return FaceAligner().align(read_image_bgr(photo_path), output_size=256)


def center_square(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return cv2.resize(img[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)


def cartoon(img: np.ndarray) -> np.ndarray:
    """Flat colours (repeated bilateral filter + quantisation) with dark edge lines."""
    smooth = img
    for _ in range(5):
        smooth = cv2.bilateralFilter(smooth, 9, 60, 7)
    flat = (smooth // 32) * 32 + 16
    grey = cv2.medianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 5)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
    return cv2.bitwise_and(flat.astype(np.uint8), flat.astype(np.uint8), mask=edges)


def pencil_sketch(img: np.ndarray) -> np.ndarray:
    """Grey pencil sketch: colour dodge of the grey image with its blurred negative."""
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    blurred_neg = cv2.GaussianBlur(255.0 - grey, (0, 0), sigmaX=6)
    dodge = np.clip(grey * 255.0 / np.maximum(255.0 - blurred_neg, 1.0), 0, 255)
    # Warm paper tint.
    paper = np.array([215, 235, 245], np.float32) / 255.0
    return np.clip(dodge[..., None] * paper, 0, 255).astype(np.uint8)


def painterly(img: np.ndarray) -> np.ndarray:
    """Watercolour-like look from OpenCV's edge-preserving stylization."""
    return cv2.stylization(img, sigma_s=60, sigma_r=0.45)


def posterize(img: np.ndarray) -> np.ndarray:
    """Uniform 3-level-per-channel posterization with a boosted saturation (pop-art look)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.8, 0, 255)
    vivid = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    levels = np.array([0, 128, 255], np.uint8)
    return levels[np.minimum(vivid // 86, 2)]


def colour_map(img: np.ndarray) -> np.ndarray:
    """False-colour 'thermal' print: grey levels through a colour map after contrast equalisation."""
    grey = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    return cv2.applyColorMap(grey, cv2.COLORMAP_MAGMA)


STYLES = {
    "cartoon_astronaut": (cartoon, "astronaut"),
    "pencil_grace_hopper": (pencil_sketch, "grace_hopper"),
    "painterly_astronaut": (painterly, "astronaut"),
    "posterize_grace_hopper": (posterize, "grace_hopper"),
    "colormap_astronaut": (colour_map, "astronaut"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "test_imgs")
    args = parser.parse_args()

    photos = {name: cv2.imread(str(path), cv2.IMREAD_COLOR) for name, path in sources().items()}
    for name, img in photos.items():
        write_jpeg(args.out / "photos" / f"{name}.jpg", img)
        # needs the align extra: pip install "blendgan[align]"
        write_jpeg(args.out / "face_imgs" / f"{name}.jpg", aligned_face(args.out / "photos" / f"{name}.jpg"))
    for style_name, (make, source) in STYLES.items():
        # Filter at 512 px (the filters' parameters are tuned for that), then shrink to 256.
        styled = make(center_square(photos[source], 512))
        write_jpeg(args.out / "style_imgs" / f"{style_name}.jpg", center_square(styled, STYLE_SIZE))
    for path in sorted(args.out.rglob("*.jpg")):
        print(f"{path.relative_to(args.out)}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
