"""Type aliases and small helpers the pipeline's methods share."""

from typing import Optional, Sequence, Union

import torch

#: one style code [N|1, 512], or several (a list of them, or [N|1, J, 512]) mixed with `style_weights`
StyleCodes = Union[torch.Tensor, Sequence[torch.Tensor]]
#: n_latent values in [0, 1], or a preset name (`blendgan.controls.PRESETS`)
LayerWeights = Union[str, Sequence[float], None]

__all__ = ["LayerWeights", "StyleCodes", "weights_tuple"]


def weights_tuple(style_weights: Optional[Sequence[float]]) -> "tuple[float, ...] | None":
    """The style-mix weights as a tuple of floats (None stays None), as `Controls` keeps them."""
    return None if style_weights is None else tuple(float(k) for k in style_weights)
