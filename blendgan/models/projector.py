"""Projection head of the self-supervised style encoder training (`Projector` of the original
model_encoder.py): 4 x EqualLinear(512, 512), fused leaky ReLU on the first three.

It maps style codes z_s into the space where the contrastive loss is computed and is discarded after
training; keys `projector.{0..3}.weight [512, 512]` and `.bias [512]`.
"""

from torch import nn

from .layers import EqualLinear


class Projector(nn.Module):
    """z_s [N, style_dim] -> projection p [N, style_dim]."""

    def __init__(self, style_dim=512, n_mlp=4):
        super().__init__()
        layers = [EqualLinear(style_dim, style_dim, activation="fused_lrelu") for _ in range(n_mlp - 1)]
        layers.append(EqualLinear(style_dim, style_dim))
        self.projector = nn.Sequential(*layers)

    def forward(self, x):
        return self.projector(x)
