"""``blendgan export``: write the generator, the pSp encoder and the style encoder as ONNX files."""

import argparse
import json
import time
from pathlib import Path

from ..defaults import ADD_WEIGHT_INDEX
from ..errors import UsageError
from . import _common

HELP = "export the generator and the encoders to ONNX (run them with python -m blendgan.onnx_run, no PyTorch)"
# the generator part writes generator.onnx (add_weight_index as an input) and generator_controls.onnx
# (per-layer blend weights and mixed styles as inputs: strength, --layer_weights, --preserve_color, style mix)

PARTS = ("generator", "psp_encoder", "style_encoder")
MANIFEST = "blendgan_onnx.json"
FIXED_STYLE_FILE = "generator_fixed_style.onnx"

EXAMPLES = """
blendgan export --ckpt pretrained_models/blendgan.pt --psp_encoder_ckpt pretrained_models/psp_encoder.pt --outdir onnx/
blendgan export --outdir onnx_cartoon/ --style_img test_imgs/style_imgs/cartoon_astronaut.jpg --parts generator
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _common.add_size_argument(parser)
    _common.add_checkpoint_arguments(parser)
    parser.add_argument("--channel_multiplier", type=int, default=2, help="generator channel multiplier (default: 2)")
    parser.add_argument(
        "--outdir",
        default=_common.default_outdir("export"),
        help="folder for the .onnx files and blendgan_onnx.json (default: %(default)s)",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="comma-separated subset of generator, psp_encoder, style_encoder (default: %(default)s)",
    )
    parser.add_argument(
        "--style_img",
        "--style_code",
        default=None,
        help=f"also write {FIXED_STYLE_FILE}: this style (an image, or a style_code.safetensors of "
        "`blendgan fit-style`) baked in, face codes -> image (default: none)",
    )
    parser.add_argument(
        "--add_weight_index",
        type=int,
        default=ADD_WEIGHT_INDEX,
        help=f"blending index baked into {FIXED_STYLE_FILE} (generator.onnx takes it as an input; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--opset", type=int, default=None, help="ONNX opset (default: 18; dynamo 18 to 23, torchscript 9 to 20)"
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "fp16"],
        help="weights and inputs/outputs in float32 or float16 (fp16: for GPU runtimes; default: %(default)s)",
    )
    parser.add_argument(
        "--exporter",
        default="dynamo",
        choices=["dynamo", "torchscript"],
        help="torch.onnx exporter: dynamo (torch.export-based) or the legacy torchscript tracer (default: %(default)s)",
    )


def _parts(value):
    parts = [p.strip() for p in value.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise UsageError(f"--parts {value!r}: choose from {', '.join(PARTS)} (comma-separated)")
    return parts


def _check_export_deps(exporter):
    missing = []
    for name in ("onnx",) + (("onnxscript",) if exporter == "dynamo" else ()):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(f"exporting needs {', '.join(missing)}: pip install 'blendgan[export]'")


def _check_opset(opset, exporter):
    """The opsets torch.onnx (2.9 ... 2.13) writes: dynamo 18 ... 23, the legacy tracer 9 ... 20."""
    low, high = (18, 23) if exporter == "dynamo" else (9, 20)
    if not low <= opset <= high:
        hint = "; older opsets need --exporter torchscript" if exporter == "dynamo" and opset < low else ""
        raise UsageError(f"--opset {opset}: the {exporter} exporter writes opsets {low} to {high}{hint}")


def _writable_outdir(path):
    import tempfile

    outdir = _common.make_outdir(path)
    try:
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as err:
        raise UsageError(
            f"cannot write in the output folder {outdir}: {err.strerror or err}; pass a writable --outdir"
        ) from None
    return outdir


def _report(files, seconds):
    from ..weights import format_bytes

    sizes = ", ".join(f"{f.name} {format_bytes(f.stat().st_size)}" for f in files)
    print(f"wrote {files[0]} ({sizes}) in {seconds:.1f}s")


def _write_manifest(outdir, entries):
    """blendgan_onnx.json: what the runner needs to know (sizes, files, baked settings); entries of an
    earlier export into the same folder are kept unless they are for another size or precision."""
    from ..io.files import write_bytes_atomic

    path = outdir / MANIFEST
    old = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
    same = all(old.get(k) == entries.get(k) for k in ("size", "precision", "encoder_input_size"))
    models = {**(old.get("models", {}) if same else {}), **entries["models"]}
    data = {**(old if same else {}), **entries, "models": models}
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    return path


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import weights
    from ..export import (
        DEFAULT_OPSET,
        export_controlled_generator,
        export_fixed_style_generator,
        export_generator,
        export_psp_encoder,
        export_style_encoder,
    )
    from ..export.onnx_export import ENCODER_INPUT_SIZE
    from ..fitting.adapter import generator_fingerprint, merge_adapter
    from ..fitting.style_code import is_style_code_file, read_style_code
    from ..io import images

    parts = _parts(args.parts)
    _check_export_deps(args.exporter)
    opset = args.opset or DEFAULT_OPSET
    _check_opset(opset, args.exporter)
    outdir = _writable_outdir(args.outdir)
    style_file_code = None
    if args.style_img and is_style_code_file(args.style_img):
        style_bgr = None
        style_file_code, _, style_meta = read_style_code(args.style_img)
    else:
        style_bgr = images.read_image_bgr(args.style_img) if args.style_img else None
    options = dict(opset=opset, exporter=args.exporter)
    half = args.precision == "fp16"

    generator, info = weights.load_generator(
        _common.weight_path(args.ckpt, "blendgan"), size=args.size, channel_multiplier=args.channel_multiplier
    )
    base_fingerprint = generator_fingerprint(generator)
    generator.base_fingerprint = base_fingerprint
    adapters = _common.adapter_args(args)
    for path, scale in adapters:  # merged into the exported weights
        merge_adapter(generator, path, scale)
    if style_file_code is not None and style_meta.get("base_fingerprint") != base_fingerprint:
        raise UsageError(
            f"--style_img {args.style_img}: this style code was fitted with another base checkpoint "
            f"({style_meta.get('base_checkpoint', '?')}); export with that --ckpt"
        )
    psp = None
    if "psp_encoder" in parts:
        psp = weights.load_psp_encoder(_common.weight_path(args.psp_encoder_ckpt, "psp_encoder"), size=generator.size)
    style_encoder = generator.embedder
    if args.style_encoder_ckpt:
        style_encoder = weights.load_style_encoder(args.style_encoder_ckpt)
    for model in (generator, psp, style_encoder):
        if model is not None:
            model.eval().requires_grad_(False)

    models = {}
    z_embed = None
    if style_bgr is not None:  # the style code in float32 on the PyTorch models, then baked in
        with torch.inference_mode():
            z_embed = style_encoder(images.bgr_to_tensor(style_bgr)).clone()
    elif style_file_code is not None:  # a fitted style code (blendgan fit-style)
        z_embed = style_file_code

    def export(name, fn, model, *fn_args):
        if half:
            model.half()
        start = time.perf_counter()
        files = fn(model, *fn_args, outdir / f"{name}.onnx", **options)
        _report(files, time.perf_counter() - start)
        models[name] = files[0].name

    if "generator" in parts:
        export("generator", export_generator, generator)
        export("generator_controls", export_controlled_generator, generator)  # the stylization controls
    if z_embed is not None:
        export(Path(FIXED_STYLE_FILE).stem, export_fixed_style_generator, generator, z_embed, args.add_weight_index)
    if psp is not None:
        export("psp_encoder", export_psp_encoder, psp)
        del psp
    if "style_encoder" in parts:
        export("style_encoder", export_style_encoder, style_encoder)

    entries = {
        "format": 1,
        "size": generator.size,
        "n_latent": generator.n_latent,
        "precision": args.precision,
        "encoder_input_size": ENCODER_INPUT_SIZE,
        "opset": opset,
        "exporter": args.exporter,
        "torch": torch.__version__,
        "models": models,
        "base_fingerprint": base_fingerprint,
    }
    if adapters:
        entries["adapters"] = [{"file": Path(p).name, "scale": k} for p, k in adapters]
    if "generator" in parts:  # the runner computes the controls' blend weights from the learned ones
        entries["add_weight"] = [float(v) for v in generator.add_weight.detach().float().clamp(0, 1).reshape(-1)]
    if z_embed is not None:
        entries["fixed_style"] = {"image": Path(args.style_img).name, "add_weight_index": args.add_weight_index}
    print(f"wrote {_write_manifest(outdir, entries)}")
    return 0
