"""The uncalibrated VGG19 perceptual distance used by the pSp trainer, face refinement, style fitting and the
diversity / reconstruction metrics.

It has the form of LPIPS's uncalibrated baseline (features unit-normalised over channels, squared differences
summed over channels, averaged over positions, summed over layers) on the ImageNet VGG19 taps relu1_2, relu2_2,
relu3_4, relu4_4, relu5_4, without LPIPS's learned per-channel weights. It is NOT calibrated LPIPS.
"""

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.style_encoder import vgg19_taps
from .features import ImageNetNormalize


def unit_features(taps: Sequence[torch.Tensor]) -> "list[torch.Tensor]":
    """Feature maps normalised to unit length over their channels (LPIPS's first step)."""
    return [F.normalize(t, dim=1, eps=1e-10) for t in taps]


def perceptual_distance(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-sample distance [N] of two lists of unit-normalised taps: squared differences summed over channels,
    averaged over positions, summed over layers."""
    total = 0.0
    for x, y in zip(a, b):
        total = total + (x - y).pow(2).sum(dim=1).mean(dim=(1, 2))
    return total


class VGGPerceptualLoss(nn.Module):
    """Uncalibrated VGG19 perceptual distance of two [-1, 1] image batches (mean over the batch)."""

    def __init__(self, vgg_layers: nn.Sequential):
        super().__init__()
        self.vgg_layers = vgg_layers
        self.normalize = ImageNetNormalize()

    def features(self, x: torch.Tensor) -> "list[torch.Tensor]":
        """Unit-normalised VGG19 taps of a [-1, 1] batch."""
        return unit_features(vgg19_taps(self.vgg_layers, self.normalize(x)))

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(y)
        return perceptual_distance(self.features(y_hat), target).mean()
