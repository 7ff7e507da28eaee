"""`.pt` -> `.safetensors`: the same tensors, bit for bit, without pickle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CheckpointError
from . import safetensors_file
from .hub import is_hub_name
from .layouts import few, generator_parts, guess_kind, psp_parts, read_truncation, style_parts
from .manifest import MANIFEST_NAME, manifest_entry, update_manifest, verify_manifest
from .reading import META_PREFIX, read_file, resolve_checkpoint_path, sniff_file

if TYPE_CHECKING:
    from ..io.files import PathLike


def convert_to_safetensors(path: PathLike, out: PathLike | None = None) -> Path:
    """Write the weights of a `.pt` checkpoint as `.safetensors` (default: same folder and stem; for a hf:// name
    the current folder) -> its path.

    Tensors are copied bit for bit; entries the loaders ignore (optimizer states, training flags, ...)
    are dropped. When the folder has a manifest, the new file gets an entry too.
    """
    src = resolve_checkpoint_path(path, prefer_safetensors=False)
    if src.suffix == ".safetensors" or sniff_file(src) == "safetensors":
        raise CheckpointError(f"{src} is already a safetensors file")
    verify_manifest(src)
    ckpt = read_file(src)
    kind = guess_kind(ckpt)
    if kind == "unknown":
        raise CheckpointError(
            f"{src} is not a BlendGAN checkpoint (entries: {few([str(k) for k in ckpt], 4)}); nothing to convert"
        )
    st = src.stat()
    meta = {
        "format": "pt",
        META_PREFIX + "kind": kind,
        META_PREFIX + "source": src.name,
        META_PREFIX + "source_size": str(st.st_size),
        META_PREFIX + "source_mtime_ns": str(st.st_mtime_ns),
    }
    if kind == "generator":
        sd, size = generator_parts(ckpt, src)
        tensors = dict(sd)
        if isinstance(ckpt.get("g_ema"), Mapping):
            if isinstance(ckpt.get("latent_avg"), torch.Tensor):
                tensors["latent_avg"] = ckpt["latent_avg"]
            if ckpt.get("truncation") is not None:
                meta[META_PREFIX + "truncation"] = repr(read_truncation(ckpt, src))
    elif kind == "psp_encoder":
        sd, _, size = psp_parts(ckpt, src)
        tensors = {k: v for k, v in sd.items() if k != "latent_avg"}
        tensors["latent_avg"] = ckpt["latent_avg"]  # as stored; the loader expands it
    else:
        tensors, size = dict(style_parts(ckpt, src)), None
    if size is not None:
        meta[META_PREFIX + "size"] = str(size)

    if out is None and is_hub_name(str(path)):
        out = Path(src.stem + ".safetensors")  # here, not beside the file inside the Hugging Face cache
    dest = Path(out) if out is not None else src.with_suffix(".safetensors")
    if dest.is_dir():
        dest = dest / (src.stem + ".safetensors")
    try:
        safetensors_file.write(tensors, meta, dest)
    except safetensors_file.SafetensorsFormatError as err:
        raise CheckpointError(f"{src} cannot be converted: {err}") from None
    if (dest.parent / MANIFEST_NAME).is_file():
        update_manifest(dest.parent, dest.name, manifest_entry(dest, kind=kind, converted_from=src.name))
    return dest
