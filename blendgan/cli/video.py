"""`blendgan video` = the original gen_video.py (spec 7.3), same flags; H.264 mp4 by default."""
from .. import jobs
from ._common import (RunReport, add_align_argument, add_runtime_arguments, add_size_argument, build_pipeline,
                      default_outdir, list_inputs, make_aligner, make_outdir)

HELP = "one video per face morphing through 8 random style images: <face>.mp4 (227 frames, 30 fps)"


def add_arguments(parser):
    add_size_argument(parser)
    parser.add_argument("--ckpt", type=str, default="", help="blendgan.pt (default: the weights folder)")
    parser.add_argument("--psp_encoder_ckpt", type=str, default="", help="psp_encoder.pt (default: weights folder)")
    parser.add_argument("--style_encoder_ckpt", type=str, default="",
                        help="optional standalone style_encoder.pt (default: the one inside blendgan.pt)")
    parser.add_argument("--style_img_path", type=str, default=None, help="folder of style images (or one image)")
    parser.add_argument("--input_img_path", type=str, default=None, help="folder of face images (or one image)")
    parser.add_argument("--add_weight_index", type=int, default=7)
    parser.add_argument("--channel_multiplier", type=int, default=2)
    parser.add_argument("--outdir", type=str, default=default_outdir("video"))
    parser.add_argument("--codec", choices=["h264", "mp4v"], default="h264",
                        help="h264: browser-playable H.264/yuv420p (default); mp4v: the original's MPEG-4 Part 2")
    parser.add_argument("--frames_dir", type=str, default=None,
                        help="also write every frame as PNG to FRAMES_DIR/<face>/000000.png ...")
    parser.add_argument("--skip_existing", action="store_true", help="keep videos that already exist (resume)")
    add_runtime_arguments(parser)
    add_align_argument(parser)


def run(args):
    report = RunReport("video")
    faces = list_inputs(args.input_img_path, "--input_img_path", report)
    styles = list_inputs(args.style_img_path, "--style_img_path", report)
    aligner = make_aligner(args)
    bg = build_pipeline(args)
    outdir = make_outdir(args.outdir)
    if args.frames_dir:
        make_outdir(args.frames_dir)
    jobs.gen_video(bg, faces, styles, outdir, report, add_weight_index=args.add_weight_index, seed=args.seed,
                   codec=args.codec, frames_dir=args.frames_dir, skip_existing=args.skip_existing, aligner=aligner)
    return report.summary()
