"""Losses of the pSp encoder training (pixel2style2pixel, Richardson et al. 2021):

    L = l2_lambda · MSE(y_hat, y) + lpips_lambda · perceptual(y_hat, y)
        + id_lambda · (1 - cos(ArcFace(y_hat), ArcFace(y))) + w_norm_lambda · |codes - latent_avg|

- perceptual: `blendgan.losses.perceptual` (uncalibrated VGG19 distance, NOT calibrated LPIPS; by default the
  VGG19 inside blendgan.pt).
- identity: `blendgan.losses.identity` (ArcFace IR-SE50, pSp's model_ir_se50.pth supplied by the user, on
  pSp's face crop).
- W-norm: mean over the batch of the Frobenius norm of the codes' offset from latent_avg (pSp's
  WNormLoss with start_from_latent_avg).
A loss term whose weights file is missing is refused with one line naming the flag; a lambda of 0
disables the term (its network is then not loaded at all).
"""

from dataclasses import dataclass
from pathlib import Path

import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .identity import IdentityLoss, load_arcface
from .perceptual import VGGPerceptualLoss
from .vgg_weights import load_vgg19_features


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


def build_psp_loss(weights, vgg_weights=None, id_weights=None):
    """PSPLoss with the networks its enabled terms need. `vgg_weights`: a blendgan.pt / style_encoder.pt
    or torchvision's VGG19 file (required when lpips_lambda > 0); `id_weights`: ArcFace IR-SE50 weights
    (required when id_lambda > 0). Missing files raise UsageError naming the flag."""
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
