"""What `blendgan info` prints about one file: kind, size, tensors, sha256, manifest and load check."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from ..errors import CheckpointError
from .layouts import check_checkpoint, guess_kind, read_truncation
from .manifest import sha256_file, verify_manifest
from .reading import read_file, resolve_checkpoint_path, sniff_file

if TYPE_CHECKING:
    from ..io.files import PathLike


def describe_checkpoint(path: PathLike, *, sha256: bool = True) -> dict:
    """A dict describing one file (no sibling substitution): kind, size, tensors, extras, sha256, checks.

    Keys: path, format (pt | pt-legacy | safetensors), file_bytes, kind, size, n_tensors, n_params, dtypes,
    latent_avg (shape or None), truncation, extra_entries, sha256, manifest (ok | absent | the mismatch),
    check ('ok' or why the loaders would refuse it).
    """
    p = resolve_checkpoint_path(path, prefer_safetensors=False)
    fmt = sniff_file(p)
    ckpt = read_file(p)
    kind = guess_kind(ckpt)
    tensors = list(_iter_tensors(ckpt))
    la = ckpt.get("latent_avg")
    info = {
        "path": str(p),
        "format": {"zip": "pt", "pickle": "pt-legacy"}.get(fmt, "safetensors"),
        "file_bytes": p.stat().st_size,
        "kind": kind,
        "size": None,
        "n_tensors": len(tensors),
        "n_params": sum(t.numel() for t in tensors),
        "dtypes": sorted({str(t.dtype).replace("torch.", "") for t in tensors}),
        "latent_avg": list(la.shape) if isinstance(la, torch.Tensor) else None,
        "truncation": None,
        "extra_entries": sorted(
            str(k)
            for k in ckpt
            if k not in ("g_ema", "state_dict", "latent_avg", "truncation") and not isinstance(ckpt[k], torch.Tensor)
        ),
        "sha256": sha256_file(p) if sha256 else None,
    }
    try:
        info["truncation"] = read_truncation(ckpt, p)
    except CheckpointError as err:
        info["truncation"] = str(err)
    try:
        info["manifest"] = "ok" if verify_manifest(p, rehash=True, digest=info["sha256"]) else "absent"
    except CheckpointError as err:
        info["manifest"] = str(err)
    if kind == "unknown":
        info["check"] = "not a BlendGAN generator, pSp encoder or style encoder checkpoint"
        return info
    try:
        info["size"] = check_checkpoint(ckpt, kind, p)["size"]
        info["check"] = "ok"
    except CheckpointError as err:
        info["check"] = str(err)
    return info


def _iter_tensors(obj, depth=0):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping) and depth < 4:
        for v in obj.values():
            yield from _iter_tensors(v, depth + 1)
    elif isinstance(obj, (list, tuple)) and depth < 4:
        for v in obj:
            yield from _iter_tensors(v, depth + 1)


def format_bytes(n: int) -> str:
    """'1.45 GB' style size."""
    if n < 1000:
        return f"{n} B"
    exp = min(int(math.log(n, 1000)), 4)
    return f"{n / 1000**exp:.2f} {' kMGT'[exp]}B"
