"""Models built from checkpoint dicts and files: the loaders the pipeline and the trainers use.

The models are built on the meta device and adopt the file's (memory-mapped) tensors, so a 1.4 GB
generator is never held twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Union

import torch

from ..errors import CheckpointError
from ..models import Generator, PSPEncoder, StyleEncoder
from ..models.loading import from_state_dict
from .home import how_to_redownload
from .layouts import (
    generator_max_channels,
    generator_parts,
    psp_encoder_width,
    psp_parts,
    read_truncation,
    style_encoder_width,
    style_parts,
)
from .reading import open_checkpoint

PathLike = Union[str, "os.PathLike[str]"]


def _cast_contiguous(sd, dtype):
    """Tensors ready for assignment: floating ones in `dtype` (None keeps the file's), contiguous."""
    out = {}
    for k, v in sd.items():
        if dtype is not None and v.is_floating_point() and v.dtype != dtype:
            v = v.to(dtype)
        out[k] = v if v.is_contiguous() else v.contiguous()
    return out


def _build(factory, sd, dtype):
    model = from_state_dict(factory, _cast_contiguous(sd, dtype))
    return model.requires_grad_(False)


def generator_from_checkpoint(
    ckpt: Mapping,
    size: int | None = None,
    channel_multiplier: int = 2,
    *,
    source: str = "checkpoint",
    dtype: torch.dtype | None = torch.float32,
) -> tuple[Generator, dict]:
    """(Generator, info) from an already-read checkpoint dict; see `load_generator`."""
    sd, size = generator_parts(ckpt, source, size, channel_multiplier)
    max_channels, style_width = generator_max_channels(sd), style_encoder_width(sd, "embedder.")
    model = _build(
        lambda: Generator(
            size, channel_multiplier=channel_multiplier, max_channels=max_channels, style_width=style_width
        ),
        sd,
        dtype,
    )
    latent_avg = ckpt.get("latent_avg") if isinstance(ckpt.get("g_ema"), Mapping) else None
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1:] != (512,) or latent_avg.ndim > 2:
            shape = list(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
            raise CheckpointError(
                f"{source}: latent_avg is {shape}, expected a [1, 512] tensor; {how_to_redownload(source)}"
            )
        latent_avg = _cast_contiguous({"x": latent_avg.reshape(1, 512) if latent_avg.ndim == 1 else latent_avg}, dtype)[
            "x"
        ]
    truncation = read_truncation(ckpt, source)
    info = {
        "kind": "generator",
        "size": size,
        "channel_multiplier": channel_multiplier,
        "max_channels": max_channels,
        "latent_avg": latent_avg,
        "truncation": truncation,
        "path": source,
    }
    return model, info


def psp_encoder_from_checkpoint(
    ckpt: Mapping, size: int | None = None, *, source: str = "checkpoint", dtype: torch.dtype | None = torch.float32
) -> PSPEncoder:
    """PSPEncoder from an already-read checkpoint dict; see `load_psp_encoder`."""
    sd, n_styles, _ = psp_parts(ckpt, source, size)
    return _build(lambda: PSPEncoder(n_styles, psp_encoder_width(sd)), sd, dtype)


def style_encoder_from_checkpoint(
    ckpt: Mapping, *, source: str = "checkpoint", dtype: torch.dtype | None = torch.float32
) -> StyleEncoder:
    """StyleEncoder from an already-read checkpoint dict; see `load_style_encoder`."""
    sd = style_parts(ckpt, source)
    return _build(lambda: StyleEncoder(width=style_encoder_width(sd)), sd, dtype)


def load_generator(
    path: PathLike, size: int | None = None, channel_multiplier: int = 2, *, dtype: torch.dtype | None = torch.float32
) -> tuple[Generator, dict]:
    """Load a BlendGAN generator (`blendgan.pt` or its .safetensors) -> (Generator in eval mode, info).

    The size is read from the file (add_weight's shape); a `size` that disagrees is an error. info holds
    `size`, `channel_multiplier`, `latent_avg` ([1, 512] tensor or None), `truncation` (float or None) and
    `path` (the file actually read). Floating tensors are cast to `dtype` (None keeps the file's).
    """
    src, ckpt = open_checkpoint(path)
    return generator_from_checkpoint(ckpt, size, channel_multiplier, source=src, dtype=dtype)


def load_psp_encoder(
    path: PathLike, size: int | None = None, *, dtype: torch.dtype | None = torch.float32
) -> PSPEncoder:
    """Load the pSp face encoder (`psp_encoder.pt` or its .safetensors) -> PSPEncoder in eval mode.

    Only `encoder.*` entries of `state_dict` (or of the top-level dict) are used; latent_avg may be
    [n_styles, 512], [1, 512] or [512]. The size (number of styles) is read from the file.
    """
    src, ckpt = open_checkpoint(path)
    return psp_encoder_from_checkpoint(ckpt, size, source=src, dtype=dtype)


def load_style_encoder(path: PathLike, *, dtype: torch.dtype | None = torch.float32) -> StyleEncoder:
    """Load a standalone style encoder (`style_encoder.pt`; a `blendgan.pt` works too) -> StyleEncoder.

    Accepted layouts are listed in pretrained_models/README.md.
    """
    src, ckpt = open_checkpoint(path)
    return style_encoder_from_checkpoint(ckpt, source=src, dtype=dtype)
