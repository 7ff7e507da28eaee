"""`blendgan pairs` = the original generate_image_pairs.py, same flags and outputs, at any scale.

Under `torchrun` every process takes its share of the pairs (one GPU each); the files are the same
whatever the number of processes or the batch size.
"""

import argparse

from .. import distributed
from ..errors import UsageError
from ._common import (
    RunReport,
    add_checkpoint_arguments,
    add_control_arguments,
    add_edit_arguments,
    add_runtime_arguments,
    add_size_argument,
    build_pipeline,
    check_edit_arguments,
    controls_from_args,
    default_outdir,
    edits_from_args,
    finish_report,
    make_outdir,
    strength_range,
)

HELP = "random faces and their stylized versions: <i:06d>.jpg = [face | stylized face]"

EXAMPLES = """
blendgan pairs --pics 8 --style_img test_imgs/style_imgs/cartoon_astronaut.jpg --seed 3
torchrun --nproc_per_node 8 -m blendgan pairs --pics 1000000 --style_img_path styles/ --add_weight_index 4-8 --shard_size 1000 --skip_existing --outdir data/pairs
"""  # noqa: E501 (example command lines are kept whole)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..jobs.options import PairsOptions

    defaults = PairsOptions()
    add_size_argument(parser)
    parser.add_argument("--pics", type=int, default=defaults.pics, help="number of pairs (default: %(default)s)")
    parser.add_argument(
        "--truncation",
        type=float,
        default=defaults.truncation,
        help="truncation of the face latents; a value stored in the checkpoint wins (default: %(default)s)",
    )
    parser.add_argument(
        "--truncation_mean",
        type=int,
        default=defaults.truncation_mean,
        help="samples for the mean latent when the checkpoint has no latent_avg (default: %(default)s)",
    )
    add_checkpoint_arguments(parser, psp=False)
    parser.add_argument(
        "--style_img_path",
        type=str,
        default=None,
        help="folder of style images: each pair uses one, chosen from the pair's index (default: none)",
    )
    parser.add_argument(
        "--style_per_pair",
        action="store_true",
        help="latent-guided: a random style code per pair instead of one for the whole run "
        "(default: off, as in the original)",
    )
    parser.add_argument(
        "--sample_zs",
        type=str,
        default=None,
        help="torch file of face latents [pics, 1, 512] (default: random, per pair)",
    )
    parser.add_argument(
        "--add_weight_index",
        type=str,
        default=str(defaults.add_weight_index),
        help="face layers kept from the face latent; a range like 4-8 draws one per pair (default: %(default)s)",
    )
    parser.add_argument(
        "--random_noise",
        action="store_true",
        help="random noise maps per pair (shared by its two images) instead of the generator's "
        "stored ones (default: off, as in the original)",
    )
    parser.add_argument(
        "--channel_multiplier", type=int, default=2, help="generator width multiplier of the checkpoint"
    )
    parser.add_argument("--outdir", type=str, default=default_outdir("pairs"), help="output folder")
    parser.add_argument(
        "--layout",
        choices=["pairs", "split", "both"],
        default=None,
        help="pairs: <i>.jpg = [face | stylized] (the original); split: face/<i>.jpg and "
        "stylized/<i>.jpg; both (default: pairs, or split with --shard_size)",
    )
    parser.add_argument(
        "--shard_size",
        type=int,
        default=defaults.shard_size,
        help="write tar shards of N pairs (pairs-000000.tar with <i>.face.jpg, <i>.stylized.jpg, "
        "<i>.json; WebDataset naming) instead of loose files (default: 0 = loose files)",
    )
    parser.add_argument(
        "--skip_existing",
        action="store_true",
        help="resume: make only the pairs (or shards) that are missing (default: off)",
    )
    add_runtime_arguments(parser)
    add_control_arguments(
        parser,
        ranges=True,
        style_img_help=(
            "a reference style image for every pair; give it several times to mix styles (with --style_weights); "
            "without it and without --style_img_path a random style code is used (default: none)"
        ),
    )
    add_edit_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..pairset import parse_add_weight_index

    args.add_weight_index = parse_add_weight_index(args.add_weight_index)  # flag errors before any loading
    controls = controls_from_args(args)
    if args.style_img and args.style_img_path:
        raise UsageError(
            "give either --style_img (one image, or several to mix) or --style_img_path (a folder), not both"
        )
    if args.shard_size < 0 or args.pics < 0:
        raise UsageError("--pics and --shard_size must be 0 or more")
    check_edit_arguments(args)
    ctx = distributed.setup(args.device)
    try:
        report = RunReport("pairs")
        args.device = str(ctx.device)
        bg = build_pipeline(args, need_psp=False)
        controls_from_args(args, bg.n_latent)
        # a [512] external direction moves the layers before the lowest add_weight_index: face layers in every pair
        edit = edits_from_args(bg, args, args.add_weight_index[0])
        outdir = make_outdir(args.outdir)
        from ..jobs.pairs import PairsOptions, generate_image_pairs

        options = PairsOptions(
            pics=args.pics,
            truncation=args.truncation,
            truncation_mean=args.truncation_mean,
            style_img=args.style_img,
            style_dir=args.style_img_path,
            style_per_pair=args.style_per_pair,
            sample_zs=args.sample_zs,
            add_weight_index=args.add_weight_index,
            seed=args.seed,
            skip_existing=args.skip_existing,
            layout=args.layout or ("split" if args.shard_size else "pairs"),
            shard_size=args.shard_size,
            random_noise=args.random_noise,
            strength=strength_range(args),
            layer_weights=controls.layer_weights,
            preserve_color=controls.preserve_color,
            style_weights=controls.style_weights,
            edit=edit,
        )
        generate_image_pairs(bg, outdir, report, options, ctx=ctx)
        return finish_report(report, ctx)
    finally:
        ctx.close()
