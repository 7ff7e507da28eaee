"""The losses of style fitting: VGG19 perceptual distance and a Gram-matrix (style) distance.

Both read the VGG19 inside blendgan.pt (the style encoder's), on images pooled to 256 px as the style
encoder sees them. The Gram distance is relative, ||G(x) - G(y)||^2 / ||G(y)||^2 per tapped layer: the
raw Gram entries of the five taps differ by orders of magnitude, and a relative distance weights each
layer's texture statistics alike without hand-tuned per-layer weights (Gatys et al. weight them by hand).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.style_encoder import STYLE_POOL_SIZE, vgg19_taps
from .features import ImageNetNormalize, gram_matrices, pool_to
from .perceptual import perceptual_distance, unit_features


def pooled(x: torch.Tensor) -> torch.Tensor:
    """Images pooled to the style encoder's 256 px when larger."""
    return pool_to(x, STYLE_POOL_SIZE)


class StyleFitLoss(nn.Module):
    """loss(x, target) -> {'perceptual', 'style', 'l1'} means over the batch (x, target [-1, 1], same size).
    `target` may be given as `targets(target)` computed once (fixed references)."""

    def __init__(self, vgg_layers: nn.Sequential):
        super().__init__()
        self.vgg_layers = vgg_layers
        self.normalize = ImageNetNormalize()

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return vgg19_taps(self.vgg_layers, self.normalize(pooled(x)))

    @torch.no_grad()
    def targets(self, target: torch.Tensor) -> dict:
        """What the loss needs of the targets: pooled pixels, normalised taps and Gram matrices."""
        taps = [t.float() for t in self.taps(target)]
        return {
            "pixels": pooled(target).float(),
            "taps": unit_features(taps),
            "grams": [gram_matrices(t) for t in taps],
        }

    def forward(self, x: torch.Tensor, target) -> dict[str, torch.Tensor]:
        want = target if isinstance(target, dict) else self.targets(target)
        got = [t.float() for t in self.taps(x)]
        perceptual = perceptual_distance(unit_features(got), want["taps"]).mean()
        style = 0.0
        for a, gb in zip(got, want["grams"]):
            ga = gram_matrices(a)
            style = style + ((ga - gb).pow(2).sum((1, 2)) / gb.pow(2).sum((1, 2)).clamp_min(1e-12)).mean()
        l1 = (pooled(x).float() - want["pixels"]).abs().mean()
        return {"perceptual": perceptual, "style": style, "l1": l1}
