"""Refine a face: optimise its W+ codes, starting from pSp's, so that the generator redraws the photo closer.

    loss = l2 · MSE(G(w), x) + perceptual · VGG(G(w), x) + identity · (1 - cos ArcFace) + pull · MSE(w, w_pSp)

- G: the generator with its stored noise maps (`randomize_noise=False`, the maps every image of the
  pipeline uses), so the refined codes reproduce the same image in `stylize`.
- the image terms are computed at `loss_size` (default 256, as pSp's losses): the generator's image is
  average-pooled to it when larger, the photo resized (antialiased) to the same, so the VGG costs the same
  at every generator size above it.
- VGG: the uncalibrated VGG19 perceptual distance of `blendgan.losses.perceptual`, here on the VGG19 inside
  blendgan.pt (the style encoder's feature stack).
- identity: 1 - cos of ArcFace IR-SE50 embeddings on pSp's face region (as `blendgan.losses.identity`),
  only when its weights are given.
The photo's pooled copy and its VGG / ArcFace features are computed once, not per step.
- pull: mean squared offset of the codes from pSp's. The later layers are where a style is blended in
  (add_weight_index); codes far from what pSp makes are ones the style embedding was never trained with,
  so the pull keeps the refined codes in pSp's neighbourhood and the styles still apply.

Adam on the codes (float32, whatever the generator's dtype); the codes with the lowest total loss (image
terms + pull) of all those evaluated, the pSp codes and the last update included, are returned. Nothing is
drawn at random: `seed` fixes torch's RNG for the duration (forked, the caller's stream is untouched), so
any later random term stays reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..losses.features import pool_to
from ..losses.identity import identity_crop, load_arcface
from ..losses.perceptual import VGGPerceptualLoss, perceptual_distance

LOSS_SIZE = 256


@dataclass(frozen=True)
class RefineSettings:
    """What a refinement depends on besides the image and the models (the cache key's settings part)."""

    steps: int = 50
    lr: float = 0.01
    l2: float = 1.0
    perceptual: float = 0.8
    identity: float = 0.1  # used only with ArcFace weights
    pull: float = 0.5
    loss_size: int = LOSS_SIZE
    seed: int = 0

    def check(self) -> RefineSettings:
        if int(self.steps) != self.steps or self.steps < 0:
            raise UsageError(f"refine steps must be a whole number >= 0, got {self.steps}")
        if not self.lr > 0:
            raise UsageError(f"refine learning rate must be > 0, got {self.lr}")
        for name in ("l2", "perceptual", "identity", "pull"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"refine weight {name} must be >= 0, got {getattr(self, name)}")
        if self.loss_size < 32:
            raise UsageError(f"refine loss_size must be >= 32, got {self.loss_size}")
        return self

    def key(self) -> str:
        """Stable text of the settings for cache keys."""
        return ",".join(f"{k}={v!r}" for k, v in asdict(self).items())


@dataclass
class RefineResult:
    codes: torch.Tensor  # [1, n_latent, 512] float32, on the device of the initial codes
    loss_before: float  # reconstruction loss (image terms only) of the initial codes
    loss_after: float  # the same of the returned codes
    seconds: float
    steps: int
    cached: bool = False  # served from a cache (no optimisation ran)


class ReconstructionLoss(torch.nn.Module):
    """The image terms of the refinement: l2 · MSE + perceptual · VGG (+ identity · ArcFace), at loss_size.

    The target's pooled copy and its VGG / ArcFace features are computed once per target tensor."""

    def __init__(self, vgg_layers, l2=1.0, perceptual=0.8, identity_model=None, identity=0.1, loss_size=LOSS_SIZE):
        super().__init__()
        self.vgg = VGGPerceptualLoss(vgg_layers) if perceptual > 0 else None
        self.facenet = identity_model if identity > 0 else None
        self.l2, self.perceptual, self.identity = float(l2), float(perceptual), float(identity)
        self.loss_size = int(loss_size)
        self._target = None  # (target tensor, {pooled, vgg, id})

    def pool(self, x):
        return pool_to(x, self.loss_size)

    def _prepared(self, y, shape, dtype):
        if self._target is not None and self._target[0] is y:
            return self._target[1]
        with torch.no_grad():
            pooled = y.to(dtype)
            if pooled.shape[-2:] != shape:
                pooled = F.interpolate(
                    pooled.float(), size=shape, mode="bilinear", antialias=True, align_corners=False
                ).to(dtype)
            prepared = {"pooled": pooled}
            if self.vgg is not None:
                prepared["vgg"] = self.vgg.features(pooled)
            if self.facenet is not None:
                prepared["id"] = self.facenet(identity_crop(pooled))
        self._target = (y, prepared)
        return prepared

    def forward(self, y_hat, y):
        """(total, {term: value}) of an image [1, 3, H, W] in [-1, 1] against the target y (no gradient)."""
        y_hat = self.pool(y_hat)
        target = self._prepared(y, y_hat.shape[-2:], y_hat.dtype)
        terms = {"l2": F.mse_loss(y_hat.float(), target["pooled"].float())}
        if self.vgg is not None:
            got = [t.float() for t in self.vgg.features(y_hat)]
            terms["perceptual"] = perceptual_distance(got, [t.float() for t in target["vgg"]]).mean()
        if self.facenet is not None:
            emb = self.facenet(identity_crop(y_hat))
            terms["identity"] = (1 - (emb * target["id"]).sum(dim=1)).float().mean()
        weights = {"l2": self.l2, "perceptual": self.perceptual, "identity": self.identity}
        total = sum(weights[k] * v for k, v in terms.items())
        return total, terms


def load_identity_model(path):
    """ArcFace IR-SE50 (frozen) from pSp's model_ir_se50.pth, for the identity term."""
    return load_arcface(path)


def refine_codes(
    generator: torch.nn.Module,
    target: torch.Tensor,
    init_codes: torch.Tensor,
    loss: ReconstructionLoss,
    *,
    steps: int,
    lr: float = 0.01,
    pull: float = 0.5,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
    dtype: torch.dtype | None = None,
    generator_kwargs: dict | None = None,
) -> RefineResult:
    """Optimise W+ codes [1, n_latent, 512] so that `generator` redraws `target`.

    `target`: [1, 3, H, W] in [-1, 1] on the generator's device (resized to the generator's size by the
    caller or pooled here to the loss size). `init_codes`: pSp's codes. The generator is run on the codes
    cast to its own dtype with its stored noise maps; its weights are not touched (gradients flow to the
    codes only). `dtype`: what the codes are cast to (default: the generator's first parameter's).
    `progress(step, steps, loss)` is called after every step with the reconstruction loss it evaluated."""
    import time

    dtype = dtype or next(generator.parameters()).dtype
    device = init_codes.device
    start = time.perf_counter()
    w0 = init_codes.detach().float().clone()  # a normal tensor even when made under inference_mode
    w = w0.clone().requires_grad_(True)
    kwargs = {"input_is_latent": True, "randomize_noise": False, **(generator_kwargs or {})}
    target = target.detach().clone()

    def render(codes):
        image, _ = generator([codes.to(dtype)], **kwargs)
        return image

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if steps == 0:
            with torch.no_grad():
                before = float(loss(render(w0), target)[0])
            return RefineResult(w0.clone(), before, before, time.perf_counter() - start, 0)
        opt = torch.optim.Adam([w], lr=lr)
        before = None
        best = best_total = best_rec = None
        for step in range(steps + 1):  # the extra pass evaluates the last update, without a step
            with torch.enable_grad() if step < steps else torch.no_grad():
                rec, _ = loss(render(w if step < steps else w.detach()), target)
                total = rec + pull * F.mse_loss(w, w0) if pull > 0 else rec
            if before is None:
                before = float(rec.detach())
            if best_total is None or float(total.detach()) < best_total:
                best, best_total, best_rec = w.detach().clone(), float(total.detach()), float(rec.detach())
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if progress is not None:
                progress(step + 1, steps, float(rec.detach()))
    return RefineResult(best, before, best_rec, time.perf_counter() - start, steps)
