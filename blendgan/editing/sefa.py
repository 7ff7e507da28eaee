"""Closed-form factorisation (SeFa, Shen & Zhou 2021) of the synthesis layers' style affines.

Every modulated convolution turns the per-layer code w into channel scales s = A w + b. A unit step n in W
changes them by A n, so the steps that change the chosen layers most are the top eigenvectors of AᵀA, with
A the stacked (effective, i.e. equal-lr scaled) affine weights of those layers. No data is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SefaResult", "layer_modulations", "factorize"]


@dataclass(frozen=True)
class SefaResult:
    """Unit directions [K, 512] (rows), sorted by eigenvalue (descending), and the latent layers they were
    computed on."""

    directions: torch.Tensor
    eigenvalues: torch.Tensor
    layers: tuple[int, ...]


def layer_modulations(generator: nn.Module) -> dict[int, list[torch.Tensor]]:
    """{latent index: effective affine weights [channels, 512] of every modulated conv that reads it}.

    The synthesis network reads latent 0 in conv1, 1 in to_rgb1 and convs[0], then per block j the indices
    1+2j (convs[2j]), 2+2j (convs[2j+1]) and 3+2j (to_rgbs[j])."""

    def eff(mod_conv):
        lin = mod_conv.modulation
        return lin.weight.detach().double() * lin.scale

    found: dict[int, list[torch.Tensor]] = {0: [eff(generator.conv1.conv)], 1: [eff(generator.to_rgb1.conv)]}
    for j, to_rgb in enumerate(generator.to_rgbs):
        found.setdefault(1 + 2 * j, []).append(eff(generator.convs[2 * j].conv))
        found.setdefault(2 + 2 * j, []).append(eff(generator.convs[2 * j + 1].conv))
        found.setdefault(3 + 2 * j, []).append(eff(to_rgb.conv))
    return found


def factorize(generator: nn.Module, layers: list[int] | tuple[int, ...], top: int = 10) -> SefaResult:
    """The `top` directions of SeFa on the given latent layers (indices < n_latent)."""
    mods = layer_modulations(generator)
    bad = [k for k in layers if k not in mods]
    if not layers or bad:
        raise ValueError(f"latent layers {bad or '[]'} do not exist (0..{len(mods) - 1})")
    a = torch.cat([w for k in sorted(set(layers)) for w in mods[k]])  # [sum of channels, 512]
    values, vectors = torch.linalg.eigh(a.T @ a)  # ascending
    order = torch.argsort(values, descending=True)[: max(1, int(top))]
    directions = vectors[:, order].T.contiguous()
    # a sign is arbitrary: fix it so that each direction's largest entry is positive (reproducible files)
    sign = torch.sign(directions.gather(1, directions.abs().argmax(1, keepdim=True)))
    return SefaResult((directions * sign).float(), values[order].float(), tuple(sorted(set(layers))))
