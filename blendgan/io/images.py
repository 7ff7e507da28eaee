"""Image files and arrays: listing, reading, tensor conversions, panels and writing (atomically, see files.py).

Conventions: images on disk are read as OpenCV does (``cv2.imread(path,
IMREAD_COLOR)``: H×W×3 uint8 **BGR**); the networks take ``[1, 3, H, W]`` float32 RGB tensors in
[-1, 1]. The Python API accepts RGB (NumPy arrays and PIL images) and converts with ``to_bgr``.
"""

from __future__ import annotations

import glob
import io
import os
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import InputImageError, UsageError
from .files import write_bytes_atomic

PathLike = Union[str, "os.PathLike[str]"]

#: File extensions (lower case) treated as images when listing a folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

_UNREADABLE = "not a readable image (corrupt, truncated or unsupported format)"


# --------------------------------------------------------------------------- listing


def is_image_file(path: PathLike) -> bool:
    """True if ``path`` has one of ``IMAGE_EXTENSIONS`` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(path: PathLike) -> tuple[list[Path], list[Path]]:
    """Images to process from a folder or a single file, and the folder entries that were skipped.

    A folder is listed like the original scripts (``sorted(glob(join(dir, '*.*')))``: every entry
    with a dot in its name, hidden ones excluded, in lexicographic order of the full path string),
    then split into image files (by extension) and ignored entries (other files, folders).
    A single file must have an image extension. A missing path raises ``UsageError``.
    """
    p = Path(path)
    if p.is_dir():
        entries = sorted(glob.glob(os.path.join(glob.escape(str(p)), "*.*")))
        images, ignored = [], []
        for entry in map(Path, entries):
            (images if entry.is_file() and is_image_file(entry) else ignored).append(entry)
        return images, ignored
    if p.is_file():
        if not is_image_file(p):
            raise UsageError(f"{p}: not an image file name (expected one of {', '.join(IMAGE_EXTENSIONS)})")
        return [p], []
    raise UsageError(f"{p}: no such file or folder; check the path")


# --------------------------------------------------------------------------- reading


def read_image_bgr(path: PathLike) -> np.ndarray:
    """Read an image file as H×W×3 uint8 BGR, the same pixels as ``cv2.imread(path, IMREAD_COLOR)``.

    Decoding goes through ``cv2.imdecode`` on the file's bytes (so non-ASCII paths work on every
    platform): grey is expanded, alpha dropped, 16-bit reduced to 8-bit and the EXIF orientation
    applied exactly as ``imread`` does. Formats OpenCV cannot decode fall back to Pillow.
    Truncated JPEG/PNG/WebP files are refused (``imread`` would decode part of a truncated JPEG).
    Any problem raises ``InputImageError`` with the message ``"<path>: <reason>"``.
    """
    p = Path(path)
    if p.is_dir():
        raise InputImageError(f"{p}: is a folder, not an image file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except FileNotFoundError:
        raise InputImageError(f"{p}: file not found") from None
    except PermissionError:
        raise InputImageError(f"{p}: cannot read the file (permission denied)") from None
    except OSError as err:
        raise InputImageError(f"{p}: cannot read the file ({err.strerror or err})") from None
    if data.size == 0:
        raise InputImageError(f"{p}: empty file (0 bytes)")
    truncated = _truncation_reason(data)
    if truncated:
        raise InputImageError(f"{p}: {truncated}; re-export or copy the file again")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None:
        img = _decode_with_pillow(data)
    if img is None:
        raise InputImageError(f"{p}: {_UNREADABLE}")
    return img


def read_alpha(path: PathLike) -> np.ndarray | None:
    """The alpha channel (H×W uint8, EXIF orientation applied like the colour) of an image that has one (PNG,
    WebP, TIFF, GIF with transparency), else None. Read after `read_image_bgr` accepted the file: a file Pillow
    cannot open, or whose alpha does not match the colour's size, counts as having none."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            if not has_alpha:
                return None
            alpha = np.asarray(ImageOps.exif_transpose(im).convert("RGBA").getchannel("A"))
    except (OSError, ValueError):
        return None
    return np.ascontiguousarray(alpha)


def _truncation_reason(data: np.ndarray) -> str | None:
    """A reason string if the bytes are a JPEG, PNG or WebP that ends early, else None.

    JPEG: the end-of-image marker FFD9 must follow the last start-of-scan marker FFDA (byte
    stuffing keeps both out of the compressed data, and an EXIF thumbnail's markers come before the
    main scan); bytes appended after the end marker are fine. PNG: the chunk chain must reach IEND.
    WebP: the file must be as long as its RIFF header says.
    """
    head = data[:12].tobytes()
    if head.startswith(b"\xff\xd8\xff"):
        raw = data.tobytes()
        if raw.rfind(b"\xff\xd9") > raw.rfind(b"\xff\xda"):
            return None
        return "truncated JPEG file (the data ends before the end-of-image marker)"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if _png_reaches_iend(data) else "truncated PNG file (it ends before the IEND chunk)"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        if int.from_bytes(head[4:8], "little") + 8 <= data.size:
            return None
        return "truncated WebP file (shorter than its RIFF header says)"
    return None


def _png_reaches_iend(data: np.ndarray) -> bool:
    """Walk the PNG chunk chain (length, type, payload, CRC) from the signature to IEND."""
    pos, size = 8, data.size
    while pos + 8 <= size:
        length = int.from_bytes(data[pos : pos + 4].tobytes(), "big")
        if data[pos + 4 : pos + 8].tobytes() == b"IEND":
            return True
        pos += 12 + length
    return False


def _decode_with_pillow(data: np.ndarray) -> np.ndarray | None:
    """Fallback decoder for formats OpenCV lacks, converted like IMREAD_COLOR would."""
    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            im.load()
            return _pil_to_bgr(ImageOps.exif_transpose(im))
    except Exception:
        return None


def _pil_to_bgr(im: Image.Image) -> np.ndarray:
    """PIL image (any mode) → H×W×3 uint8 BGR; no EXIF rotation; alpha dropped, not composited."""
    if im.mode.startswith("I;16"):
        # 16-bit grey: keep the high byte, like OpenCV's 16 → 8 bit reduction for PNG.
        grey = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    rgb = np.asarray(im.convert("RGB"))  # Pillow drops alpha without compositing, like IMREAD_COLOR
    return np.ascontiguousarray(rgb[:, :, ::-1])


def to_bgr(image: Union[PathLike, Image.Image, np.ndarray]) -> np.ndarray:
    """Any supported image input → H×W×3 uint8 BGR (a new array; the input is not modified).

    - a path (``str`` / ``os.PathLike``): read with ``read_image_bgr`` (EXIF orientation applied);
    - a PIL image: its pixels as stored (no EXIF rotation; call ``ImageOps.exif_transpose`` first
      if wanted), any mode, alpha dropped;
    - a NumPy uint8 array in **RGB** order: H×W (grey), H×W×1, H×W×3 (RGB) or H×W×4 (RGBA, alpha
      dropped).
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image_bgr(image)
    if isinstance(image, Image.Image):
        return _pil_to_bgr(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise InputImageError(
                f"image array of dtype {image.dtype}: expected uint8 RGB values 0..255 "
                "(convert e.g. with (x * 255).round().clip(0, 255).astype(np.uint8))"
            )
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            return cv2.cvtColor(np.ascontiguousarray(image.reshape(image.shape[:2])), cv2.COLOR_GRAY2BGR)
        if image.ndim == 3 and image.shape[2] in (3, 4):
            return np.ascontiguousarray(image[:, :, 2::-1])
        raise InputImageError(f"image array of shape {tuple(image.shape)}: expected H×W, H×W×3 (RGB) or H×W×4 (RGBA)")
    raise InputImageError(
        f"unsupported image input of type {type(image).__name__}: pass a path, a PIL image or a uint8 RGB NumPy array"
    )


def bgr_to_rgb_array(img_bgr: np.ndarray) -> np.ndarray:
    """H×W×3 BGR → a contiguous H×W×3 RGB copy."""
    return np.ascontiguousarray(img_bgr[:, :, ::-1])


def to_pil(img_bgr: np.ndarray) -> Image.Image:
    """H×W×3 uint8 BGR → an RGB PIL image."""
    return Image.fromarray(bgr_to_rgb_array(img_bgr))


def resize_square(img_bgr: np.ndarray, size: int) -> np.ndarray:
    """``cv2.resize(img, (size, size))`` with the default (bilinear) interpolation."""
    return cv2.resize(img_bgr, (size, size))


def hconcat(images: Sequence[np.ndarray]) -> np.ndarray:
    """Panels side by side (``np.concatenate`` along the width); all must have the same height."""
    heights = {img.shape[0] for img in images}
    if len(heights) != 1:
        raise ValueError(f"hconcat needs images of one height, got heights {sorted(heights)}")
    return np.concatenate(list(images), axis=1)


# --------------------------------------------------------------------------- tensors


def bgr_to_tensor(img_bgr: np.ndarray) -> torch.Tensor:
    """The original ``cv2ten``: BGR→RGB, CHW, ``(u/255 − 0.5)/0.5`` in float64, then
    float32, batch dimension added. Returns a CPU ``[1, 3, H, W]`` float32 tensor in [-1, 1]."""
    if img_bgr.ndim != 3 or img_bgr.shape[2] != 3 or img_bgr.dtype != np.uint8:
        raise ValueError(f"bgr_to_tensor expects a uint8 HxWx3 image, got {img_bgr.dtype} {img_bgr.shape}")
    chw = img_bgr[:, :, ::-1].transpose(2, 0, 1)
    x = (chw / 255.0 - 0.5) / 0.5  # float64, as in the original
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(0)


def _as_float32_cpu_batch(t: torch.Tensor, name: str) -> torch.Tensor:
    t = t.detach()
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[1] != 3:
        raise ValueError(f"{name} expects a [3,H,W] or [N,3,H,W] tensor, got {tuple(t.shape)}")
    return t.to(device="cpu", dtype=torch.float32)


def _ten2cv_uint8_nhwc(batch: torch.Tensor) -> np.ndarray:
    # ten2cv: x*0.5 + 0.5, then *255, clamp to [0, 255] (all float32, in this order),
    # then truncation to uint8. Out-of-place ops: the caller's tensor stays untouched.
    x = batch.mul(0.5).add(0.5).mul(255.0).clamp(0.0, 255.0)
    return x.permute(0, 2, 3, 1).numpy().astype(np.uint8)


def tensor_to_bgr(t: torch.Tensor) -> np.ndarray:
    """The original ``ten2cv`` for one image: ``[1,3,H,W]`` or ``[3,H,W]`` RGB in [-1, 1]
    → H×W×3 uint8 BGR. Computed in float32 on the CPU; the input tensor is not modified."""
    batch = _as_float32_cpu_batch(t, "tensor_to_bgr")
    if batch.shape[0] != 1:
        raise ValueError(f"tensor_to_bgr takes one image, got a batch of {batch.shape[0]}")
    return tensors_to_bgr(batch)[0]


def tensors_to_bgr(batch: torch.Tensor) -> list[np.ndarray]:
    """``tensor_to_bgr`` for every image of an ``[N,3,H,W]`` batch (identical per-sample results)."""
    nhwc = _ten2cv_uint8_nhwc(_as_float32_cpu_batch(batch, "tensors_to_bgr"))
    return [np.ascontiguousarray(img[:, :, ::-1]) for img in nhwc]


def tensors_to_video_frames_rgb(batch: torch.Tensor) -> list[np.ndarray]:
    """gen_video's conversion for every image of an ``[N,3,H,W]`` batch → H×W×3 uint8 RGB."""
    x = _as_float32_cpu_batch(batch, "tensors_to_video_frames_rgb")
    # clamp(x*0.5 + 0.5, 0, 1) in float32, then *255 and truncation in NumPy float32.
    unit = x.mul(0.5).add(0.5).clamp(0.0, 1.0).permute(0, 2, 3, 1).numpy()
    nhwc = (unit * np.float32(255)).astype(np.uint8)
    return [np.ascontiguousarray(img) for img in nhwc]


def tensor_to_video_frame_rgb(t: torch.Tensor) -> np.ndarray:
    """gen_video's float→uint8 conversion for one ``[1,3,H,W]`` or ``[3,H,W]`` image → H×W×3 RGB.
    Note the order differs from ``tensor_to_bgr`` (clamp to [0,1] first, then scale)."""
    batch = _as_float32_cpu_batch(t, "tensor_to_video_frame_rgb")
    if batch.shape[0] != 1:
        raise ValueError(f"tensor_to_video_frame_rgb takes one image, got a batch of {batch.shape[0]}")
    return tensors_to_video_frames_rgb(batch)[0]


# --------------------------------------------------------------------------- writing


def encode_image(path: PathLike, img_bgr: np.ndarray, jpeg_quality: int = 95) -> bytes:
    """The bytes of ``img_bgr`` encoded by the extension of ``path`` (``cv2.imencode``; JPEG quality 95
    is OpenCV's default). Raises ``UsageError`` for an extension OpenCV cannot write."""
    target = Path(path)
    is_jpeg = target.suffix.lower() in (".jpg", ".jpeg")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if is_jpeg else []
    try:
        ok, buf = cv2.imencode(target.suffix, img_bgr, params)
    except cv2.error:
        ok = False
    if not ok:
        raise UsageError(
            f"{target}: cannot encode this image as {target.suffix or 'a file without extension'!r}; "
            "use a .jpg or .png file name"
        )
    return buf.tobytes()


def write_image_atomic(path: PathLike, img_bgr: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode ``img_bgr`` by the extension of ``path`` (``encode_image``) and write it atomically.
    Raises ``UsageError`` for an extension OpenCV cannot write or a folder that is missing or not
    writable."""
    write_bytes_atomic(path, encode_image(path, img_bgr, jpeg_quality))
