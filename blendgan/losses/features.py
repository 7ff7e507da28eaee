"""What several losses and metrics do to images before comparing them: ImageNet normalisation for VGG19,
average pooling down to a size, and Gram matrices of feature maps."""

import torch
import torch.nn.functional as F

from ..models.style_encoder import gram_matrices

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageNetNormalize", "gram_matrices", "pool_to"]


class ImageNetNormalize(torch.nn.Module):
    """[-1, 1] RGB -> ImageNet-normalised input of torchvision's VGG19 (its mean/std as non-persistent buffers,
    so the module moves with the loss that holds it)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def pool_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images larger than `size` on a side average-pooled to at most `size` per side; smaller ones as they are
    (upsampling would only cost network time). A square image becomes size x size."""
    h, w = x.shape[-2:]
    if max(h, w) <= size:
        return x
    return F.adaptive_avg_pool2d(x, (min(size, h), min(size, w)))
