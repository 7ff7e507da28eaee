"""``blendgan info``: what a checkpoint file holds and whether the loaders accept it."""

import argparse
import json

HELP = "describe checkpoint files: kind, size, tensors, sha256, manifest status, load check"
EXAMPLES = """
blendgan info pretrained_models/blendgan.pt
blendgan info pretrained_models/*.pt --json --no-sha256
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="checkpoint file(s) (.pt or .safetensors)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file")
    parser.add_argument(
        "--no-sha256", dest="sha256", action="store_false", help="skip hashing the file (default: hash it)"
    )


def run(args: argparse.Namespace) -> int:
    from ..weights.describe import describe_checkpoint, format_bytes

    status = 0
    for f in args.files:
        d = describe_checkpoint(f, sha256=args.sha256)
        if d["check"] != "ok":
            status = 1
        if args.json:
            print(json.dumps(d))
            continue
        lines = [
            ("kind", d["kind"] + (f", {d['size']}x{d['size']}" if d["size"] else "")),
            ("format", f"{d['format']}, {format_bytes(d['file_bytes'])}"),
            ("tensors", f"{d['n_tensors']} ({d['n_params']:,} values; {', '.join(d['dtypes']) or '-'})"),
            ("latent_avg", d["latent_avg"] if d["latent_avg"] is not None else "-"),
            ("truncation", d["truncation"] if d["truncation"] is not None else "-"),
            ("other entries", ", ".join(d["extra_entries"]) or "-"),
            ("sha256", d["sha256"] or "-"),
            ("manifest", d["manifest"]),
            ("check", d["check"]),
        ]
        print(d["path"])
        print("\n".join(f"  {k:<14}{v}" for k, v in lines))
    return status
