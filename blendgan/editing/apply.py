"""Applying directions to face codes: `Edits` moves W+ codes [N, n_latent, 512] along named directions by amounts
in units of each direction's standard deviation over the sampled faces; `load_directions` reads the files a
command names (direction files of this base, or external tensors)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from ..errors import UsageError
from .directions_file import EXTERNAL_SUFFIXES, Direction, DirectionSet, read_directions, read_external

__all__ = ["Edits", "load_directions", "mapped_samples", "projection_std", "parse_edit", "default_layers"]

STD_SAMPLES = 4096  # mapped codes whose projection gives an external direction's std
STD_SEED = 0


def default_layers(add_weight_index: int, n_latent: int) -> tuple[int, ...]:
    """The layers before the WBM's `add_weight_index`: the face's structure lives there, the style's colours
    above."""
    return tuple(range(max(1, min(int(add_weight_index), n_latent))))


def mapped_samples(mapping: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Mapped codes [STD_SAMPLES, 512] (float64) of z of a fixed seed: the faces an external or SeFa direction's
    std is measured over."""
    z = torch.randn(STD_SAMPLES, 512, generator=torch.Generator().manual_seed(STD_SEED))
    return torch.cat([mapping(c).double().cpu() for c in z.split(1024)])


def projection_std(w: torch.Tensor, vector: torch.Tensor) -> float:
    """Std of codes' projection [N, 512] on `vector` ([512], or [n_latent, 512] against the codes repeated over
    the layers)."""
    return float((w.double() @ vector.double().reshape(-1, 512).sum(0)).std())


def parse_edit(text: str) -> tuple[str, float]:
    """'smile=1.5' -> ('smile', 1.5); a malformed one is a one-line UsageError."""
    name, sep, amount = str(text).partition("=")
    try:
        value = float(amount)
    except ValueError:
        value = None
    if not sep or not name.strip() or value is None or value != value:
        raise UsageError(f"--edit {text!r}: use NAME=AMOUNT, e.g. --edit smile=1 (AMOUNT in standard deviations)")
    return name.strip(), value


def load_directions(
    paths: Sequence[str | Path],
    base_fingerprint: str,
    n_latent: int,
    mapping: Callable[[torch.Tensor], torch.Tensor],
    layers: Sequence[int],
) -> DirectionSet:
    """One set from direction files of this base (another base is refused) and external [512] / [n_latent, 512]
    tensors (.pt, .pth, .npy; named by the file's stem, applied on `layers` when [512], their std measured
    with `mapping`)."""
    found: dict[str, Direction] = {}
    samples = []  # mapped codes, made once and only for external files
    for path in paths:
        path = Path(path)
        if path.suffix.lower() in EXTERNAL_SUFFIXES:
            vector = read_external(path, n_latent)
            vector = vector / vector.norm().clamp_min(1e-30)
            rows = tuple(layers) if vector.ndim == 1 else tuple(int(k) for k in vector.abs().sum(1).nonzero().flatten())
            if not samples:
                samples.append(mapped_samples(mapping))
            found[path.stem] = Direction(
                path.stem, vector, rows, projection_std(samples[0], vector), {"source": "external"}
            )
            continue
        for name, d in read_directions(path, base_fingerprint).directions.items():
            bad = [k for k in d.layers if k >= n_latent]
            if bad or (d.vector.ndim == 2 and d.vector.shape[0] != n_latent):
                raise UsageError(f"--directions {path}: direction {name!r} names layers this generator lacks")
            found[name] = d
    return DirectionSet(found, base_fingerprint, "mixed" if len(paths) > 1 else "loaded", 0, ",".join(map(str, paths)))


class Edits:
    """Callable: W+ codes [N, n_latent, 512] -> the codes moved by `amounts` ({name: std units}) along the
    named directions. With no amount other than 0 it returns the codes it was given (the same tensor)."""

    def __init__(self, directions: DirectionSet, amounts: Mapping[str, float]) -> None:
        unknown = [k for k in amounts if k not in directions.directions]
        if unknown:
            names = ", ".join(directions.names()) or "none"
            raise UsageError(f"--edit {unknown[0]}: no such direction in --directions (it has: {names})")
        self.directions = directions
        self.amounts = {k: float(v) for k, v in amounts.items()}

    @property
    def active(self) -> bool:
        """Whether any amount moves the codes."""
        return any(v != 0 for v in self.amounts.values())

    def offset(self, n_latent: int) -> torch.Tensor:
        """The move [n_latent, 512] (float32) the edits add to every face's codes."""
        total = torch.zeros(n_latent, 512, dtype=torch.float64)
        for name, amount in self.amounts.items():
            if amount == 0:
                continue
            d = self.directions.directions[name]
            step = amount * d.std * d.vector.double()
            if step.ndim == 1:
                total[list(d.layers)] += step
            else:
                total += step
        return total.float()

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return codes
        return codes + self.offset(codes.shape[-2]).to(device=codes.device, dtype=codes.dtype)

    def key(self) -> str:
        """A digest of what the edits do (for caches of edited work)."""
        h = hashlib.sha1(json.dumps(sorted((k, v) for k, v in self.amounts.items() if v)).encode())
        for name in sorted(k for k, v in self.amounts.items() if v):
            d = self.directions.directions[name]
            h.update(json.dumps([d.std, list(d.layers)]).encode())
            h.update(d.vector.float().contiguous().numpy().tobytes())
        return h.hexdigest()

    def describe(self) -> str:
        """'smile=+1, yaw=-0.5'."""
        return ", ".join(f"{k}={v:+g}" for k, v in self.amounts.items())
