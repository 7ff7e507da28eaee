"""`blendgan directions --ckpt blendgan.pt --outdir DIR`: directions in W to edit faces with (`--edit`), found
in the checkpoint itself (`blendgan.jobs.directions`)."""

import argparse

from ..jobs.options import DirectionsOptions
from ._common import (
    RunReport,
    add_blend_arguments,
    add_checkpoint_arguments,
    add_runtime_arguments,
    add_size_argument,
    build_pipeline,
    default_outdir,
    make_outdir,
)

HELP = "find directions to edit faces with (smile, head turn, eyes, mouth; or SeFa's) in a checkpoint"
EXAMPLES = """
blendgan directions --ckpt pretrained_models/blendgan.pt --outdir directions --n 2000
blendgan directions --ckpt pretrained_models/blendgan.pt --outdir directions_sefa --method sefa
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    o = DirectionsOptions()
    parser.add_argument(
        "--method",
        choices=("labels", "sefa"),
        default=o.method,
        help="labels: sample faces, measure them with dlib's landmarks, fit one direction per measure; "
        "sefa: the top directions of the style layers' weights, no data",
    )
    parser.add_argument("--n", type=int, default=o.n, help="faces sampled and measured (labels)")
    parser.add_argument("--top", type=int, default=o.top, help="directions kept (sefa)")
    parser.add_argument(
        "--truncation", type=float, default=o.truncation, help="sampled faces are pulled this far toward the mean face"
    )
    parser.add_argument("--label_size", type=int, default=o.label_size, help="faces are measured at this size")
    parser.add_argument(
        "--chunk",
        type=int,
        default=o.chunk,
        help="faces per part: the unit processes share and a killed run resumes from",
    )
    parser.add_argument("--outdir", type=str, default=default_outdir("directions"), help="output folder")
    parser.add_argument(
        "--skip_existing",
        action="store_true",
        help="keep a finished directions file; a killed run resumes from the parts it wrote",
    )
    add_size_argument(parser)
    add_checkpoint_arguments(parser, psp=False)
    add_blend_arguments(parser, add_weight_index=o.add_weight_index)  # the directions move the layers before it
    add_runtime_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..errors import UsageError
    from ..jobs.directions import compute_directions

    if args.n < 10 and args.method == "labels":
        raise UsageError(f"--n {args.n}: sample at least 10 faces (thousands for useful directions)")
    if not 0 < args.truncation <= 1:
        raise UsageError(f"--truncation {args.truncation}: use a value in (0, 1]")
    report = RunReport("directions")
    ctx = distributed.setup(args.device)
    try:
        args.device = str(ctx.device)
        bg = build_pipeline(args, need_psp=False)
        outdir = make_outdir(args.outdir)
        options = DirectionsOptions(
            method=args.method,
            n=args.n,
            seed=args.seed,
            top=args.top,
            add_weight_index=args.add_weight_index,
            truncation=args.truncation,
            label_size=args.label_size,
            chunk=args.chunk,
            skip_existing=args.skip_existing,
        )
        compute_directions(bg, outdir, report, options, ctx=ctx)
        if not ctx.is_main:
            return 0
        return report.summary()
    finally:
        ctx.close()
