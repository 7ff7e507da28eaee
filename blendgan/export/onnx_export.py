"""Write ONNX files of the generator and the two encoders.

The graphs are the export forms of `blendgan.export.graphs`. Two exporters are supported:

- ``dynamo`` (default): torch.export-based `torch.onnx.export(..., dynamo=True)`, the maintained path;
  needs the `onnxscript` package. The weights go to a side file ``<name>.onnx.data`` (ONNX external
  data), so the protobuf stays far below its 2 GB limit (the style encoder's matrix alone is 1.25 GB);
  keep the two files together.
- ``torchscript``: the legacy tracer (`dynamo=False`), kept for old runtimes/opsets; one file per model.

Files are written in a hidden temporary folder beside the target and moved into place when complete
(weights file first, model file last), so an interrupted export never leaves a half-written model.
"""

import contextlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import torch

from ..errors import UsageError
from .graphs import ControlledGeneratorGraph, EncoderGraph, FixedStyleGeneratorGraph, GeneratorGraph, reference_ops

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = 18
EXAMPLE_BATCH = 2  # a batch of 1 could be specialised by the capture; the batch axis is dynamic anyway
ENCODER_INPUT_SIZE = 256  # what PSPEncoder / StyleEncoder pool every image to


@contextlib.contextmanager
def _quiet():
    """The exporters print progress lines and library warnings that say nothing to our users."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def export_module(
    module: torch.nn.Module,
    args: "tuple[torch.Tensor, ...]",
    path: "str | os.PathLike[str]",
    *,
    input_names: "Sequence[str]",
    output_names: "Sequence[str]",
    batched: "Sequence[str]",
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    dynamic_styles: "Sequence[str]" = (),
) -> "list[Path]":
    """Export `module(*args)` to `path` with a dynamic batch axis on the inputs named in `batched` and
    on every output, and a dynamic axis 1 (number of styles) on those in `dynamic_styles`. Returns the list
    of files written (model first)."""
    if exporter not in EXPORTERS:
        raise UsageError(f"--exporter {exporter!r}: choose one of {', '.join(EXPORTERS)}")
    path = Path(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise UsageError(
            f"{path.parent}: cannot write there ({err.strerror or err}); pass a writable --outdir"
        ) from None
    try:
        target = tmp / path.name
        with _quiet(), torch.no_grad():
            if exporter == "dynamo":
                batch = torch.export.Dim("batch", min=1)
                styles = torch.export.Dim("styles", min=1)
                shapes = {
                    name: ({0: batch, **({1: styles} if name in dynamic_styles else {})} if name in batched else None)
                    for name in input_names
                }
                program = torch.onnx.export(
                    module,
                    tuple(args),
                    dynamo=True,
                    opset_version=opset,
                    input_names=list(input_names),
                    output_names=list(output_names),
                    dynamic_shapes=shapes,
                    verbose=False,
                )
                program.save(target, external_data=True)
            else:
                axes = {
                    name: {0: "batch", **({1: "styles"} if name in dynamic_styles else {})}
                    for name in [*batched, *output_names]
                }
                torch.onnx.export(
                    module,
                    tuple(args),
                    str(target),
                    dynamo=False,
                    opset_version=opset,
                    input_names=list(input_names),
                    output_names=list(output_names),
                    dynamic_axes=axes,
                )
        written = sorted(tmp.iterdir(), key=lambda f: f.name == path.name)  # the model file last
        for f in written:
            os.replace(f, path.parent / f.name)
        return [path.parent / f.name for f in reversed(written)]
    except OSError as err:
        raise UsageError(f"{path}: cannot write the file ({err.strerror or err}); pass a writable --outdir") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _like(module):
    p = next(module.parameters())
    return dict(dtype=p.dtype, device=p.device)


def export_generator(generator: torch.nn.Module, path: "str | os.PathLike[str]", **kwargs) -> "list[Path]":
    """generator.onnx: (codes [N, n_latent, 512], z_embed [N, 512], add_weight_index int64 [1]) -> image."""
    like = _like(generator)
    args = (
        torch.zeros(EXAMPLE_BATCH, generator.n_latent, 512, **like),
        torch.zeros(EXAMPLE_BATCH, 512, **like),
        torch.tensor([6], dtype=torch.int64),
    )
    return export_module(
        GeneratorGraph(generator).eval(),
        args,
        path,
        input_names=("codes", "z_embed", "add_weight_index"),
        output_names=("image",),
        batched=("codes", "z_embed"),
        **kwargs,
    )


def export_controlled_generator(generator: torch.nn.Module, path: "str | os.PathLike[str]", **kwargs) -> "list[Path]":
    """generator_controls.onnx: (codes [N, n_latent, 512], z_embed [N, J, 512], style_weights [N, J],
    blend_weights [N, n_latent]) -> image: the stylization controls (strength, per-layer weights, colour
    keeping, style mixing) as inputs; the runner computes the blend weights with `blendgan.controls`."""
    like = _like(generator)
    n, j = EXAMPLE_BATCH, 3  # the styles axis is dynamic too: 3 so that it is not specialised to 1 or 2
    args = (
        torch.zeros(n, generator.n_latent, 512, **like),
        torch.zeros(n, j, 512, **like),
        torch.full((n, j), 1.0 / j, **like),
        torch.ones(n, generator.n_latent, **like),
    )
    names = ("codes", "z_embed", "style_weights", "blend_weights")
    return export_module(
        ControlledGeneratorGraph(generator).eval(),
        args,
        path,
        input_names=names,
        output_names=("image",),
        batched=names,
        dynamic_styles=("z_embed", "style_weights"),
        **kwargs,
    )


def export_fixed_style_generator(
    generator: torch.nn.Module,
    z_embed: torch.Tensor,
    add_weight_index: int,
    path: "str | os.PathLike[str]",
    **kwargs,
) -> "list[Path]":
    """One-input model for one style: codes [N, n_latent, 512] -> image (z_embed and index baked in)."""
    like = _like(generator)
    graph = FixedStyleGeneratorGraph(generator, z_embed.to(**like), add_weight_index).eval()
    args = (torch.zeros(EXAMPLE_BATCH, generator.n_latent, 512, **like),)
    return export_module(
        graph, args, path, input_names=("codes",), output_names=("image",), batched=("codes",), **kwargs
    )


def _export_encoder(encoder, path, output_name, **kwargs):
    image = torch.zeros(EXAMPLE_BATCH, 3, ENCODER_INPUT_SIZE, ENCODER_INPUT_SIZE, **_like(encoder))
    with reference_ops(encoder):
        return export_module(
            EncoderGraph(encoder).eval(),
            (image,),
            path,
            input_names=("image",),
            output_names=(output_name,),
            batched=("image",),
            **kwargs,
        )


def export_psp_encoder(psp_encoder: torch.nn.Module, path: "str | os.PathLike[str]", **kwargs) -> "list[Path]":
    """psp_encoder.onnx: aligned face image [N, 3, 256, 256] in [-1, 1] -> codes [N, n_latent, 512]
    (latent_avg included)."""
    return _export_encoder(psp_encoder, path, "codes", **kwargs)


def export_style_encoder(style_encoder: torch.nn.Module, path: "str | os.PathLike[str]", **kwargs) -> "list[Path]":
    """style_encoder.onnx: artwork [N, 3, 256, 256] in [-1, 1] -> z_embed [N, 512]."""
    return _export_encoder(style_encoder, path, "z_embed", **kwargs)
