"""``blendgan convert``: rewrite .pt checkpoints as .safetensors (no pickle, memory-mapped, loaded first)."""

import argparse
from pathlib import Path

from ..errors import UsageError

HELP = "convert .pt checkpoints to .safetensors (the loaders then prefer the .safetensors beside the .pt)"
EXAMPLES = """
blendgan convert pretrained_models/*.pt
blendgan convert my_run/blendgan.pt --out exported/blendgan.safetensors
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help=".pt checkpoint(s) to convert")
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="output file (one FILE) or existing folder (default: beside each FILE, same stem)",
    )


def run(args: argparse.Namespace) -> int:
    from ..weights.convert import convert_to_safetensors
    from ..weights.describe import describe_checkpoint, format_bytes

    out = Path(args.out) if args.out else None
    if out is not None and len(args.files) > 1 and not out.is_dir():
        raise UsageError(f"--out {out}: with several files --out must be an existing folder")
    for f in args.files:
        dest = convert_to_safetensors(f, out)
        d = describe_checkpoint(dest, sha256=False)
        size = f", size {d['size']}" if d["size"] else ""
        print(f"{f} -> {dest} ({d['kind']}{size}, {d['n_tensors']} tensors, {format_bytes(d['file_bytes'])})")
    return 0
