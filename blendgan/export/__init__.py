"""Export of the generator and the encoders to ONNX (needs the `export` extra: onnx, onnxscript).

    from blendgan.export import export_generator, export_psp_encoder, export_style_encoder
    export_generator(generator, "models/generator.onnx")

`blendgan export` writes all of them; `python -m blendgan.onnx_run` runs them without PyTorch.
"""

from .graphs import ControlledGeneratorGraph, EncoderGraph, FixedStyleGeneratorGraph, GeneratorGraph, reference_ops
from .onnx_export import (
    DEFAULT_OPSET,
    EXPORTERS,
    export_controlled_generator,
    export_fixed_style_generator,
    export_generator,
    export_module,
    export_psp_encoder,
    export_style_encoder,
)

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "ControlledGeneratorGraph",
    "EncoderGraph",
    "FixedStyleGeneratorGraph",
    "GeneratorGraph",
    "export_controlled_generator",
    "export_fixed_style_generator",
    "export_generator",
    "export_module",
    "export_psp_encoder",
    "export_style_encoder",
    "reference_ops",
]
