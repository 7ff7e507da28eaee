"""ImageNet VGG19 weights for the trainers, from any file a user is likely to have:

- a BlendGAN checkpoint: `blendgan.pt` (the style encoder under `embedder.`) or `style_encoder.pt`;
- torchvision's `vgg19` weights file (`vgg19-dcbb9e9d.pth`: keys `features.N.weight/bias`, plus a
  `classifier.*` that is ignored), mapped by key name; torchvision itself is never imported.

Every file is read through blendgan.weights (weights-only, memory-mapped).
"""

from collections.abc import Mapping

import torch

from ..errors import CheckpointError
from ..models.style_encoder import StyleEncoder, vgg19_features
from ..weights import read_checkpoint, resolve_checkpoint_path, style_encoder_from_checkpoint

TORCHVISION_PREFIX = "features."


def _vgg_shapes():
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in vgg19_features().state_dict().items()}


def is_torchvision_vgg19(ckpt):
    """Whether a checkpoint dict is torchvision's VGG19 state dict (or holds it under `state_dict`)."""
    sd = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), Mapping) else ckpt
    return isinstance(sd, Mapping) and f"{TORCHVISION_PREFIX}0.weight" in sd


def torchvision_vgg19_features(ckpt, source="checkpoint"):
    """State dict of the 37-module `features` stack (keys `0.weight` ... `34.bias`) from torchvision's
    VGG19 file, checked key by key and shape by shape."""
    sd = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), Mapping) else ckpt
    out = {
        k[len(TORCHVISION_PREFIX) :]: v
        for k, v in sd.items()
        if isinstance(k, str) and k.startswith(TORCHVISION_PREFIX)
    }
    expected = _vgg_shapes()
    missing = [k for k in expected if k not in out]
    extra = [k for k in out if k not in expected]
    wrong = [
        k for k in expected if k in out and (not isinstance(out[k], torch.Tensor) or tuple(out[k].shape) != expected[k])
    ]
    if missing or extra or wrong:
        what = (
            f"missing features.{missing[0]}"
            if missing
            else f"unexpected features.{extra[0]}"
            if extra
            else f"features.{wrong[0]} has shape {list(getattr(out[wrong[0]], 'shape', []))}, "
            f"expected {list(expected[wrong[0]])}"
        )
        raise CheckpointError(
            f"{source} is not torchvision's VGG19 (configuration E) weights file: {what}; "
            f"pass vgg19-dcbb9e9d.pth, a style_encoder.pt or a blendgan.pt"
        )
    return {k: out[k] for k in expected}


def load_vgg19_features(path):
    """The frozen VGG19 `features` stack (nn.Sequential, eval mode) from a BlendGAN checkpoint or
    torchvision's VGG19 file."""
    src = resolve_checkpoint_path(path)
    ckpt = read_checkpoint(src)
    if is_torchvision_vgg19(ckpt):
        vgg = vgg19_features()
        vgg.load_state_dict(torchvision_vgg19_features(ckpt, src))
    else:
        vgg = style_encoder_from_checkpoint(ckpt, source=src).embedder.feature_extractor.vgg_layers
    return vgg.requires_grad_(False).eval()


def load_style_encoder_init(path):
    """(StyleEncoder, kind) to start training from. kind 'style_encoder': the whole encoder of a
    style_encoder.pt / blendgan.pt (tensors memory-mapped in the file's own dtypes, so a frozen layer stored
    in bfloat16 stays so, frozen); kind 'torchvision': the VGG19 of torchvision's file and a freshly
    initialised MLP (from the global torch RNG: seed it first)."""
    src = resolve_checkpoint_path(path)
    ckpt = read_checkpoint(src)
    if is_torchvision_vgg19(ckpt):
        features = torchvision_vgg19_features(ckpt, src)
        encoder = StyleEncoder()
        encoder.embedder.feature_extractor.vgg_layers.load_state_dict(features)
        return encoder.requires_grad_(False).eval(), "torchvision"
    return style_encoder_from_checkpoint(ckpt, source=src, dtype=None), "style_encoder"
