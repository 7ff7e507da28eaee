"""``blendgan download``: fetch blendgan.pt, psp_encoder.pt and style_encoder.pt and check them."""

import argparse

from ..weights.home import OFFICIAL_WEIGHTS

HELP = "download the pretrained weights (Google Drive, a mirror or the Hub) into $BLENDGAN_HOME or ./pretrained_models"
EXAMPLES = """
blendgan download --only blendgan psp_encoder --dir /data/blendgan_weights
blendgan download --source https://example.org/blendgan --source hf://owner/blendgan-weights
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
        "--source",
        action="append",
        default=None,
        metavar="SOURCE",
        help="where to fetch from, tried in the order given: `drive` (Google Drive), the http(s):// base URL of "
        "a mirror, or hf://owner/repo[@revision] (needs blendgan[hub]); each file is checked against the "
        "sha256 the source publishes (default: $BLENDGAN_WEIGHTS_URL, several separated by spaces, else drive)",
    )
    parser.add_argument(
        "--url",
        action="append",
        dest="source",
        metavar="TEMPLATE",
        help="a source given as a URL template with {id}, {name} or {filename} fields, tried in order with "
        "--source (default: none)",
    )
    parser.add_argument("--sources", action="store_true", help="list the sources that would be tried, and exit")
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="reconnections per file after a dropped connection (each resumes; default: 3)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.sources:
        return list_sources(args.source)
    from ..weights.download import download_weights

    paths = download_weights(
        args.only, args.dir, force=args.force, sources=args.source, retries=max(args.retries, 0), quiet=args.quiet
    )
    print("\n".join(str(p) for p in paths.values()))
    return 0


def list_sources(specs) -> int:
    """Print the sources in the order they are tried (and whether downloads are off)."""
    from ..weights.home import offline_reason
    from ..weights.sources import weight_sources

    sources = weight_sources(specs)
    reason = offline_reason()
    for i, source in enumerate(sources, 1):
        note = ""
        if reason:
            note = "  (offline: its Hugging Face cache only)" if source.kind == "hub" else f"  (skipped: {reason})"
        print(f"{i}. {source}{note}")
    return 0
