"""`blendgan transfer` = the original style_transfer_folder.py (spec 7.2), same flags and outputs."""
from .. import jobs
from ._common import (RunReport, add_align_argument, add_runtime_arguments, add_size_argument, build_pipeline,
                      default_outdir, list_inputs, make_aligner, make_outdir)

HELP = "stylize every face image with every style image: <face>_v_<style>.jpg = [face | style | result]"


def add_arguments(parser):
    add_size_argument(parser)
    parser.add_argument("--ckpt", type=str, default="", help="blendgan.pt (default: the weights folder)")
    parser.add_argument("--psp_encoder_ckpt", type=str, default="", help="psp_encoder.pt (default: weights folder)")
    parser.add_argument("--style_encoder_ckpt", type=str, default="",
                        help="optional standalone style_encoder.pt (default: the one inside blendgan.pt)")
    parser.add_argument("--style_img_path", type=str, default=None, help="folder of style images (or one image)")
    parser.add_argument("--input_img_path", type=str, default=None, help="folder of face images (or one image)")
    parser.add_argument("--add_weight_index", type=int, default=6)
    parser.add_argument("--channel_multiplier", type=int, default=2)
    parser.add_argument("--outdir", type=str, default=default_outdir("transfer"))
    parser.add_argument("--skip_existing", action="store_true", help="keep outputs that already exist (resume)")
    add_runtime_arguments(parser)
    add_align_argument(parser)


def run(args):
    report = RunReport("transfer")
    faces = list_inputs(args.input_img_path, "--input_img_path", report)
    styles = list_inputs(args.style_img_path, "--style_img_path", report)
    aligner = make_aligner(args)
    bg = build_pipeline(args)
    outdir = make_outdir(args.outdir)
    jobs.style_transfer_folder(bg, faces, styles, outdir, report, add_weight_index=args.add_weight_index,
                               skip_existing=args.skip_existing, aligner=aligner)
    return report.summary()
