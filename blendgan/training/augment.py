"""Differentiable augmentation of everything the discriminators see, with StyleGAN2-ADA's adaptive probability
(Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"), written from the paper.

Each transform is applied to a sample with probability p, independently per transform and per sample, to reals
and fakes alike; as long as p stays below about 0.8 the identity remains the most likely outcome of every
transform, so the discriminator still sees the true distribution "on average" and the augmentations do not
leak into the generator (the paper's non-leaking argument). Every operation is differentiable w.r.t. the
image (one bilinear resampling for the geometric part, affine colour maps, a multiplicative cutout mask), so
G's gradient flows through the augmented fakes and R1 is taken through the augmented reals.

The transforms (the paper's names; docs/training.md says why these for artworks):
    xflip        mirror left-right
    translate    integer translation, uniform within +/- 1/8 of the size
    scale        isotropic scale, log2-normal with std 0.2
    rotate       rotation, uniform in (-180, 180] degrees
    brightness   + N(0, 0.2) on [-1, 1] images
    contrast     x 2^N(0, 0.5) about mid-grey
    saturation   chroma (distance from the grey axis) x 2^N(0, 1)
    cutout       a square of half the size, centred anywhere, set to 0
The geometric ones are combined into one affine map and resampled once (reflection padding). Hue rotation
and luma flips of the paper's "bgc" set are left out: they change an artwork's palette, which is part of its
style.

Randomness: the draws of a sample are a function of (seed, stream, global sample position) only
(`data.sample_generator`), so N processes with batch B augment exactly as one process with batch N·B and a
resumed run augments as an uninterrupted one; a transform's draws are made whether or not it is applied, so
changing p never shifts another sample's numbers.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from . import data

TRANSFORMS = ("xflip", "translate", "scale", "rotate", "brightness", "contrast", "saturation", "cutout")
GEOMETRIC = ("xflip", "translate", "scale", "rotate")
MODES = ("none", "fixed", "ada")

TRANSLATE_MAX = 0.125  # fraction of the size
SCALE_STD = 0.2  # log2 units
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2 units
SATURATION_STD = 1.0  # log2 units
CUTOUT_SIZE = 0.5  # fraction of the size


def draw(seed: int, stream: int, positions: Sequence[int], size: int) -> dict[str, torch.Tensor]:
    """Per sample: a uniform gate for each transform (applied when gate < p) and its parameters. The same
    numbers are drawn for every p."""
    rows = []
    for pos in positions:
        g = data.sample_generator(seed, stream, pos)
        gates = torch.rand(len(TRANSFORMS), generator=g, dtype=torch.float64)
        uni = torch.rand(5, generator=g, dtype=torch.float64)  # tx, ty, angle, cutout cx, cy
        nrm = torch.randn(4, generator=g, dtype=torch.float64)  # scale, brightness, contrast, saturation
        rows.append(torch.cat([gates, uni, nrm]))
    t = torch.stack(rows)
    k = len(TRANSFORMS)
    uni, nrm = t[:, k : k + 5], t[:, k + 5 :]
    return {
        "gates": t[:, :k],
        # integer pixels: round(u * 2·max·size - max·size)
        "translate": torch.round((uni[:, :2] * 2 - 1) * TRANSLATE_MAX * size),
        "angle": (uni[:, 2] * 2 - 1) * math.pi,
        "cutout": uni[:, 3:5],
        "scale": torch.exp2(nrm[:, 0] * SCALE_STD),
        "brightness": nrm[:, 1] * BRIGHTNESS_STD,
        "contrast": torch.exp2(nrm[:, 2] * CONTRAST_STD),
        "saturation": torch.exp2(nrm[:, 3] * SATURATION_STD),
    }


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))


def _geometric(x: torch.Tensor, params: dict, on: dict[str, torch.Tensor]) -> torch.Tensor:
    """One bilinear resampling by the composed affine map of the applied geometric transforms; samples with
    none applied are returned unchanged (exactly)."""
    n, _, h, w = x.shape
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3).clone()

    def where(mask, m):
        return torch.where(mask[:, None, None], m, eye)

    # the matrices map an output pixel's normalised coordinates to the input's (affine_grid's convention)
    flip = eye.clone()
    flip[:, 0, 0] = -1
    shift = eye.clone()
    shift[:, 0, 2] = -params["translate"][:, 0] * 2 / w  # content moves by +t pixels: sample at out - t
    shift[:, 1, 2] = -params["translate"][:, 1] * 2 / h
    zoom = eye.clone()
    zoom[:, 0, 0] = zoom[:, 1, 1] = 1 / params["scale"]
    a = params["angle"]
    rot = eye.clone()
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = a.cos(), a.sin(), -a.sin(), a.cos()
    m = where(on["xflip"], flip) @ where(on["rotate"], rot) @ where(on["scale"], zoom) @ where(on["translate"], shift)
    moved = on["xflip"] | on["translate"] | on["scale"] | on["rotate"]
    if not bool(moved.any()):
        return x
    grid = F.affine_grid(m[:, :2].to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return torch.where(_per_sample(moved, x).bool(), out, x)


def apply(x: torch.Tensor, p: float, params: dict, transforms: Sequence[str] = TRANSFORMS) -> torch.Tensor:
    """x [N, C, H, W] in [-1, 1] with each of `transforms` applied to the samples whose gate is below p.
    p = 0 returns x itself."""
    if p <= 0:
        return x
    on = {name: (params["gates"][:, i] < p) & (name in transforms) for i, name in enumerate(TRANSFORMS)}
    if any(bool(on[t].any()) for t in GEOMETRIC):
        x = _geometric(x, params, on)

    def where(name, y):
        return torch.where(_per_sample(on[name], x).bool(), y, x)

    if bool(on["brightness"].any()):
        x = where("brightness", x + _per_sample(params["brightness"], x))
    if bool(on["contrast"].any()):
        x = where("contrast", x * _per_sample(params["contrast"], x))
    if bool(on["saturation"].any()) and x.shape[1] == 3:
        grey = x.mean(dim=1, keepdim=True)  # projection on the grey axis (1, 1, 1)/sqrt(3)
        x = where("saturation", grey + (x - grey) * _per_sample(params["saturation"], x))
    if bool(on["cutout"].any()):
        h, w = x.shape[-2:]
        ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float64) + 0.5) / w
        c = params["cutout"]
        inside_x = (xs[None, :] - c[:, :1]).abs() < CUTOUT_SIZE / 2
        inside_y = (ys[None, :] - c[:, 1:]).abs() < CUTOUT_SIZE / 2
        hole = inside_y[:, None, :, None] & inside_x[:, None, None, :]
        keep = (~hole).to(device=x.device, dtype=x.dtype)
        x = where("cutout", x * keep)
    return x


def augment(
    x: torch.Tensor,
    p: float,
    seed: int,
    stream: int,
    positions: Sequence[int],
    transforms: Sequence[str] = TRANSFORMS,
) -> torch.Tensor:
    """`apply` with the draws of (seed, stream, positions)."""
    if p <= 0:
        return x
    return apply(x, p, draw(seed, stream, positions, x.shape[-1]), transforms)


class AdaptiveAugment:
    """One discriminator's augmentation and its probability p.

    mode 'none': identity; 'fixed': p stays; 'ada': every `interval` steps p moves by
    sign(r_t - target) · (global batch · interval) / (ada_kimg · 1000), clamped to [0, 1], where
    r_t = E[sign(D(augmented reals))] over the interval (StyleGAN2-ADA's overfitting heuristic)."""

    def __init__(self, mode: str, p: float, target: float, ada_kimg: float, interval: int, seed: int) -> None:
        self.mode, self.p = mode, float(p) if mode != "none" else 0.0
        self.target, self.ada_kimg, self.interval, self.seed = float(target), float(ada_kimg), int(interval), int(seed)
        self.sign_sum, self.count = 0.0, 0  # over the steps of the current interval (global means)
        self.last_rt = None

    def __call__(self, x: torch.Tensor, stream: int, positions) -> torch.Tensor:
        return augment(x, self.p, self.seed, stream, positions)

    def observe(self, sign_mean: float) -> None:
        """Record one step's E[sign(D(reals))] (already averaged over the processes)."""
        if self.mode == "ada":
            self.sign_sum += float(sign_mean)
            self.count += 1

    def adjust(self, step: int, images_per_step: int) -> None:
        """After step `step` (0-based): at the end of each interval, move p by the rule above."""
        if self.mode != "ada" or (step + 1) % self.interval or not self.count:
            return
        rt = self.sign_sum / self.count
        direction = (rt > self.target) - (rt < self.target)
        self.p = min(1.0, max(0.0, self.p + direction * images_per_step * self.interval / (self.ada_kimg * 1000)))
        self.sign_sum, self.count, self.last_rt = 0.0, 0, rt

    def state_dict(self) -> dict:
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count, "last_rt": self.last_rt}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.sign_sum, self.count = float(state["p"]), float(state["sign_sum"]), int(state["count"])
        self.last_rt = state.get("last_rt")


__all__ = ["MODES", "TRANSFORMS", "AdaptiveAugment", "apply", "augment", "draw"]
