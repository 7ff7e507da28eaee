"""`blendgan video` = the original gen_video.py, same flags; H.264 mp4 by default."""

import argparse

from ._common import (
    add_control_arguments,
    add_edit_arguments,
    add_folder_job_arguments,
    check_edit_arguments,
    control_kwargs,
    controls_from_args,
    edits_from_args,
    make_outdir,
    start_folder_job,
)

HELP = "one video per face morphing through 8 random style images: <face>.mp4 (227 frames, 30 fps)"
EXAMPLES = """
blendgan video --input_img_path test_imgs/face_imgs --style_img_path test_imgs/style_imgs
blendgan video --input_img_path face.jpg --style_img_path styles/ --frames_dir results/frames --codec mp4v
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..jobs.options import MorphVideoOptions

    defaults = MorphVideoOptions()
    add_folder_job_arguments(parser, "video", add_weight_index=defaults.add_weight_index)
    parser.add_argument(
        "--codec",
        choices=["h264", "mp4v"],
        default=defaults.codec,
        help="h264: browser-playable H.264/yuv420p (default); mp4v: the original's MPEG-4 Part 2",
    )
    parser.add_argument(
        "--frames_dir",
        type=str,
        default=None,
        help="also write every frame as PNG to FRAMES_DIR/<face>/000000.png ... (default: no PNGs)",
    )
    add_control_arguments(parser, mixing=False)
    parser.add_argument(
        "--style_space",
        choices=["z", "w"],
        default="z",
        help="blend two styles as style codes (z: the original) or as mapped styles (w: the same "
        "mix as --style_img/--style_weights in transfer; frame at alpha k = mix (1-k, k)) "
        "(default: z)",
    )
    add_edit_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..jobs.morph_video import MorphVideoOptions, gen_video

    controls = controls_from_args(args)  # bad values fail before any loading
    check_edit_arguments(args)
    report, faces, styles, aligner, bg, outdir = start_folder_job(args, "video")
    controls_from_args(args, bg.n_latent)
    if args.frames_dir:
        make_outdir(args.frames_dir)
    options = MorphVideoOptions(
        add_weight_index=args.add_weight_index,
        seed=args.seed,
        codec=args.codec,
        frames_dir=args.frames_dir,
        skip_existing=args.skip_existing,
        edit=edits_from_args(bg, args, args.add_weight_index),
    )
    gen_video(
        bg, faces, styles, outdir, report, options, aligner=aligner, space=args.style_space, **control_kwargs(controls)
    )
    return report.summary()
