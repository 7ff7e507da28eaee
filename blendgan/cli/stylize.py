"""`blendgan stylize`: people's own photos, whole, with every face stylized and pasted back."""
from ..errors import UsageError
from ._common import (
    RunReport,
    add_blend_arguments,
    add_checkpoint_arguments,
    add_runtime_arguments,
    add_size_argument,
    build_pipeline,
    default_outdir,
    list_inputs,
    make_outdir,
)

HELP = "stylize every face of your photos and paste it back: <photo>_v_<style>.<ext>, the whole photo"
EXAMPLES = """
blendgan stylize test_imgs/photos/grace_hopper.jpg --style_img test_imgs/style_imgs/cartoon_astronaut.jpg
blendgan stylize test_imgs/photos --style_img test_imgs/style_imgs/pencil_grace_hopper.jpg --faces largest --panel
"""


def _faces(value):
    if value in ("all", "largest"):
        return value
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"{value!r}: use all, largest or a number of faces >= 1")
    return k


def add_arguments(parser):
    parser.add_argument("photos", nargs="+", metavar="PHOTO",
                        help="photos (jpg, png, bmp, webp, tif) or folders of photos")
    parser.add_argument("--style_img", required=True, help="the artwork whose style the faces take (required)")
    parser.add_argument("--faces", type=_faces, default="all",
                        help="which faces: all, largest, or K (the K largest)")
    parser.add_argument("--min_face", type=float, default=None,
                        help="skip faces whose aligned square is smaller than this many photo pixels, with a note "
                             "(default: 96)")
    parser.add_argument("--min_score", type=float, default=None,
                        help="ignore face detections scoring below this (dlib HOG score; default: 0.3)")
    parser.add_argument("--detect_size", type=int, default=1024,
                        help="search for faces on a copy of the photo at most this many pixels long; raise it to "
                             "find small faces in large group photos (slower)")
    parser.add_argument("--keep_faceless", action="store_true",
                        help="write photos without any face unchanged instead of reporting them as failed")
    parser.add_argument("--save_crops", action="store_true",
                        help="also write each face's aligned and stylized squares (<photo>_v_<style>_face<k>_*.png)")
    parser.add_argument("--panel", action="store_true",
                        help="also write a side-by-side picture [photo | result] (<photo>_v_<style>_panel.jpg)")
    add_size_argument(parser)
    add_checkpoint_arguments(parser)
    add_blend_arguments(parser, add_weight_index=6)
    parser.add_argument("--outdir", type=str, default=default_outdir("stylize"), help="output folder")
    parser.add_argument("--skip_existing", action="store_true", help="keep outputs that already exist (resume)")
    add_runtime_arguments(parser)


def run(args):
    from .. import jobs
    from ..photo import make_aligner

    report = RunReport("stylize")
    photos = [p for given in args.photos for p in list_inputs(given, "PHOTO", report)]
    style = list_inputs(args.style_img, "--style_img", report)
    if args.detect_size < 64:
        raise UsageError(f"--detect_size {args.detect_size}: use at least 64 (pixels)")
    aligner = make_aligner(args.detect_size)
    bg = build_pipeline(args)
    outdir = make_outdir(args.outdir)
    jobs.stylize_photos(bg, photos, style[0], outdir, report, faces=args.faces, min_face=args.min_face,
                        min_score=args.min_score, keep_faceless=args.keep_faceless, save_crops=args.save_crops,
                        panel=args.panel, skip_existing=args.skip_existing, aligner=aligner,
                        add_weight_index=args.add_weight_index)
    return report.summary()
