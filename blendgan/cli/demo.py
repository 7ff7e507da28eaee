"""`blendgan demo`: the local web app (Gradio) over the pipeline; this module only parses flags and launches."""

import argparse

from ..defaults import PRECISIONS
from ._common import adapter_args, add_checkpoint_arguments, weight_path

HELP = "local web app: upload a face and an artwork, get the stylized face (and an interpolation video)"

EXAMPLES = """
blendgan demo --port 7860
blendgan demo --precision bf16 --port 8080 --ckpt my/blendgan.pt --psp_encoder_ckpt my/psp_encoder.pt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (default: %(default)s, this machine only; 0.0.0.0 opens it to the network)",
    )
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: %(default)s)")
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps (default: %(default)s)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="compute precision: fp32 (faithful), bf16 (CPU/GPU), fp16 (GPU only) (default: %(default)s)",
    )
    parser.add_argument(
        "--max_video_seconds", type=float, default=10.0, help="longest clip the 'Your video' tab takes, in seconds"
    )
    parser.add_argument(
        "--style_code",
        action="append",
        default=None,
        metavar="FILE",
        help="a fitted style (style_code.safetensors of `blendgan fit-style`), offered first among "
        "the bundled styles as its reference's picture; may be given several times "
        "(default: none)",
    )
    parser.add_argument(
        "--directions",
        action="append",
        default=None,
        metavar="FILE",
        help="directions of `blendgan directions` for this --ckpt (or an external .pt/.npy tensor): one "
        "slider per direction edits the face before it is stylized; may be given several times (default: none)",
    )
    parser.add_argument(
        "--predictor",
        default=None,
        help="dlib shape_predictor_68_face_landmarks.dat for face alignment (default: the one from blendgan[align])",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import BlendGANError, UsageError

    if args.max_video_seconds <= 0:
        raise UsageError(f"--max_video_seconds {args.max_video_seconds}: use a positive number of seconds")

    try:
        from ..demo.app import build_app, launch
    except ImportError as err:
        raise UsageError(f'the web app needs Gradio ({err.name} is missing): pip install "blendgan[demo]"') from None
    from ..demo.service import DemoService

    def path_of(flag_value, name):
        # a failed first-use download leaves the default path: the page then names the missing file
        try:
            return weight_path(flag_value, name, download=not args.no_download)
        except BlendGANError as err:
            print(f"warning: {err}")
            return weight_path(flag_value, name, download=False)

    service = DemoService.load(
        path_of(args.ckpt, "blendgan"),
        path_of(args.psp_encoder_ckpt, "psp_encoder"),
        args.style_encoder_ckpt or None,
        device=args.device,
        precision=args.precision,
        predictor=args.predictor,
        max_video_seconds=args.max_video_seconds,
        adapters=adapter_args(args),
        style_codes=args.style_code or (),
        directions=args.directions or (),
    )
    if service.ready and service.pipeline.device.type == "cpu":
        from ..allocator import reuse_freed_memory

        reuse_freed_memory()  # a long-running generating program (see blendgan/allocator.py)
    if not service.ready:
        print(f"warning: {service.load_error}; the page opens and says so")
    print(f"blendgan demo: http://{args.host}:{args.port} ({service.describe()}); Ctrl+C stops it")
    launch(build_app(service), host=args.host, port=args.port, quiet=True)
    return 0
