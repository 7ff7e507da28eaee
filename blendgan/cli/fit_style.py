"""`blendgan fit-style REF... --outdir RUN`: fit a style the encoders get wrong, as two small files.

Stage 1 fits the style code (RUN/style_code.safetensors, for `--style_code`), stage 2 a low-rank adapter of
the generator (RUN/adapter.safetensors, for `--adapter FILE[:SCALE]`); the base checkpoint is not changed.
The run folder follows the trainers' conventions (config.json, log.jsonl, checkpoints/, samples/ with the
before/after sheets, --resume, torchrun). Flags come from blendgan.training.config.FitStyleConfig.
"""

import argparse
import os

from .train import add_config_flags, config_from_args

HELP = "fit a style from one to a few reference artworks: a style-code file and a small adapter (LoRA) file"

EXAMPLES = """
blendgan fit-style my_ref.jpg --outdir runs/my_style --ckpt pretrained_models/blendgan.pt --psp_encoder_ckpt pretrained_models/psp_encoder.pt
blendgan fit-style my_ref.jpg --outdir runs/my_style --quick
"""  # noqa: E501 (example command lines are kept whole)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..training.config import FitStyleConfig

    parser.add_argument(
        "references",
        nargs="*",
        metavar="REF",
        help="reference artworks: the face in the style to fit, FFHQ-aligned or a square crop (none with --resume)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the quick preset for a CPU: --batch 1 --iters 150 --code_steps 50 (flags given beside it win; "
        "docs/fit_style.md compares it with the default)",
    )
    add_config_flags(parser, FitStyleConfig, skip=("references",))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import UsageError
    from ..training.config import FIT_STYLE_QUICK, FitStyleConfig
    from ..training.fit_style_loop import fit_style

    if args.quick:
        if getattr(args, "resume", False):
            raise UsageError("--quick is a preset for a new fit: a resumed run keeps its saved settings (drop --quick)")
        for name, value in FIT_STYLE_QUICK.items():
            if not hasattr(args, name):  # flags not given are absent (argparse.SUPPRESS)
                setattr(args, name, value)
    del args.quick
    if not args.references:
        del args.references  # `--resume` alone: the run's saved references
    if not getattr(args, "resume", False):
        from ._common import weight_path

        for flag, name in (("ckpt", "blendgan"), ("psp_encoder_ckpt", "psp_encoder")):
            if not getattr(args, flag, ""):
                setattr(args, flag, weight_path("", name))
    cfg, given = config_from_args(FitStyleConfig, args)
    step = fit_style(cfg, given=given)
    if os.environ.get("RANK", "0") == "0":
        out = Path(cfg.outdir)
        for name in ("style_code.safetensors", "adapter.safetensors"):
            f = out / name
            if f.is_file():
                print(f"{f} ({f.stat().st_size / 1e6:.2f} MB)")
        report = out / "report.json"
        if report.is_file():
            import json

            taken = json.loads(report.read_text())["style_taken"]
            print(
                "style taken (cosine of style codes, result vs reference, on the sheet faces): "
                + ", ".join(f"{k} {v:.3f}" for k, v in taken.items())
            )
        print(f"fitted to step {step}: {out} (before/after sheets in {out / 'samples'})")
    return 0
