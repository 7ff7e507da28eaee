"""Self-supervised style encoder: VGG19 taps -> Gram matrices -> 610304-d vector -> 4-layer MLP.

Lives inside the generator under `embedder.`; also usable on its own (`style_encoder.pt`).
"""

import torch
from torch import nn

from .layers import EqualLinear

# torchvision's VGG19 "E" configuration: channel counts, "M" = 2x2 max pool.
VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
# indices (in the 37-module stack) of the ReLUs whose outputs are tapped: relu1_2, relu2_2, relu3_4, relu4_4, relu5_4
VGG19_TAPS = (3, 8, 17, 26, 35)
VGG19_WIDTH = 64  # channels of VGG19's first conv; every other width is a multiple of it


def vgg19_channels(width=VGG19_WIDTH):
    """The channel counts of the five tapped ReLUs (64, 128, 256, 512, 512 for the real VGG19)."""
    return tuple(c * width // VGG19_WIDTH for c in (64, 128, 256, 512, 512))


def gram_dim(width=VGG19_WIDTH):
    """Length of the Gram vector: 610304 for the real VGG19."""
    return sum(c * c for c in vgg19_channels(width))


GRAM_DIM = gram_dim()  # 610304
STYLE_POOL_SIZE = 256


def vgg19_features(width=VGG19_WIDTH):
    """The 37-module VGG19 `features` stack (convs 3x3 pad 1 with bias, ReLU, max pool 2x2).

    `width` scales every layer (64 = VGG19 itself); narrower stacks have the same keys and layout and exist for
    tests and small experiments that do not need ImageNet features."""
    layers, in_ch = [], 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            v = v * width // VGG19_WIDTH
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU()]
            in_ch = v
    return nn.Sequential(*layers)


class VGGFeatureExtractor(nn.Module):
    """Returns the five tapped ReLU outputs; the layers after relu5_4 are not run (they are unused)."""

    def __init__(self, width=VGG19_WIDTH):
        super().__init__()
        self.vgg_layers = vgg19_features(width)

    def forward(self, x):
        return vgg19_taps(self.vgg_layers, x)


def vgg19_taps(vgg_layers: nn.Sequential, x: torch.Tensor) -> "list[torch.Tensor]":
    """The five tapped ReLU outputs of a VGG19 `features` stack (relu1_2 ... relu5_4) for input x; the layers
    after relu5_4 are not run. The one VGG walk of the package: the style encoder, the perceptual losses and
    style fitting all call it."""
    taps = []
    for idx, layer in enumerate(vgg_layers):
        x = layer(x)
        if idx in VGG19_TAPS:
            taps.append(x)
            if idx == VGG19_TAPS[-1]:
                break
    return taps


def gram_matrices(f: torch.Tensor) -> torch.Tensor:
    """Gram matrices F·Fᵀ / (C·H·W) [N, C, C] of feature maps [N, C, H, W]."""
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def gram_vector(features):
    """Concatenated, row-major flattened Gram matrices of each feature map (BlendGAN's style statistics)."""
    return torch.cat([gram_matrices(f).reshape(f.shape[0], -1) for f in features], dim=1)


class GramEmbedder(nn.Module):
    """256x256 adaptive average pooling, VGG19 taps, Gram vector [N, 610304]."""

    def __init__(self, width=VGG19_WIDTH):
        super().__init__()
        self.feature_extractor = VGGFeatureExtractor(width)
        self.pool = nn.AdaptiveAvgPool2d((STYLE_POOL_SIZE, STYLE_POOL_SIZE))

    def forward(self, image):
        # No ImageNet normalisation: the [-1, 1] image goes straight into VGG.
        return gram_vector(self.feature_extractor(self.pool(image)))


class StyleEncoder(nn.Module):
    """Style image ([-1, 1] RGB, any size) -> style code `z_embed [N, 512]`.

    `width` is VGG19's first-layer width (64, the published encoder); see `vgg19_features`."""

    def __init__(self, style_dim: int = 512, width: int = VGG19_WIDTH) -> None:
        super().__init__()
        self.width = width
        self.embedder = GramEmbedder(width)
        self.embedder_mlp = nn.Sequential(
            EqualLinear(gram_dim(width), style_dim, activation="fused_lrelu"),
            EqualLinear(style_dim, style_dim, activation="fused_lrelu"),
            EqualLinear(style_dim, style_dim, activation="fused_lrelu"),
            EqualLinear(style_dim, style_dim),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.embedder_mlp(self.embedder(image))
