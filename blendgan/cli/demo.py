"""`blendgan demo`: the local web app (Gradio) over the pipeline; this module only parses flags and launches."""
import argparse

from ._common import add_checkpoint_arguments, weight_path

HELP = "local web app: upload a face and an artwork, get the stylized face (and an interpolation video)"

EPILOG = """examples:
  blendgan demo                                   # weights from pretrained_models/, http://127.0.0.1:7860
  blendgan demo --precision bf16 --port 8080 --ckpt my/blendgan.pt --psp_encoder_ckpt my/psp_encoder.pt
"""


def add_arguments(parser):
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add_checkpoint_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default: %(default)s, this machine only; 0.0.0.0 opens it to "
                             "the network)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps (default: %(default)s)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="compute precision: fp32 (faithful), bf16 (CPU/GPU), fp16 (GPU only) "
                             "(default: %(default)s)")
    parser.add_argument("--predictor", default=None,
                        help="dlib shape_predictor_68_face_landmarks.dat for face alignment "
                             "(default: the one from blendgan[align])")


def run(args):
    from ..errors import UsageError

    try:
        from ..demo.app import build_app, launch
    except ImportError as err:
        raise UsageError(f'the web app needs Gradio ({err.name} is missing): pip install "blendgan[demo]"') from None
    from ..demo.service import DemoService

    service = DemoService.load(weight_path(args.ckpt, "blendgan"), weight_path(args.psp_encoder_ckpt, "psp_encoder"),
                               args.style_encoder_ckpt or None, device=args.device, precision=args.precision,
                               predictor=args.predictor)
    if service.ready and service.pipeline.device.type == "cpu":
        from ..ops import reuse_freed_memory

        reuse_freed_memory()  # a long-running generating program (see blendgan/ops/allocator.py)
    if not service.ready:
        print(f"warning: {service.load_error}; the page opens and says so")
    print(f"blendgan demo: http://{args.host}:{args.port} ({service.describe()}); Ctrl+C stops it")
    launch(build_app(service), host=args.host, port=args.port, quiet=True)
    return 0
