"""Pure nn.Modules with the original state-dict layouts: no file I/O, no device choice."""

from .generator import Generator, n_latent_for_size, size_for_n_latent
from .layers import prepare_for_inference, use_reference_ops
from .psp_encoder import GradualStyleEncoder, PSPEncoder
from .style_encoder import StyleEncoder

__all__ = [
    "Generator",
    "GradualStyleEncoder",
    "PSPEncoder",
    "StyleEncoder",
    "n_latent_for_size",
    "prepare_for_inference",
    "size_for_n_latent",
    "use_reference_ops",
]
