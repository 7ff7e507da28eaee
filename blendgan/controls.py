"""The stylization controls: strength, per-layer style weights, colour keeping and style mixing.

BlendGAN's Weighted Blending Module gives layer i the code `a_i * w_face_i + (1 - a_i) * w_style`, `a` the
learned `add_weight` (clamped to [0, 1]). The controls rewrite `a` without retraining:

    a_i' = 1 - s * l_i * (1 - a_i)

with `s` the strength and `l` the per-layer style weights (default: the step of `add_weight_index`, 0 for
the first k layers and 1 after, which gives today's `a` exactly). `--preserve_color` sets `l_i = 0` on the
colour layers of the generator size (`color_layers`). Several styles mix in the style mapping's W space:
`w_style = sum_j k_j * embedding(z_j)` with the weights normalised to sum 1.

This module is pure Python (no torch, no numpy): the PyTorch pipeline and the torch-free ONNX runner share it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import UsageError

PRESETS = ("all", "structure", "texture")
STRUCTURE_MAX_RESOLUTION = 32  # `structure`: the layers that draw at 4 ... 32 px; `texture`: 64 px and finer
# --preserve_color keeps the face's code on the layers drawing at this resolution and finer. Chosen from the
# per-layer mean colour shift measured on the test weights
# (docs/controls.md, "Keep the face's colours", with the recipe to measure it again).
COLOR_MIN_RESOLUTION = {}  # size -> resolution; sizes not listed use DEFAULT_COLOR_MIN_RESOLUTION
DEFAULT_COLOR_MIN_RESOLUTION = 64


def layer_resolutions(n_latent: int) -> list[int]:
    """Resolution (px) of the synthesis layer each latent index drives (the finer one where a code feeds two).

    Index 0 drives the 4 px convolution; index 2m+1 the upsampling convolution to 2^(m+3) px (and the
    2^(m+2) px ToRGB); index 2m the second 2^(m+2) px convolution; the last index only the final ToRGB."""
    res = []
    for i in range(n_latent):
        if i == 0:
            res.append(4)
        elif i == n_latent - 1:
            res.append(2 ** ((n_latent + 2) // 2))
        else:
            res.append(2 ** ((i + 1) // 2 + 2))
    return res


def step_weights(n_latent: int, add_weight_index: int | None) -> list[float]:
    """The per-layer style weights equal to `add_weight_index = k`: 0 for the first k layers, 1 after
    (Python slice semantics, as the generator: negative k counts from the end, None = no override)."""
    kept = set(range(n_latent)[:add_weight_index]) if add_weight_index is not None else set()
    return [0.0 if i in kept else 1.0 for i in range(n_latent)]


def preset_weights(name: str, n_latent: int) -> list[float]:
    """A named vector of per-layer style weights (see PRESETS)."""
    res = layer_resolutions(n_latent)
    if name == "all":
        return [1.0] * n_latent
    if name == "structure":
        return [1.0 if r <= STRUCTURE_MAX_RESOLUTION else 0.0 for r in res]
    if name == "texture":
        return [0.0 if r <= STRUCTURE_MAX_RESOLUTION else 1.0 for r in res]
    raise UsageError(f"--layer_weights {name!r}: give {n_latent} numbers in [0, 1] or a preset ({', '.join(PRESETS)})")


def color_layers(n_latent: int) -> list[int]:
    """Layer indices whose code the face keeps with --preserve_color (the fine layers, which set the colours)."""
    size = 2 ** ((n_latent + 2) // 2)
    low = COLOR_MIN_RESOLUTION.get(size, DEFAULT_COLOR_MIN_RESOLUTION)
    return [i for i, r in enumerate(layer_resolutions(n_latent)) if r >= low]


def _number(value, what):
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} {value!r}: not a number") from None
    if not math.isfinite(x):
        raise UsageError(f"{what} {value!r}: give a finite number")
    return x


def parse_numbers(text, what) -> tuple[float, ...]:
    """'0,0.5 1' or a list of numbers -> a tuple of floats."""
    items = re.split(r"[,\s]+", text.strip()) if isinstance(text, str) else list(text)
    items = [v for v in items if v != ""]
    if not items:
        raise UsageError(f"{what}: give at least one number")
    return tuple(_number(v, what) for v in items)


def parse_range(text, what, low=0.0, high=1.0) -> tuple[float, float]:
    """'0.7' -> (0.7, 0.7); '0.5-1' -> (0.5, 1.0), both inside [low, high]."""
    value = str(text).strip()
    match = re.fullmatch(r"([0-9.eE+]+)\s*-\s*([0-9.eE+]+)", value)
    lo, hi = (_number(match[1], what), _number(match[2], what)) if match else (_number(value, what),) * 2
    if not (low <= lo <= high and low <= hi <= high):
        raise UsageError(f"{what} {text}: must lie in [{low:g}, {high:g}]")
    if lo > hi:
        raise UsageError(f"{what} {text}: the range must go from low to high (e.g. 0.5-1)")
    return lo, hi


@dataclass(frozen=True)
class Controls:
    """Validated stylization controls; the defaults give the original output exactly.

    strength: s in [0, 1]. layer_weights: None (the add_weight_index step), a preset name or n_latent values
    in [0, 1]. preserve_color: the colour layers keep the face's code. style_weights: mix weights of several
    styles (non-negative, not all zero; normalised to sum 1), None for one style."""

    strength: float = 1.0
    layer_weights: tuple[float, ...] | str | None = None
    preserve_color: bool = False
    style_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        s = _number(self.strength, "--strength")
        if not 0.0 <= s <= 1.0:
            raise UsageError(f"--strength {self.strength}: must lie in [0, 1] (0: the face, 1: the full style)")
        object.__setattr__(self, "strength", s)
        lw = self.layer_weights
        if isinstance(lw, str):
            if lw.strip() in PRESETS:
                lw = lw.strip()
            else:
                if not re.fullmatch(r"[0-9.eE+\-,\s]+", lw):
                    raise UsageError(
                        f"--layer_weights {lw!r}: give one value in [0, 1] per layer or a preset ({', '.join(PRESETS)})"
                    )
                lw = parse_numbers(lw, "--layer_weights")
        if lw is not None and not isinstance(lw, str):
            lw = tuple(_number(v, "--layer_weights") for v in lw)
            bad = [v for v in lw if not 0.0 <= v <= 1.0]
            if bad:
                raise UsageError(f"--layer_weights: every value must lie in [0, 1], got {bad[0]:g}")
        object.__setattr__(self, "layer_weights", lw)
        object.__setattr__(self, "preserve_color", bool(self.preserve_color))
        if self.style_weights is not None:
            k = tuple(_number(v, "--style_weights") for v in self.style_weights)
            if any(v < 0 for v in k):
                raise UsageError(f"--style_weights {' '.join(f'{v:g}' for v in k)}: weights must not be negative")
            if not any(v > 0 for v in k):
                raise UsageError("--style_weights: at least one weight must be above 0")
            object.__setattr__(self, "style_weights", k)

    @property
    def blends_default(self) -> bool:
        """True when the blend weights are the original ones (strength 1, no layer weights, no colour keeping)."""
        return self.strength == 1.0 and self.layer_weights is None and not self.preserve_color

    def layer_vector(self, n_latent: int, add_weight_index: int | None = None) -> list[float]:
        """Per-layer style weights l (before the strength): the given vector or preset, else the step of
        add_weight_index; zero on the colour layers with preserve_color."""
        lw = self.layer_weights
        if lw is None:
            vec = step_weights(n_latent, add_weight_index)
        elif isinstance(lw, str):
            vec = preset_weights(lw, n_latent)
        else:
            if len(lw) != n_latent:
                raise UsageError(
                    f"--layer_weights: give {n_latent} values for this {2 ** ((n_latent + 2) // 2)} px "
                    f"generator, got {len(lw)}"
                )
            vec = list(lw)
        if self.preserve_color:
            for i in color_layers(n_latent):
                vec[i] = 0.0
        return vec

    def style_amounts(self, n_latent: int, add_weight_index: int | None = None) -> list[float] | None:
        """t = s * l per layer (how much style each layer takes, in [0, 1]); None for the original blend."""
        if self.blends_default:
            return None
        return [self.strength * v for v in self.layer_vector(n_latent, add_weight_index)]

    def mix_weights(self, n_styles: int) -> list[float] | None:
        """Normalised style mix weights for n_styles styles (None: one style, no mixing)."""
        k = self.style_weights
        if k is None:
            if n_styles == 1:
                return None
            return [1.0 / n_styles] * n_styles
        if len(k) != n_styles:
            raise UsageError(f"--style_weights: {len(k)} weights for {n_styles} style images; give one per --style_img")
        total = sum(k)
        return [v / total for v in k]


def blend_weights(add_weight, amounts):
    """a' = 1 - t * (1 - a) per layer in plain Python (a: clamped add_weight values; the torch-free runner)."""
    return [1.0 - t * (1.0 - a) for a, t in zip(add_weight, amounts)]


def stack_styles(z_embed, controls: Controls):
    """(z_embed, mix weights [1, J] or None): one style code as given, or J styles (a list of [N|1, 512] codes,
    or [N|1, J, 512]) stacked to [N|1, J, 512] with their weights normalised by `controls`."""
    import torch

    several = isinstance(z_embed, (list, tuple)) or z_embed.ndim == 3
    if not several:
        if controls.style_weights is not None and len(controls.style_weights) != 1:
            raise UsageError(f"{len(controls.style_weights)} style weights for one style code")
        return z_embed, None
    if isinstance(z_embed, (list, tuple)):
        rows = [z.reshape(-1, z.shape[-1]) for z in z_embed]
        n = max(r.shape[0] for r in rows)
        z_embed = torch.stack([r.expand(n, -1) for r in rows], dim=1)
    k = controls.mix_weights(z_embed.shape[1])
    return z_embed, torch.tensor([k], dtype=torch.float32)
