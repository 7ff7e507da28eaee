"""``blendgan download``: fetch blendgan.pt, psp_encoder.pt and style_encoder.pt and check them."""

import argparse

from ..weights.home import OFFICIAL_WEIGHTS

HELP = "download the pretrained weights (Google Drive) into $BLENDGAN_HOME or ./pretrained_models"
EXAMPLES = """
blendgan download
blendgan download --only blendgan psp_encoder --dir /data/blendgan_weights
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="destination folder (default: $BLENDGAN_HOME, else ./pretrained_models)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(OFFICIAL_WEIGHTS),
        metavar="NAME",
        help=f"download only these ({', '.join(OFFICIAL_WEIGHTS)}); default: all three",
    )
    parser.add_argument(
        "--force", action="store_true", help="download again even if a file is present and intact (drops partial data)"
    )
    parser.add_argument(
        "--url",
        default=None,
        metavar="TEMPLATE",
        help="URL template with {id}, {name} or {filename} fields, for a mirror "
        "(default: $BLENDGAN_WEIGHTS_URL, else Google Drive)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="reconnections per file after a dropped connection (each resumes; default: 3)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..weights.download import download_weights

    paths = download_weights(
        args.only, args.dir, force=args.force, url_template=args.url, retries=max(args.retries, 0), quiet=args.quiet
    )
    print("\n".join(str(p) for p in paths.values()))
    return 0
