"""`blendgan stylize`: people's own photos and videos, whole, with every face stylized and pasted back."""

import argparse

from ..defaults import ADD_WEIGHT_INDEX
from ..errors import UsageError
from ..jobs.options import PhotoOptions, VideoOptions
from ._common import (
    RunReport,
    add_blend_arguments,
    add_checkpoint_arguments,
    add_control_arguments,
    add_edit_arguments,
    add_refine_arguments,
    add_runtime_arguments,
    add_size_argument,
    build_pipeline,
    check_edit_arguments,
    check_refine_arguments,
    control_kwargs,
    controls_from_args,
    default_outdir,
    edits_from_args,
    finish_report,
    make_outdir,
    setup_refine,
)

HELP = "stylize every face of your photos and videos and paste it back: <name>_v_<style>.<ext>, the whole picture"
EXAMPLES = """
blendgan stylize test_imgs/photos --style_img test_imgs/style_imgs/pencil_grace_hopper.jpg --faces largest --panel
blendgan stylize clip.mp4 --style_img test_imgs/style_imgs/cartoon_astronaut.jpg --start 0 --end 2 --strength 0.7
"""


def _faces(value):
    if value in ("all", "largest"):
        return value
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: use all, largest or a number of faces >= 1")
    return k


def _max_resolution(value):
    if value == "auto":
        return value
    try:
        px = int(value)
    except ValueError:
        px = 0
    if px < 8 or px & (px - 1):
        raise argparse.ArgumentTypeError(f"{value!r}: use auto or a power of two such as 256")
    return px


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="PHOTO_OR_VIDEO",
        help="photos (jpg, png, bmp, webp, tif), videos (mp4, mov, webm, mkv, avi, gif) or folders",
    )
    add_control_arguments(
        parser,
        style_img_help="the artwork whose style the faces take (required); give it "
        "several times to mix styles (with --style_weights)",
    )
    photo = PhotoOptions()
    parser.add_argument(
        "--faces", type=_faces, default=photo.faces, help="which faces: all, largest, or K (the K largest)"
    )
    parser.add_argument(
        "--min_face",
        type=float,
        default=photo.min_face,
        help="skip faces whose aligned square is smaller than this many photo pixels, with a note "
        "(default: %(default)g)",
    )
    parser.add_argument(
        "--min_score",
        type=float,
        default=photo.min_score,
        help="ignore face detections scoring below this (dlib HOG score; default: %(default)g)",
    )
    parser.add_argument(
        "--detect_size",
        type=int,
        default=photo.detect_size,
        help="search for faces on a copy of the picture at most this many pixels long; raise it to "
        "find small faces in large group photos (slower)",
    )
    parser.add_argument(
        "--max_resolution",
        type=_max_resolution,
        default=photo.max_resolution,
        help="stop the generator at the block that covers the faces' size in the picture (auto) or at PX: the "
        "blocks above draw detail the paste-back shrinks away (default: off, the full generator)",
    )
    parser.add_argument(
        "--keep_faceless",
        action="store_true",
        help="write photos without any face unchanged instead of reporting them as failed",
    )
    parser.add_argument(
        "--save_crops",
        action="store_true",
        help="also write each face's aligned and stylized squares (<photo>_v_<style>_face<k>_*.png)",
    )
    parser.add_argument(
        "--panel",
        action="store_true",
        help="also write a side-by-side picture [photo | result] (<photo>_v_<style>_panel.jpg)",
    )
    video = parser.add_argument_group("videos")
    clip = VideoOptions()
    video.add_argument(
        "--smooth",
        type=float,
        default=clip.smooth,
        help="smoothing over time of each face's landmarks and codes: a Gaussian's width in frames "
        "(0: off, each frame on its own)",
    )
    video.add_argument("--start", type=float, default=clip.start, help="first second of the video to stylize")
    video.add_argument("--end", type=float, default=clip.end, help="stylize up to this second (default: the end)")
    video.add_argument(
        "--frames_dir",
        type=str,
        default=None,
        help="also write every stylized frame as PNG to FRAMES_DIR/<video>/000000.png ... (default: none)",
    )
    video.add_argument(
        "--encode_every",
        type=int,
        default=None,
        help="encode every K-th face of a track (and its last) and interpolate the codes of the faces between "
        f"(1: every face; docs/video.md says what larger values cost in quality) (default: {clip.encode_every})",
    )
    video.add_argument(
        "--detect_every",
        type=int,
        default=None,
        help="run the face detector on every N-th frame, on cuts and where a face was lost; follow the faces with "
        f"the landmark model between (1: every frame; docs/video.md) (default: {clip.detect_every})",
    )
    video.add_argument(
        "--every_frame",
        action="store_true",
        help="detect and encode the faces of every frame: the exact path of the versions before the faster "
        "defaults (--encode_every 1 --detect_every 1)",
    )
    video.add_argument(
        "--segment_frames",
        type=int,
        default=clip.segment_frames,
        help="frames per segment, the unit that processes share and that a killed run resumes from",
    )
    add_size_argument(parser)
    add_checkpoint_arguments(parser)
    add_blend_arguments(parser, add_weight_index=ADD_WEIGHT_INDEX)
    parser.add_argument("--outdir", type=str, default=default_outdir("stylize"), help="output folder")
    parser.add_argument(
        "--skip_existing",
        action="store_true",
        help="keep outputs that already exist; a killed video run resumes where it stopped",
    )
    add_runtime_arguments(parser)
    parser.set_defaults(precision=None)  # fp32 unless given, or chosen by --fast (_resolve_speed)
    parser.add_argument(
        "--fast",
        action="store_true",
        help="the measured fast settings: bf16 where the CPU or GPU has bf16 kernels (else fp32), and for videos "
        "--encode_every 4 and a faster H.264 preset; a flag given explicitly wins (docs/video.md: what they cost)",
    )
    add_refine_arguments(parser)
    add_edit_arguments(parser)


def split_inputs(given, report):
    """(photos, videos) from files and folders; other files in folders are noted and skipped."""
    from pathlib import Path

    from ..io.images import is_image_file
    from ..io.video import is_video_file

    photos, videos = [], []
    for item in given:
        p = Path(item)
        if p.is_dir():
            entries = sorted(e for e in p.iterdir() if not e.name.startswith("."))
        elif p.exists():
            entries = [p]
        else:
            raise UsageError(f"{p}: no such file or folder; check the path")
        for e in entries:
            if e.is_file() and is_video_file(e):
                videos.append(e)
            elif e.is_file() and is_image_file(e):
                photos.append(e)
            elif p.is_dir():
                report.note(f"ignored (not a photo or video): {e}")
            else:
                raise UsageError(
                    f"{e}: not a photo or video file name (jpg, png, bmp, webp, tif; mp4, mov, webm, mkv, avi, gif)"
                )
    if not photos and not videos:
        raise UsageError(f"{' '.join(map(str, given))}: no photos or videos found")
    return photos, videos


#: what --fast sets for videos where the flag is not given (measured in docs/video.md)
FAST_ENCODE_EVERY = 4
FAST_X264_PRESET = "faster"


def _resolve_speed(args: argparse.Namespace) -> None:
    """--encode_every / --detect_every / --precision from the flags given: a value given wins; --every_frame makes
    both spacings 1; --fast sets --encode_every 4, the device's fastest precision and x264's `faster` preset for
    the video's segments; the rest take the defaults (VideoOptions', fp32). A spacing below 1, or --every_frame
    with another spacing or with --fast, is a usage error."""
    from ..devices import fastest_precision, resolve_device

    if args.every_frame and args.fast:
        raise UsageError("--every_frame with --fast: the exact path or the fast one; give one of the two")
    clip = VideoOptions()
    defaults = {
        "encode_every": FAST_ENCODE_EVERY if args.fast else clip.encode_every,
        "detect_every": clip.detect_every,
    }
    for name, unit in (("encode_every", "every face"), ("detect_every", "every frame")):
        given = getattr(args, name)
        if given is not None and given < 1:
            raise UsageError(f"--{name} {given}: use 1 ({unit}) or more")
        if args.every_frame and given not in (None, 1):
            raise UsageError(f"--every_frame with --{name} {given}: --every_frame means 1; give one of the two")
        setattr(args, name, given if given is not None else 1 if args.every_frame else defaults[name])
    if args.precision is None:
        args.precision = fastest_precision(resolve_device(args.device)) if args.fast else "fp32"
    args.x264_preset = FAST_X264_PRESET if args.fast else clip.x264_preset


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import distributed
    from ..jobs.photos import stylize_photos
    from ..jobs.video import stylize_videos
    from ..photo import make_aligner

    if args.detect_size < 64:
        raise UsageError(f"--detect_size {args.detect_size}: use at least 64 (pixels)")
    if args.smooth < 0:
        raise UsageError(f"--smooth {args.smooth}: use 0 (off) or a positive number of frames")
    _resolve_speed(args)
    if args.start < 0 or (args.end is not None and args.end <= args.start):
        raise UsageError(f"--start {args.start} / --end {args.end}: need 0 <= start < end (seconds)")
    if not args.style_img:
        raise UsageError("--style_img IMAGE is required (the artwork whose style the faces take)")
    controls = controls_from_args(args)  # bad values fail before any loading
    check_refine_arguments(args)
    check_edit_arguments(args)
    report = RunReport("stylize")
    photos, videos = split_inputs(args.inputs, report)
    if videos and args.refine:
        report.note(
            "--refine applies to photos; the faces of videos keep pSp's codes (a refine per frame would "
            "take seconds per step per face)"
        )
    missing = [p for p in args.style_img if not Path(p).is_file()]
    if missing:
        raise UsageError(f"--style_img {missing[0]}: file not found")
    limits = {"faces": args.faces, "min_face": args.min_face, "min_score": args.min_score}
    ctx = distributed.setup(args.device)
    try:
        args.device = str(ctx.device)
        aligner = make_aligner(args.detect_size)
        bg = build_pipeline(args)
        setup_refine(bg, args)
        outdir = make_outdir(args.outdir)
        controls_from_args(args, bg.n_latent)  # the per-layer vector's length, now that the size is known
        edit = edits_from_args(bg, args, args.add_weight_index)
        kwargs = {"add_weight_index": args.add_weight_index, **control_kwargs(controls)}
        if len(args.style_img) > 1:
            kwargs["style_weights"] = controls.mix_weights(len(args.style_img))
        if photos:
            options = PhotoOptions(
                **limits,
                detect_size=args.detect_size,
                keep_faceless=args.keep_faceless,
                save_crops=args.save_crops,
                panel=args.panel,
                skip_existing=args.skip_existing,
                refine=args.refine,
                max_resolution=args.max_resolution,
                edit=edit,
            )
            stylize_photos(bg, photos, args.style_img, outdir, report, options, aligner=aligner, ctx=ctx, **kwargs)
        if videos:
            options = VideoOptions(
                **limits,
                smooth=args.smooth,
                start=args.start,
                end=args.end,
                skip_existing=args.skip_existing,
                segment_frames=args.segment_frames,
                encode_every=args.encode_every,
                detect_every=args.detect_every,
                max_resolution=args.max_resolution,
                x264_preset=args.x264_preset,
                frames_dir=args.frames_dir,
                edit=edit,
            )
            stylize_videos(bg, videos, args.style_img, outdir, report, options, aligner=aligner, ctx=ctx, **kwargs)
        return finish_report(report, ctx)
    finally:
        ctx.close()
