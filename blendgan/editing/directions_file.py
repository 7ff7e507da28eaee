"""Direction files: named directions in W for one base checkpoint, as one safetensors file.

Tensors `direction.<name>`: [512] (applied on the direction's layers) or [n_latent, 512]. Metadata (JSON
strings): the format, the base checkpoint's fingerprint (`blendgan.fitting.adapter.generator_fingerprint`;
a direction means something only to the mapping it was found in, so another base is refused, as style codes
and adapters are), the method (labels, sefa, external), N, and per direction its layers, the standard deviation
of the sampled faces' projection on it (edit amounts are in these units) and its quality (held-out R²,
eigenvalue).

External directions (e4e / InterFaceGAN's `.pt` / `.npy` tensors of shape [512] or [n_latent, 512]) are read
safely (`torch.load(weights_only=True)`, `numpy.load(allow_pickle=False)`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError

__all__ = ["Direction", "DirectionSet", "save_directions", "read_directions", "read_external", "is_directions_file"]

FORMAT = "blendgan-directions"
VERSION = "1"
EXTERNAL_SUFFIXES = (".pt", ".pth", ".npy")


@dataclass(frozen=True)
class Direction:
    """One named direction: `vector` [512] or [n_latent, 512] (float32, unit norm), the latent layers it moves,
    the std of the sampled faces' projection on it, and what its fit measured."""

    name: str
    vector: torch.Tensor
    layers: tuple[int, ...]
    std: float
    quality: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DirectionSet:
    """Directions by name, with the base they were found in and how."""

    directions: dict
    base_fingerprint: str
    method: str
    n: int = 0
    path: str = ""
    extra: dict = field(default_factory=dict)

    def names(self) -> list[str]:
        """The directions' names, in file order."""
        return list(self.directions)


def save_directions(path: str | Path, directions: DirectionSet) -> int:
    """Write the set atomically as safetensors; returns the file's size in bytes."""
    from ..weights import safetensors_file

    tensors = {
        f"direction.{d.name}": d.vector.detach().float().cpu().contiguous() for d in directions.directions.values()
    }
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "base_fingerprint": directions.base_fingerprint,
        "method": directions.method,
        "n": str(int(directions.n)),
        "directions": json.dumps(
            [
                {"name": d.name, "layers": list(d.layers), "std": d.std, "quality": d.quality}
                for d in directions.directions.values()
            ]
        ),
        "extra": json.dumps(directions.extra),
    }
    safetensors_file.write(tensors, meta, path)
    return Path(path).stat().st_size


def is_directions_file(path: str | Path) -> bool:
    """True for a safetensors file with the directions metadata."""
    from ..weights import safetensors_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return False
    try:
        return safetensors_file.metadata(path).get("format") == FORMAT
    except Exception:  # noqa: BLE001 - not safetensors at all: read_directions reports it
        return False


def read_directions(path: str | Path, base_fingerprint: str | None = None) -> DirectionSet:
    """The directions of a file written by `blendgan directions`; with `base_fingerprint`, one found in another
    base checkpoint is refused in one line."""
    from ..weights import safetensors_file

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--directions {path}: file not found (make one with `blendgan directions`)")
    try:
        tensors, meta = safetensors_file.read(path)
    except Exception as err:  # noqa: BLE001
        raise UsageError(f"--directions {path}: not a readable safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise UsageError(f"--directions {path}: not a directions file; pass the one `blendgan directions` wrote")
    if base_fingerprint is not None and meta.get("base_fingerprint") != base_fingerprint:
        raise UsageError(
            f"--directions {path}: these directions were found in another base checkpoint; use them with that "
            "--ckpt or run `blendgan directions` on this one"
        )
    found = {}
    for item in json.loads(meta.get("directions", "[]")):
        vector = tensors[f"direction.{item['name']}"].float().clone()
        found[item["name"]] = Direction(
            item["name"], vector, tuple(int(k) for k in item["layers"]), float(item["std"]), item.get("quality", {})
        )
    return DirectionSet(
        found,
        meta["base_fingerprint"],
        meta.get("method", "?"),
        int(meta.get("n", 0)),
        str(path),
        json.loads(meta.get("extra", "{}")),
    )


def read_external(path: str | Path, n_latent: int) -> torch.Tensor:
    """An e4e / InterFaceGAN direction tensor ([512], [1, 512] or [n_latent, 512], float32) from a .pt/.pth or
    .npy file, loaded without running code from it; another shape is refused in one line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--directions {path}: file not found")
    try:
        if path.suffix.lower() == ".npy":
            value = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise UsageError(
            f"--directions {path}: not a plain tensor file ({type(err).__name__}); save the direction with "
            "torch.save(tensor) or numpy.save"
        ) from None
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if not torch.is_tensor(value):
        raise UsageError(f"--directions {path}: holds a {type(value).__name__}, not one tensor")
    shape = tuple(value.shape)
    if shape not in ((512,), (1, 512), (n_latent, 512), (1, n_latent, 512)):
        raise UsageError(
            f"--directions {path}: a direction of shape {list(shape)} does not fit this generator; "
            f"use [512] or [{n_latent}, 512]"
        )
    value = value.float()
    return value.reshape(512) if value.numel() == 512 else value.reshape(n_latent, 512)
