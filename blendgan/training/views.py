"""Style-preserving views for the contrastive training of the style encoder.

A view changes what is shown, not how it is painted: a random resized crop (area fraction and aspect),
a horizontal flip, a small rotation and a small zoom, all folded into one affine map per image and applied
with one batched `grid_sample`. Colour, blur and texture changes are deliberately absent: they alter the
style the encoder must learn to recognise.

Randomness comes only from the `torch.Generator` passed in, and the parameters are drawn for a whole
batch first (`sample_view_params`) so that every rank of a distributed run can draw the global batch's
parameters and apply its own slice: R ranks then see exactly the views one process would.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ViewConfig:
    """Ranges of the random view transform."""

    scale: tuple = (0.35, 1.0)  # crop area as a fraction of the image
    ratio: tuple = (3 / 4, 4 / 3)  # crop aspect ratio (width / height)
    max_rotation: float = 10.0  # degrees, uniform in [-max, max]
    zoom: tuple = (0.9, 1.1)  # extra isotropic scale change of the crop
    flip_p: float = 0.5  # probability of a horizontal flip


def sample_view_params(n, generator, config=ViewConfig()):
    """Draw the transform of `n` views: a dict of float64 tensors [n] (CPU), consuming a fixed amount of
    the generator's stream per call (so the stream position depends only on how many calls were made)."""
    u = torch.rand(n, 6, generator=generator, dtype=torch.float64)
    lo, hi = config.scale
    area = lo + (hi - lo) * u[:, 0]
    log_r = math.log(config.ratio[0]) + (math.log(config.ratio[1]) - math.log(config.ratio[0])) * u[:, 1]
    aspect = torch.exp(log_r)
    half_w = torch.sqrt(area * aspect).clamp(max=1.0)  # half-extent in normalised coordinates [-1, 1]
    half_h = torch.sqrt(area / aspect).clamp(max=1.0)
    zoom = config.zoom[0] + (config.zoom[1] - config.zoom[0]) * u[:, 5]
    return {
        "half_w": half_w * zoom,
        "half_h": half_h * zoom,
        "cx": (1 - half_w) * (2 * u[:, 2] - 1),
        "cy": (1 - half_h) * (2 * u[:, 3] - 1),
        "angle": torch.deg2rad(config.max_rotation * (2 * u[:, 4] - 1)),
        "flip": (torch.rand(n, generator=generator, dtype=torch.float64) < config.flip_p).to(torch.float64),
    }


def slice_params(params, start, stop):
    """The parameters of views start ... stop - 1 (one rank's share of a global batch)."""
    return {k: v[start:stop] for k, v in params.items()}


def affine_matrices(params):
    """[n, 2, 3] maps from output to input coordinates: p_in = c + R(angle) · diag(±half_w, half_h) · p_out."""
    cos, sin = torch.cos(params["angle"]), torch.sin(params["angle"])
    sx = params["half_w"] * (1 - 2 * params["flip"])
    sy = params["half_h"]
    row0 = torch.stack([cos * sx, -sin * sy, params["cx"]], dim=1)
    row1 = torch.stack([sin * sx, cos * sy, params["cy"]], dim=1)
    return torch.stack([row0, row1], dim=1)


def apply_views(images, params, out_size):
    """Render the views of `images` [n, C, H, W] ([-1, 1]) at out_size x out_size (bilinear; pixels outside
    the image are mirrored back in, so a rotation adds no borders of a foreign colour)."""
    theta = affine_matrices(params).to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, [images.shape[0], images.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_views(images, generator, out_size, config=ViewConfig()):
    """One random view of every image (parameters drawn from `generator`)."""
    return apply_views(images, sample_view_params(images.shape[0], generator, config), out_size)
