"""Flags and reporting shared by the generation commands (pairs, transfer, video)."""

import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..defaults import PRECISIONS
from ..errors import UsageError


def add_runtime_arguments(parser, batch_default=4):
    """--device, --precision, --batch_size, --seed (improvements over the original scripts)."""
    parser.add_argument(
        "--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto)"
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="compute precision: fp32 (faithful), bf16 (CPU/GPU), fp16 (GPU only) (default: fp32)",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=batch_default,
        help="generator calls batched together (outputs are identical to batch 1)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random draw (drawn on the CPU: same images on every device)"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the generator: a long compile per batch shape, then slightly faster "
        "(docs/speed.md); for long jobs only (default: off)",
    )


def add_align_argument(parser):
    parser.add_argument(
        "--align",
        action="store_true",
        help="FFHQ-align each face photo first; square 256/512/1024 images are taken as already "
        "aligned (needs: pip install 'blendgan[align]')",
    )


def default_outdir(command):
    return str(Path("results") / command)


def weight_path(flag_value, name, download=True):
    """The path given on the command line, else the default location (BLENDGAN_HOME or ./pretrained_models),
    where a missing published file is downloaded first unless `download` is false or BLENDGAN_OFFLINE=1."""
    if flag_value:
        return flag_value
    from ..weights.download import fetch_if_missing

    return str(fetch_if_missing(name, allow=download))


# the flags that take a file by path, which may also name one on the Hub (hf://owner/repo/file[@revision])
HUB_FILE_FLAGS = ("ckpt", "psp_encoder_ckpt", "style_encoder_ckpt", "adapter", "style_img", "style_code", "directions")


def resolve_hub_files(args):
    """Replace the hf:// values of the file flags in `args` by their paths in the Hugging Face cache (downloaded
    once); an --adapter's `:SCALE` is kept. Anything else is left as it is."""
    from ..weights.hub import is_hub_name, resolve_path

    def one(flag, value):
        if not is_hub_name(value):
            return value
        head, sep, tail = value.rpartition(":") if flag == "adapter" else ("", "", "")
        try:
            float(tail)
        except ValueError:
            head, sep, tail = value, "", ""
        return str(resolve_path(head)) + sep + tail

    for flag in HUB_FILE_FLAGS:
        value = getattr(args, flag, None)
        if isinstance(value, list):
            setattr(args, flag, [one(flag, v) for v in value])
        elif isinstance(value, str):
            setattr(args, flag, one(flag, value))
    return args


def make_outdir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create the output folder {path}: {err.strerror}; pass a writable --outdir") from err
    return Path(path)


def build_pipeline(args, need_psp=True):
    """BlendGAN pipeline from the command's checkpoint flags (size checked against --size)."""
    from ..allocator import reuse_freed_memory
    from ..pipeline import BlendGAN

    download = not getattr(args, "no_download", False)
    pipeline = BlendGAN.from_checkpoints(
        weight_path(args.ckpt, "blendgan", download),
        weight_path(getattr(args, "psp_encoder_ckpt", ""), "psp_encoder", download) if need_psp else None,
        getattr(args, "style_encoder_ckpt", None) or None,
        size=args.size,
        channel_multiplier=args.channel_multiplier,
        adapters=adapter_args(args),
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        compile=getattr(args, "compile", False),
    )
    if pipeline.device.type == "cpu":
        reuse_freed_memory()  # a generating program: keep freed activations for the next image (blendgan/allocator.py)
    return pipeline


def adapter_args(args):
    """[(file, scale)] of the --adapter flags."""
    from ..fitting.adapter import parse_adapter_flag

    return [parse_adapter_flag(v) for v in getattr(args, "adapter", None) or []]


class RunReport:
    """Counts outputs, prints one line per failed input and a summary line at the end."""

    def __init__(self, command):
        self.command = command
        self.written = self.skipped = self.failed = 0
        self.start = time.perf_counter()

    def fail(self, path, reason):
        self.failed += 1
        message = str(reason)
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        tqdm.write(f"failed: {message}", file=sys.stderr)

    def note(self, message):
        tqdm.write(message, file=sys.stderr)

    def summary(self):
        seconds = time.perf_counter() - self.start
        print(f"{self.command}: {self.written} written, {self.skipped} skipped, {self.failed} failed in {seconds:.1f}s")
        return 1 if self.failed else 0


def finish_report(report: RunReport, ctx) -> int:
    """The exit status of a command whose processes shared the work: every process's counts summed, the
    summary line printed by the main process; each process prints its own failures as they happen."""
    if ctx.distributed:
        report.written, report.skipped, report.failed = ctx.all_reduce_sum(
            [report.written, report.skipped, report.failed]
        )
        if not ctx.is_main:
            return 1 if report.failed else 0
    return report.summary()


def make_aligner(args):
    """`aligner(image_bgr, path)` for --align (FFHQ alignment of each face photo), else None."""
    if not getattr(args, "align", False):
        return None
    from ..align import FaceAligner, is_prealigned
    from ..errors import InputImageError

    face_aligner = FaceAligner()

    def align(image, path):
        if is_prealigned(image):  # square 256/512/1024 crops count as aligned, as in the original GUI
            return image
        aligned = face_aligner.align(image, output_size=1024)
        if aligned is None:
            raise InputImageError(f"{path}: no face found; pass a clearer photo or an already aligned crop")
        return aligned

    return align


def list_inputs(path, flag, report):
    """Image files of a folder (sorted like the original) or a single file; non-images noted, not fatal."""
    from ..io.images import list_images

    if not path:
        raise UsageError(f"{flag} is required (a folder of images or one image file)")
    found, ignored = list_images(path)
    for p in ignored:
        report.note(f"ignored (not an image): {p}")
    if not found:
        raise UsageError(f"{flag} {path}: no images found (jpg, png, bmp, webp, tif)")
    return found


def add_size_argument(parser):
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="output size; default: read from the checkpoint (the original defaulted to 1024)",
    )


def add_checkpoint_arguments(parser, psp=True):
    """--ckpt (+ --psp_encoder_ckpt) with the original names, and the optional --style_encoder_ckpt."""
    parser.add_argument(
        "--ckpt",
        type=str,
        default="",
        help="blendgan.pt (default: the weights folder, $BLENDGAN_HOME or ./pretrained_models)",
    )
    if psp:
        parser.add_argument(
            "--psp_encoder_ckpt", type=str, default="", help="psp_encoder.pt (default: the weights folder)"
        )
    parser.add_argument(
        "--style_encoder_ckpt",
        type=str,
        default="",
        help="optional standalone style_encoder.pt (default: the one inside blendgan.pt)",
    )
    parser.add_argument(
        "--adapter",
        action="append",
        default=None,
        metavar="FILE[:SCALE]",
        help="a style adapter of `blendgan fit-style` (adapter.safetensors), merged into the "
        "generator at load with SCALE (default 1; 0 = the base model); may be given "
        "several times (default: none)",
    )
    parser.add_argument(
        "--no_download",
        action="store_true",
        help="do not download missing weights into the weights folder on first use "
        "(default: download them; BLENDGAN_OFFLINE=1 also turns this off)",
    )


def add_folder_job_arguments(parser, command, add_weight_index):
    """The flags style_transfer_folder.py and gen_video.py share (original names and defaults) + ours."""
    add_size_argument(parser)
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--style_img_path",
        type=str,
        default=None,
        help="folder of style images (or one image); required (unless --style_img is given)",
    )
    parser.add_argument(
        "--input_img_path", type=str, default=None, help="folder of face images (or one image); required"
    )
    add_blend_arguments(parser, add_weight_index)
    parser.add_argument("--outdir", type=str, default=default_outdir(command), help="output folder")
    parser.add_argument("--skip_existing", action="store_true", help="keep outputs that already exist (resume)")
    add_runtime_arguments(parser)
    add_align_argument(parser)


def add_blend_arguments(parser, add_weight_index):
    """--add_weight_index and --channel_multiplier (original names and defaults)."""
    parser.add_argument(
        "--add_weight_index",
        type=int,
        default=add_weight_index,
        help="latent layers below this index keep the face alone; the style is blended in from "
        "here (higher: more of the face)",
    )
    parser.add_argument(
        "--channel_multiplier", type=int, default=2, help="generator width multiplier of the checkpoint"
    )


def start_folder_job(args, command):
    """Inputs listed, aligner and pipeline built, output folder made: (report, faces, styles, aligner, bg, outdir).

    Everything a user can get wrong (paths, extras, weights) fails here, before any work is done."""
    report = RunReport(command)
    faces = list_inputs(args.input_img_path, "--input_img_path", report)
    if getattr(args, "style_img", None):  # --style_img, maybe several to mix (transfer)
        if args.style_img_path:
            raise UsageError("give either --style_img (images to mix) or --style_img_path (a folder), not both")
        missing = [p for p in args.style_img if not os.path.isfile(p)]
        if missing:
            raise UsageError(f"--style_img {missing[0]}: file not found")
        styles = list(args.style_img)
    else:
        styles = list_inputs(args.style_img_path, "--style_img_path", report)
    aligner = make_aligner(args)
    bg = build_pipeline(args)
    return report, faces, styles, aligner, bg, make_outdir(args.outdir)


# --------------------------------------------------------------------------- stylization controls (issue 23)


def add_control_arguments(parser, *, mixing=True, ranges=False, style_img_help=None):
    """--strength, --layer_weights, --preserve_color and (with `mixing`) --style_img given several times with
    --style_weights. `ranges`: --strength may be a range drawn per item (data sets). Defaults: the original
    output. Turn the flags into `blendgan.controls.Controls` with `controls_from_args`."""
    drawn = "; a range like 0.5-1 draws one per pair" if ranges else ""
    parser.add_argument(
        "--strength",
        type=str if ranges else float,
        default="1" if ranges else 1.0,
        help=f"style strength in [0, 1]: 0 gives the face's reconstruction, 1 the full style{drawn} (default: 1)",
    )
    parser.add_argument(
        "--layer_weights",
        type=str,
        default=None,
        help="how much style each layer takes: one value in [0, 1] per layer (comma-separated; "
        "10/12/14/16/18 for 64 ... 1024 px) or a preset: all, structure (4-32 px layers), "
        "texture (64 px and finer); replaces --add_weight_index (default: none, see "
        "docs/controls.md)",
    )
    parser.add_argument(
        "--preserve_color",
        action="store_true",
        help="the fine (colour) layers keep the face's code: the face's colours, the style's shapes (default: off)",
    )
    if mixing:
        parser.add_argument(
            "--style_img",
            action="append",
            default=None,
            metavar="IMAGE",
            help=style_img_help
            or "a style image instead of --style_img_path; give it several "
            "times to mix styles (with --style_weights) (default: none)",
        )
        parser.add_argument(
            "--style_code",
            action="append",
            dest="style_img",
            metavar="FILE",
            help="a fitted style (style_code.safetensors of `blendgan fit-style`), used as a "
            "--style_img is; may be mixed with style images (default: none)",
        )
        parser.add_argument(
            "--style_weights",
            type=float,
            nargs="+",
            default=None,
            metavar="K",
            help="mix weights of the --style_img images, one each, not negative, normalised to sum "
            "1 (default: equal weights)",
        )


def controls_from_args(args, n_latent=None):
    """The command's validated `Controls` (one-line UsageError, exit 2, for a bad value). With `n_latent`
    (known once the generator is loaded) the per-layer vector's length is checked too.

    For a strength range (pairs) the returned Controls has strength 1; `strength_range(args)` gives the range."""
    from ..controls import Controls, parse_range

    strength = args.strength
    if isinstance(strength, str):
        lo, hi = parse_range(strength, "--strength")
        strength = lo if lo == hi else 1.0
    style_imgs = getattr(args, "style_img", None)
    weights = getattr(args, "style_weights", None)
    if weights is not None:
        count = len(style_imgs) if isinstance(style_imgs, list) else 0
        if count != len(weights):
            raise UsageError(
                f"--style_weights: {len(weights)} weights for {count} --style_img image(s); give one "
                "weight per --style_img"
            )
    controls = Controls(
        strength, args.layer_weights, args.preserve_color, tuple(weights) if weights is not None else None
    )
    if n_latent is not None:
        controls.layer_vector(n_latent)
    return controls


def strength_range(args):
    """(low, high) of --strength (equal ends for one value)."""
    from ..controls import parse_range

    return parse_range(args.strength, "--strength") if isinstance(args.strength, str) else (args.strength,) * 2


def control_kwargs(controls):
    """The pipeline keywords of a `Controls` (stylize, interpolate, sample_pair) apart from the mix weights."""
    return {
        "strength": controls.strength,
        "layer_weights": controls.layer_weights,
        "preserve_color": controls.preserve_color,
    }


# --------------------------------------------------------------------------- refined faces (issue 26)


def add_refine_arguments(parser):
    """--refine N, --refine_cache DIR, --identity_weights FILE (docs/refine.md). Default: pSp's codes as is."""
    group = parser.add_argument_group("refine the likeness (docs/refine.md)")
    group.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="N",
        help="optimise each face's codes for N steps from pSp's so the result looks more like the "
        "photo (seconds per step; 0: off) (default: 0)",
    )
    group.add_argument(
        "--refine_cache",
        type=str,
        default=None,
        metavar="DIR",
        help="keep refined codes in DIR and reuse them in later runs (default: memory only)",
    )
    group.add_argument(
        "--identity_weights",
        type=str,
        default=None,
        metavar="ARCFACE_PTH",
        help="ArcFace IR-SE50 weights (pSp's model_ir_se50.pth): adds an identity term to --refine (default: none)",
    )


def check_refine_arguments(args):
    """One-line UsageError for bad --refine values, before any weights are loaded."""
    if args.refine < 0:
        raise UsageError(f"--refine {args.refine}: use 0 (off) or a number of steps >= 1")
    if args.identity_weights and not os.path.isfile(os.path.expanduser(args.identity_weights)):
        raise UsageError(
            f"--identity_weights {args.identity_weights}: file not found (ArcFace IR-SE50, pSp's model_ir_se50.pth)"
        )
    if args.refine == 0 and (args.refine_cache or args.identity_weights):
        raise UsageError("--refine_cache / --identity_weights only apply with --refine N (N >= 1)")


def setup_refine(bg, args):
    """Hand the refine cache folder and the identity weights to the pipeline."""
    if args.refine:
        bg.set_refine_cache(args.refine_cache)
        bg.load_identity_weights(args.identity_weights)


# --------------------------------------------------------------------------- face edits (issue 34)


def add_edit_arguments(parser):
    """--edit NAME=AMOUNT (repeatable), --directions FILE (repeatable) (docs/editing.md). Default: no edit."""
    group = parser.add_argument_group("edit the face before it is stylized (docs/editing.md)")
    group.add_argument(
        "--edit",
        action="append",
        default=None,
        metavar="NAME=AMOUNT",
        help="move each face along a direction of --directions by AMOUNT standard deviations (e.g. smile=1, "
        "yaw=-0.5); may be given several times (default: none)",
    )
    group.add_argument(
        "--directions",
        action="append",
        default=None,
        metavar="FILE",
        help="directions.safetensors of `blendgan directions` for this --ckpt, or an external [512] / "
        "[n_latent, 512] tensor (.pt, .npy, named by its file name); may be given several times (default: none)",
    )


def check_edit_arguments(args):
    """{name: amount} of the --edit flags; one-line UsageError for a malformed one, before any loading."""
    from ..editing.apply import parse_edit

    amounts = dict(parse_edit(v) for v in getattr(args, "edit", None) or [])
    if amounts and not getattr(args, "directions", None):
        raise UsageError("--edit needs --directions FILE (make one with `blendgan directions`)")
    for path in getattr(args, "directions", None) or []:
        if not os.path.isfile(os.path.expanduser(path)):
            raise UsageError(f"--directions {path}: file not found (make one with `blendgan directions`)")
    return amounts


def edits_from_args(bg, args, add_weight_index):
    """The pipeline's `Edits` of --edit / --directions, or None when no edit was asked for."""
    amounts = check_edit_arguments(args)
    if not amounts:
        return None
    from ..editing.apply import Edits

    return Edits(bg.load_directions(args.directions, add_weight_index), amounts)
