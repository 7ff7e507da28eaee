"""Losses of the pSp encoder training (pixel2style2pixel, Richardson et al. 2021):

    L = l2_lambda · MSE(y_hat, y) + lpips_lambda · perceptual(y_hat, y)
        + id_lambda · (1 - cos(ArcFace(y_hat), ArcFace(y))) + w_norm_lambda · |codes - latent_avg|

- perceptual: a VGG perceptual loss, NOT calibrated LPIPS. It has the form of LPIPS's uncalibrated
  baseline (features unit-normalised over channels, squared differences summed over channels, averaged
  over positions, summed over layers) on the ImageNet VGG19 taps relu1_2, relu2_2, relu3_4, relu4_4,
  relu5_4 (by default the VGG19 inside blendgan.pt), without LPIPS's learned per-channel weights.
- identity: ArcFace IR-SE50 (the weights pSp uses, model_ir_se50.pth, supplied by the user); as in pSp
  the images are brought to 256 x 256, the face region rows 35:223, columns 32:220 is cropped and pooled
  to 112 x 112.
- W-norm: mean over the batch of the Frobenius norm of the codes' offset from latent_avg (pSp's
  WNormLoss with start_from_latent_avg).
A loss term whose weights file is missing is refused with one line naming the flag; a lambda of 0
disables the term (its network is then not loaded at all).
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, UsageError
from ..models.arcface import ARCFACE_INPUT_SIZE, ArcFaceIRSE50
from ..models.style_encoder import VGG19_TAPS
from ..weights import read_checkpoint, resolve_checkpoint_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ID_POOL_SIZE = 256
ID_CROP = (35, 223, 32, 220)  # rows, columns of the face region in a 256 x 256 aligned face (pSp)


@dataclass(frozen=True)
class PSPLossWeights:
    """pSp's defaults: L2 1, perceptual 0.8, identity 0.1, W-norm off."""

    l2_lambda: float = 1.0
    lpips_lambda: float = 0.8
    id_lambda: float = 0.1
    w_norm_lambda: float = 0.0

    def check(self):
        for name in ("l2_lambda", "lpips_lambda", "id_lambda", "w_norm_lambda"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"--{name} must be >= 0, got {getattr(self, name)}")
        return self


class VGGPerceptualLoss(nn.Module):
    """Uncalibrated VGG19 perceptual distance of two [-1, 1] image batches (mean over the batch)."""

    def __init__(self, vgg_layers):
        super().__init__()
        self.vgg_layers = vgg_layers
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    def features(self, x):
        x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        taps = []
        for idx, layer in enumerate(self.vgg_layers):
            x = layer(x)
            if idx in VGG19_TAPS:
                taps.append(F.normalize(x, dim=1, eps=1e-10))
                if idx == VGG19_TAPS[-1]:
                    break
        return taps

    def forward(self, y_hat, y):
        with torch.no_grad():
            target = self.features(y)
        total = 0.0
        for a, b in zip(self.features(y_hat), target):
            total = total + (a - b).pow(2).sum(dim=1).mean(dim=(1, 2))
        return total.mean()


def identity_crop(x):
    """pSp's face region at ArcFace's input size: pool to 256, crop, pool to 112."""
    x = F.adaptive_avg_pool2d(x, (ID_POOL_SIZE, ID_POOL_SIZE))
    r0, r1, c0, c1 = ID_CROP
    return F.adaptive_avg_pool2d(x[:, :, r0:r1, c0:c1], (ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE))


class IdentityLoss(nn.Module):
    """Mean of 1 - cos(ArcFace(y_hat), ArcFace(y)) over the batch."""

    def __init__(self, facenet):
        super().__init__()
        self.facenet = facenet

    def forward(self, y_hat, y):
        with torch.no_grad():
            target = self.facenet(identity_crop(y))
        return (1 - (self.facenet(identity_crop(y_hat)) * target).sum(dim=1)).mean()


def w_norm(offsets):
    """Mean over the batch of ||codes - latent_avg||_F; `offsets` = the encoder's output before latent_avg."""
    return offsets.flatten(1).norm(dim=1).mean()


class PSPLoss(nn.Module):
    """Weighted sum of the enabled terms; forward returns (total, {term: value})."""

    def __init__(self, weights, perceptual=None, identity=None):
        super().__init__()
        self.weights = weights
        self.perceptual, self.identity = perceptual, identity

    def forward(self, y_hat, y, offsets):
        w = self.weights
        terms = {"l2": F.mse_loss(y_hat, y)}
        if w.lpips_lambda > 0:
            terms["perceptual"] = self.perceptual(y_hat, y)
        if w.id_lambda > 0:
            terms["id"] = self.identity(y_hat, y)
        if w.w_norm_lambda > 0:
            terms["w_norm"] = w_norm(offsets)
        lambdas = {"l2": w.l2_lambda, "perceptual": w.lpips_lambda, "id": w.id_lambda, "w_norm": w.w_norm_lambda}
        total = sum(lambdas[k] * v for k, v in terms.items())
        return total, terms


def _required_file(path, flag, term, lambda_flag, value, what):
    if path is None or str(path) == "":
        raise UsageError(
            f"the {term} loss ({lambda_flag} {value}) needs {what}: pass {flag} FILE, "
            f"or {lambda_flag} 0 to train without it"
        )
    if not Path(path).expanduser().is_file():
        raise UsageError(f"{flag} {path}: file not found (the {term} loss needs {what}; or pass {lambda_flag} 0)")
    return Path(path).expanduser()


def load_arcface(path):
    """ArcFace IR-SE50 (frozen, eval) from pSp's `model_ir_se50.pth` layout (a bare state dict, or one
    under `state_dict`)."""
    src = resolve_checkpoint_path(path)
    ckpt = read_checkpoint(src)
    sd = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), dict) else ckpt
    sd = {k[len("facenet.") :] if isinstance(k, str) and k.startswith("facenet.") else k: v for k, v in sd.items()}
    model = ArcFaceIRSE50()
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    wrong = [
        k for k in expected if k in sd and (not isinstance(sd[k], torch.Tensor) or sd[k].shape != expected[k].shape)
    ]
    if missing or wrong:
        what = f"missing {missing[0]}" if missing else f"{wrong[0]} has the wrong shape"
        raise CheckpointError(
            f"{src} is not an ArcFace IR-SE50 weights file ({len(missing)} keys missing, "
            f"{len(wrong)} of the wrong shape: {what}); pass pSp's model_ir_se50.pth as --id_weights"
        )
    model.load_state_dict({k: sd[k] for k in expected})
    return model.requires_grad_(False).eval()


def build_psp_loss(weights, vgg_weights=None, id_weights=None):
    """PSPLoss with the networks its enabled terms need. `vgg_weights`: a blendgan.pt / style_encoder.pt
    or torchvision's VGG19 file (required when lpips_lambda > 0); `id_weights`: ArcFace IR-SE50 weights
    (required when id_lambda > 0). Missing files raise UsageError naming the flag."""
    from .vgg_weights import load_vgg19_features

    weights.check()
    perceptual = identity = None
    if weights.lpips_lambda > 0:
        path = _required_file(
            vgg_weights,
            "--vgg_weights",
            "perceptual",
            "--lpips_lambda",
            weights.lpips_lambda,
            "ImageNet VGG19 weights (a blendgan.pt, style_encoder.pt or torchvision's vgg19 file)",
        )
        perceptual = VGGPerceptualLoss(load_vgg19_features(path))
    if weights.id_lambda > 0:
        path = _required_file(
            id_weights,
            "--id_weights",
            "identity",
            "--id_lambda",
            weights.id_lambda,
            "ArcFace IR-SE50 weights (pSp's model_ir_se50.pth)",
        )
        identity = IdentityLoss(load_arcface(path))
    return PSPLoss(weights, perceptual, identity)
