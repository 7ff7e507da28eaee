"""The BlendGAN pipeline: the one place that knows both the models and the outside world.

It owns the device, the dtype, batching and the caches of face codes and style codes. Images come in
as paths, PIL images or NumPy arrays (RGB) and go out as tensors in [-1, 1] (convert them with
`blendgan.io.images`). Commands are thin wrappers over this module.

    from blendgan import BlendGAN
    bg = BlendGAN.from_checkpoints("pretrained_models/blendgan.pt", "pretrained_models/psp_encoder.pt")
    codes = bg.encode_face("face.jpg")
    style = bg.embed_style("painting.jpg")
    image = bg.stylize(codes, style, add_weight_index=6)      # [1, 3, size, size] in [-1, 1]
    bg.to_rgb(image)[0]                                         # H x W x 3 uint8 RGB
"""

from ..devices import resolve_device, resolve_dtype
from .core import DEFAULT_BATCH_SIZE, BlendGAN
from .refining import RefineProgress
from .types import LayerWeights, StyleCodes

__all__ = [
    "BlendGAN",
    "DEFAULT_BATCH_SIZE",
    "LayerWeights",
    "RefineProgress",
    "StyleCodes",
    "resolve_device",
    "resolve_dtype",
]
