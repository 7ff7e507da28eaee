"""Style-code files: a fitted style code z_s [1, 512] with a thumbnail of its reference, for `--style_code`.

A style code means something only to the generator it was fitted with (its style mapping turns it into
w_style), so the file records that generator's fingerprint (`blendgan.fitting.adapter.fingerprint`) and the
pipeline refuses a code made for another checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError

FORMAT = "blendgan-style-code"
VERSION = "1"
SUFFIX = ".safetensors"


def save_style_code(path, z_embed: torch.Tensor, thumbnail_rgb: np.ndarray | None, meta: dict) -> int:
    """Write z_embed [1, 512] (float32) and an optional H x W x 3 uint8 RGB thumbnail; returns the size in bytes."""
    from ..weights import safetensors_file

    tensors = {"z_embed": z_embed.detach().float().cpu().reshape(1, -1).contiguous()}
    if thumbnail_rgb is not None:
        tensors["thumbnail"] = torch.from_numpy(np.ascontiguousarray(thumbnail_rgb, dtype=np.uint8))
    meta = {
        "format": FORMAT,
        "version": VERSION,
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()},
    }
    safetensors_file.write(tensors, meta, path)
    return Path(path).stat().st_size


def is_style_code_file(path) -> bool:
    """True for a safetensors file with the style-code metadata (anything else is read as an image)."""
    from ..weights import safetensors_file

    path = Path(path)
    if path.suffix.lower() != SUFFIX or not path.is_file():
        return False
    try:
        return safetensors_file.metadata(path).get("format") == FORMAT
    except Exception:  # noqa: BLE001 - not a safetensors file at all: the image reader reports it
        return False


def read_style_code(path) -> tuple[torch.Tensor, np.ndarray | None, dict]:
    """(z_embed [1, 512] float32, thumbnail RGB or None, metadata); a wrong file is a one-line UsageError."""
    from ..weights import safetensors_file

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--style_code {path}: file not found (make one with `blendgan fit-style`)")
    try:
        tensors, meta = safetensors_file.read(path)
    except Exception as err:  # noqa: BLE001
        raise UsageError(
            f"--style_code {path}: not a readable safetensors file ({err}); pass the style_code"
            ".safetensors that `blendgan fit-style` wrote"
        ) from None
    z = tensors.get("z_embed")
    if meta.get("format") != FORMAT or z is None or z.numel() != 512:
        raise UsageError(
            f"--style_code {path}: not a style-code file; pass the style_code.safetensors that "
            "`blendgan fit-style` wrote"
        )
    thumb = tensors.get("thumbnail")
    return z.float().reshape(1, 512).clone(), None if thumb is None else thumb.numpy().copy(), meta


def read_checked_style_code(path, base_fingerprint: str, size: int) -> tuple[np.ndarray, torch.Tensor]:
    """(BGR thumbnail, z_embed [1, 512]) of a style-code file fitted with the base whose fingerprint is given;
    another base is refused in one line. A file without a thumbnail gets a black size x size picture."""
    z, thumb, meta = read_style_code(path)
    if meta.get("base_fingerprint") != base_fingerprint:
        raise UsageError(
            f"{path}: this style code was fitted with another base checkpoint "
            f"({meta.get('base_checkpoint', '?')}); use it with that --ckpt or fit it again"
        )
    bgr = thumb[:, :, ::-1].copy() if thumb is not None else np.zeros((size, size, 3), np.uint8)
    return bgr, z
