"""`blendgan dataset`: raw photos or artworks -> a clean, sharded training set (docs/dataset.md). The work is in
blendgan/dataset_tool.py; under `torchrun` every process takes its share and the output is the same."""

import argparse

from .. import distributed
from ..errors import UsageError

HELP = "make a training set from raw photos (faces) or artworks (styles): aligned, de-duplicated, tar shards"

EXAMPLES = """
blendgan dataset photos/ --outdir data/faces --kind faces --size 1024
torchrun --nproc_per_node 2 -m blendgan dataset artworks/ more_art/ --outdir data/styles --kind styles --skip_existing
"""  # noqa: E501 (example command lines are kept whole)


# the defaults of blendgan.dataset_tool.DatasetOptions, written out so that --help imports nothing heavy
# (tests/test_dataset.py checks they agree)
KINDS = ("faces", "styles")
RECORDS_PER_SHARD = 1000
DEFAULTS = argparse.Namespace(
    size=1024, shards=0, min_resolution=0, min_score=0.3, dup_threshold=3, transform_size=4096, seed=0
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("sources", nargs="+", metavar="SRC", help="image files and folders (searched recursively)")
    parser.add_argument(
        "--outdir", required=True, help="the data set folder: shards, manifest.jsonl, dataset.json (required)"
    )
    parser.add_argument(
        "--kind",
        required=True,
        choices=KINDS,
        help="faces: every face FFHQ-aligned, one image per face; styles: artworks cropped to the centred square "
        "(required)",
    )
    parser.add_argument("--size", type=int, default=d.size, help="output side in pixels (power of two)")
    parser.add_argument(
        "--shards", type=int, default=d.shards, help=f"number of tar shards (default: 0 = one per {RECORDS_PER_SHARD})"
    )
    parser.add_argument(
        "--min_resolution",
        type=int,
        default=d.min_resolution,
        help="smallest face crop (faces) or shorter image side (styles) in source pixels "
        "(default: 0 = size / 2, i.e. at most a 2x upscale)",
    )
    parser.add_argument(
        "--min_score", type=float, default=d.min_score, help="faces below this detector score are dropped"
    )
    parser.add_argument(
        "--dup_threshold",
        type=int,
        default=d.dup_threshold,
        help="near duplicates: pHash Hamming distance (of 64 bits) at most this to an image kept before",
    )
    parser.add_argument(
        "--align_style_faces",
        action="store_true",
        help="styles: FFHQ-align the largest face of an artwork where one is found (as AAHQ was made)",
    )
    parser.add_argument(
        "--align_transform_size",
        type=int,
        default=d.transform_size,
        help="intermediate warp of the FFHQ alignment (FFHQ's value; smaller is faster and blurrier)",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the contact sheet's random sample")
    parser.add_argument(
        "--skip_existing",
        action="store_true",
        help="resume: reuse the files already examined and the shards already written (default: off)",
    )
    parser.add_argument("--predictor", default=None, help="dlib 68-point landmark model (default: the installed one)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..dataset_tool import REASONS, DatasetOptions, make_dataset

    opts = DatasetOptions(
        kind=args.kind,
        size=args.size,
        shards=args.shards,
        min_resolution=args.min_resolution,
        min_score=args.min_score,
        dup_threshold=args.dup_threshold,
        align_style_faces=args.align_style_faces,
        transform_size=args.align_transform_size,
        seed=args.seed,
    )
    opts.check()  # flag errors before any process group or model
    if args.align_transform_size < 1:
        raise UsageError(f"--align_transform_size {args.align_transform_size}: must be at least 1")
    ctx = distributed.setup("cpu")
    try:
        summary = make_dataset(
            args.sources,
            args.outdir,
            opts,
            skip_existing=args.skip_existing,
            ctx=ctx,
            progress=not args.no_progress,
            predictor=args.predictor,
        )
        if ctx.is_main:
            c = summary["counts"]
            reasons = ", ".join(f"{k} {c[k]}" for k in REASONS if c[k])
            print(
                f"dataset: {c['kept']} images kept in {len(summary['shards'])} shard(s) from {c['files']} files, "
                f"{c['rejected']} rejected{f' ({reasons})' if reasons else ''}: {args.outdir} "
                "(dataset.json, manifest.jsonl, contact_sheet.jpg)"
            )
        return 0
    finally:
        ctx.close()
