"""blendgan: arbitrary stylized face generation (BlendGAN, NeurIPS 2021) in pure PyTorch."""

__version__ = "0.1.0"

_LAZY = {
    "Generator": "blendgan.models.generator",
    "StyleEncoder": "blendgan.models.style_encoder",
    "GradualStyleEncoder": "blendgan.models.psp_encoder",
    "PSPEncoder": "blendgan.models.psp_encoder",
    "BlendGAN": "blendgan.pipeline",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    # Lazy so that `import blendgan` (e.g. for the CLI's --help) does not import torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'blendgan' has no attribute {name!r}")
