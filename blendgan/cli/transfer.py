"""`blendgan transfer` = the original style_transfer_folder.py, same flags and outputs."""

import argparse

from ._common import (
    add_control_arguments,
    add_edit_arguments,
    add_folder_job_arguments,
    add_refine_arguments,
    check_edit_arguments,
    check_refine_arguments,
    control_kwargs,
    controls_from_args,
    edits_from_args,
    finish_report,
    setup_refine,
    start_folder_job,
)

HELP = "stylize every face image with every style image: <face>_v_<style>.jpg = [face | style | result]"
EXAMPLES = """
blendgan transfer --input_img_path test_imgs/face_imgs --style_img_path test_imgs/style_imgs
blendgan transfer --input_img_path photos/ --style_img a.jpg --style_img b.jpg --style_weights 0.7 0.3 --strength 0.8
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..jobs.options import TransferOptions

    add_folder_job_arguments(parser, "transfer", add_weight_index=TransferOptions().add_weight_index)
    add_control_arguments(parser)
    add_refine_arguments(parser)
    add_edit_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..jobs.transfer import TransferOptions, style_transfer_folder

    controls = controls_from_args(args)  # bad values fail before any loading
    check_refine_arguments(args)
    check_edit_arguments(args)
    ctx = distributed.setup(args.device)  # torchrun: the faces are shared out over the processes
    try:
        args.device = str(ctx.device)
        report, faces, styles, aligner, bg, outdir = start_folder_job(args, "transfer")
        setup_refine(bg, args)
        controls_from_args(args, bg.n_latent)
        mix = controls.mix_weights(len(styles)) if args.style_img and len(styles) > 1 else None
        options = TransferOptions(
            add_weight_index=args.add_weight_index,
            skip_existing=args.skip_existing,
            style_weights=mix,
            refine=args.refine,
            edit=edits_from_args(bg, args, args.add_weight_index),
        )
        style_transfer_folder(
            bg, faces, styles, outdir, report, options, aligner=aligner, ctx=ctx, **control_kwargs(controls)
        )
        return finish_report(report, ctx)
    finally:
        ctx.close()
