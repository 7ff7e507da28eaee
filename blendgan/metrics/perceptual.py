"""Image tensors and the VGG19 perceptual distance of the diversity and reconstruction metrics.

The distance is the one the pSp trainer uses (blendgan.losses.perceptual.VGGPerceptualLoss: LPIPS's
uncalibrated form on the ImageNet VGG19 taps, without LPIPS's learned weights), with the VGG19 inside the
given blendgan.pt / style_encoder.pt (or torchvision's vgg19 file); images larger than 256 px are pooled to
256 first, as the style encoder does, so the distance does not depend on the output size.
"""

import numpy as np

POOL = 256


def to_tensor(rgb):
    """H x W x 3 uint8 RGB -> [1, 3, H, W] float32 in [-1, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(127.5).sub(1).unsqueeze(0)


class PerceptualDistance:
    """Callable: lists of image pairs (a, b) (uint8 RGB, same size) -> [N, 2] rows (L2, perceptual).

    L2 is the mean squared difference in [-1, 1] (pSp's MSE term); b is resized to a's size when they differ."""

    name = "vgg19-perceptual"

    def __init__(self, vgg_path, device="cpu"):
        from ..losses.perceptual import VGGPerceptualLoss
        from ..losses.vgg_weights import load_vgg19_features

        self.loss = VGGPerceptualLoss(load_vgg19_features(vgg_path)).to(device).eval()
        self.device = device

    def __call__(self, pairs):
        import cv2
        import torch

        from ..losses.features import pool_to

        rows = []
        with torch.inference_mode():
            for a, b in pairs:
                if b.shape != a.shape:
                    b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
                x, y = to_tensor(a).to(self.device), to_tensor(b).to(self.device)
                rows.append([float((x - y).pow(2).mean()), float(self.loss(pool_to(x, POOL), pool_to(y, POOL)))])
        return np.array(rows, np.float64)
