"""The losses of style fitting: VGG19 perceptual distance and a Gram-matrix (style) distance.

Both read the VGG19 inside blendgan.pt (the style encoder's), on images pooled to 256 px as the style
encoder sees them. The Gram distance is relative, ||G(x) - G(y)||^2 / ||G(y)||^2 per tapped layer: the
raw Gram entries of the five taps differ by orders of magnitude, and a relative distance weights each
layer's texture statistics alike without hand-tuned per-layer weights (Gatys et al. weight them by hand).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.style_encoder import STYLE_POOL_SIZE, VGG19_TAPS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pooled(x: torch.Tensor, size: int = STYLE_POOL_SIZE) -> torch.Tensor:
    """Larger images pooled to `size`; smaller ones as they are (upsampling would only cost VGG time)."""
    return F.adaptive_avg_pool2d(x, (size, size)) if x.shape[-1] > size else x


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class StyleFitLoss(nn.Module):
    """loss(x, target) -> {'perceptual', 'style', 'l1'} means over the batch (x, target [-1, 1], same size).
    `target` may be given as `targets(target)` computed once (fixed references)."""

    def __init__(self, vgg_layers: nn.Sequential):
        super().__init__()
        self.vgg_layers = vgg_layers
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((pooled(x) + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for idx, layer in enumerate(self.vgg_layers):
            x = layer(x)
            if idx in VGG19_TAPS:
                out.append(x)
                if idx == VGG19_TAPS[-1]:
                    break
        return out

    @torch.no_grad()
    def targets(self, target: torch.Tensor) -> dict:
        """What the loss needs of the targets: pooled pixels, normalised taps and Gram matrices."""
        taps = [t.float() for t in self.taps(target)]
        return {
            "pixels": pooled(target).float(),
            "taps": [F.normalize(t, dim=1, eps=1e-10) for t in taps],
            "grams": [gram(t) for t in taps],
        }

    def forward(self, x: torch.Tensor, target) -> dict[str, torch.Tensor]:
        want = target if isinstance(target, dict) else self.targets(target)
        got = [t.float() for t in self.taps(x)]
        perceptual = sum((F.normalize(a, dim=1, eps=1e-10) - b).pow(2).sum(1).mean() for a, b in zip(got, want["taps"]))
        style = 0.0
        for a, gb in zip(got, want["grams"]):
            ga = gram(a)
            style = style + ((ga - gb).pow(2).sum((1, 2)) / gb.pow(2).sum((1, 2)).clamp_min(1e-12)).mean()
        l1 = (pooled(x).float() - want["pixels"]).abs().mean()
        return {"perceptual": perceptual, "style": style, "l1": l1}
