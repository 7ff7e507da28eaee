"""``blendgan publish``: a run's files (or one file) as safetensors with a model card, uploaded to the Hub."""

import argparse

HELP = "publish a fitted style, an adapter or a checkpoint on the Hugging Face Hub, with a model card"
EXAMPLES = """
blendgan publish runs/my_style --repo me/my-style --dry_run
blendgan publish runs/my_style --repo me/my-style --private
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="RUN_OR_FILE",
        help="a `blendgan fit-style` or training run folder, or one style code, adapter or checkpoint file",
    )
    parser.add_argument(
        "--repo", required=True, metavar="OWNER/NAME", help="the Hub repository to upload to (required)"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dry_run", action="store_true", help="write the folder and stop before uploading")
    parser.add_argument(
        "--outdir",
        default=None,
        metavar="DIR",
        help="where the folder to upload is written (default: publish/NAME)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import UsageError
    from ..weights.hub import parse_hub_name

    if args.repo.count("/") != 1:
        raise UsageError(f"--repo {args.repo}: write the repository as owner/name")
    repo = parse_hub_name(f"hf://{args.repo}", file=False).repo_id
    from ..publish import prepare, upload

    folder = prepare(args.source, repo, Path(args.outdir or Path("publish") / repo.split("/")[1]))
    print(folder)
    if args.dry_run:
        return 0
    print(upload(folder, repo, private=args.private))
    return 0
