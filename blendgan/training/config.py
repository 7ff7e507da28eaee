"""Settings of the three trainers as plain dataclasses, saved as RUN/config.json (every setting, JSON types only).

Each field carries its own flag help, flag group and range check in its metadata (`setting`): the command line
(`blendgan train ...`) is generated from these fields and every trainer runs the same range checks
(`check_ranges`), so a help text or a bound is written once.

Choices the paper leaves open, with their reasons (see the README's Training section):
- style encoder: SimCLR's NT-Xent at temperature 0.5 (SimCLR's value for small batches; 0.1 suits batches of
  thousands), Adam lr 0.002 (StyleGAN2's rate for equalised-learning-rate layers), views rendered at 256 px
  (the size the encoder pools every image to) from artworks read at twice that size: a crop of a third of the
  area is then downsampled, never upsampled, and keeps its strokes (upsampled crops are blurred, which alters
  the very texture the encoder must learn; measured in the README).
- pSp: pixel2style2pixel's recipe (L2 1, perceptual 0.8, identity 0.1, W-norm off, Adam lr 1e-4, batch 8).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..defaults import TRAINING_PRECISIONS
from ..errors import UsageError
from ..io.files import write_bytes_atomic

# flag groups, in the order `--help` lists them
DATA, NETWORKS, OPTIMISATION, LOSSES, RUNTIME = (
    "data and networks",
    "networks",
    "optimisation",
    "loss weights",
    "outputs and runtime",
)
GROUPS = (DATA, NETWORKS, OPTIMISATION, LOSSES, RUNTIME)
POSITIVE, NON_NEGATIVE = "positive", "non-negative"


def setting(
    default: Any, help: str, group: str = RUNTIME, check: str | None = None, choices: tuple | None = None
) -> Any:
    """A dataclass field whose metadata holds its flag's help text, group, choices and range check
    (`POSITIVE`: > 0, i.e. at least 1 for whole numbers; `NON_NEGATIVE`: >= 0)."""
    return field(default=default, metadata={"help": help, "group": group, "check": check, "choices": choices})


@dataclass
class RunConfig:
    """Settings every trainer has."""

    outdir: str = setting("runs/train", "run folder: config.json, checkpoints/NNNNNN.pt, samples/NNNNNN.jpg, log.jsonl")
    batch: int = setting(4, "images per process and step", OPTIMISATION, POSITIVE)
    iters: int = setting(
        800000, "total steps of the run (a resumed run stops where a straight run would)", OPTIMISATION, POSITIVE
    )
    seed: int = setting(0, "seed of every random draw (data order, flips, views, codes, noise, initial weights)")
    device: str = setting("auto", "auto (cuda if available, else cpu), cpu, cuda")
    precision: str = setting(
        "fp32",
        "fp32, bf16 (autocast), fp16 (autocast + gradient scaler, CUDA only), fp64 (checks)",
        choices=TRAINING_PRECISIONS,
    )
    snapshot_every: int = setting(
        5000, "steps between snapshots checkpoints/NNNNNN.pt (and at the end)", check=POSITIVE
    )
    sample_every: int = setting(1000, "steps between sample sheets samples/NNNNNN.jpg (and at the end)", check=POSITIVE)
    log_every: int = setting(10, "steps between log.jsonl lines", check=POSITIVE)
    resume: bool = setting(
        False,
        "continue the run in --outdir from its highest snapshot (or from its start when "
        "it has none yet) with its saved settings; only the flags given among --iters, "
        "--device, --*_every, --no_progress change them",
    )
    progress: bool = setting(True, "no progress bar")


@dataclass
class GeneratorConfig(RunConfig):
    """`blendgan train generator`: StyleGAN2 practice (rosinality / stylegan2-ada) unless noted."""

    faces: str = setting("", "folder of natural face images, FFHQ-aligned (any format the other commands read)", DATA)
    styles: str = setting("", "folder of artworks / style images, aligned the same way", DATA)
    size: int = setting(1024, "image size (power of two)", NETWORKS, POSITIVE)
    init: str = setting(
        "",
        "start from rosinality's StyleGAN2 checkpoint (g/g_ema/d) or a blendgan.pt to "
        "fine-tune; empty: random initialisation",
        NETWORKS,
    )
    style_encoder_ckpt: str = setting(
        "", "frozen style encoder (style_encoder.pt or a blendgan.pt); needed unless --init holds one", NETWORKS
    )
    channel_multiplier: int = setting(2, "StyleGAN2 channel multiplier (2 = config-f)", NETWORKS, POSITIVE)
    max_channels: int = setting(
        512, "cap of every layer's width (512 = the official networks; e.g. 64 for smoke tests)", NETWORKS, POSITIVE
    )
    lr: float = setting(
        0.002, "Adam learning rate (betas 0, 0.99; lazy-regularisation corrected)", OPTIMISATION, POSITIVE
    )
    r1: float = setting(10.0, "R1 weight gamma (StyleGAN2 uses 10 at 1024)", OPTIMISATION, NON_NEGATIVE)
    path_regularize: float = setting(2.0, "path-length penalty weight", OPTIMISATION, NON_NEGATIVE)
    path_batch_shrink: int = setting(2, "path-length batch = batch / this", OPTIMISATION, POSITIVE)
    d_reg_every: int = setting(16, "lazy R1 interval (steps)", OPTIMISATION, POSITIVE)
    g_reg_every: int = setting(4, "lazy path-length interval (steps)", OPTIMISATION, POSITIVE)
    mixing: float = setting(0.9, "style-mixing probability (face branch, per sample)", OPTIMISATION, NON_NEGATIVE)
    face_weight: float = setting(1.0, "weight of the D_face term (natural faces)", OPTIMISATION, NON_NEGATIVE)
    style_weight: float = setting(
        1.0, "weight of the D_style term (artworks vs stylized faces)", OPTIMISATION, NON_NEGATIVE
    )
    style_latent_weight: float = setting(
        1.0, "weight of the D_style_latent term (stylized face consistent with z_s)", OPTIMISATION, NON_NEGATIVE
    )
    mbstd_group: int = setting(4, "minibatch-stddev group size per process", OPTIMISATION, POSITIVE)
    ema_kimg: float = setting(10.0, "g_ema half-life in thousands of images", OPTIMISATION, NON_NEGATIVE)
    ema_rampup: float = setting(
        0.05, "g_ema half-life at most this fraction of the images seen (0 = off)", OPTIMISATION, NON_NEGATIVE
    )
    augment: str = setting(
        "none",
        "augment every image the discriminators see (reals and fakes; docs/training.md): ada (p adapts to "
        "their overfitting, StyleGAN2-ADA), fixed (p = --augment_p), none",
        OPTIMISATION,
        choices=("none", "fixed", "ada"),
    )
    augment_p: float = setting(
        0.0, "augmentation probability: fixed's p, ada's starting p (0 to 1)", OPTIMISATION, NON_NEGATIVE
    )
    target: float = setting(
        0.6, "ada: target of r_t = E[sign(D(reals))]; p rises while r_t is above it", OPTIMISATION, NON_NEGATIVE
    )
    ada_kimg: float = setting(500.0, "ada: p can move from 0 to 1 in this many thousand images", OPTIMISATION, POSITIVE)
    ada_interval: int = setting(4, "ada: steps between adjustments of p", OPTIMISATION, POSITIVE)
    init_embedding: str = setting(
        "copy",
        "the new style mapping `embedding` when --init is a plain StyleGAN2: "
        "copy of the face mapping `style`, or random",
        NETWORKS,
        choices=("copy", "random"),
    )
    sample_rows: int = setting(4, "face codes (rows) in the sample grid", check=POSITIVE)
    sample_styles: int = setting(4, "style images (columns) in the sample grid", check=NON_NEGATIVE)
    metrics: str = setting(
        "",
        "metrics at each snapshot, appended to metric-NAME.jsonl: fid or kid + generated images, e.g. "
        "fid5k,kid5k (docs/metrics.md; empty: none)",
    )
    inception: str = setting(
        "", "inception-2015-12-05.pt for --metrics (empty: $BLENDGAN_HOME/inception-2015-12-05.pt)"
    )


@dataclass
class StyleEncoderConfig(RunConfig):
    """`blendgan train style-encoder`: contrastive self-supervised training of the style encoder's MLP."""

    styles: str = setting("", "folder of artworks (any format the other commands read)", DATA)
    init: str = setting(
        "",
        "where the frozen VGG19 (and a starting MLP) come from: style_encoder.pt or "
        "blendgan.pt, or torchvision's vgg19 weights file (vgg19-dcbb9e9d.pth; the MLP then starts "
        "random)",
        DATA,
    )
    batch: int = setting(16, "images per process and step", OPTIMISATION, POSITIVE)
    iters: int = setting(
        20000, "total steps of the run (a resumed run stops where a straight run would)", OPTIMISATION, POSITIVE
    )
    lr: float = setting(0.002, "Adam learning rate", OPTIMISATION, POSITIVE)
    temperature: float = setting(0.5, "NT-Xent temperature (cosine similarities are divided by it)", DATA, POSITIVE)
    size: int = setting(256, "views are rendered at size x size (inference pools to 256)", DATA, POSITIVE)
    read_size: int = setting(
        0, "artworks are read at this size, views cropped from them (0: 2 x --size)", DATA, NON_NEGATIVE
    )
    crop_scale_min: float = setting(0.35, "smallest random crop, as a fraction of the image area", DATA, POSITIVE)
    max_rotation: float = setting(10.0, "largest random rotation of a view, in degrees", DATA, NON_NEGATIVE)
    frozen_mlp_layers: int = setting(
        0, "first MLP layers kept fixed; 1 freezes the 610304-wide layer (~5 GB less memory)", DATA, NON_NEGATIVE
    )
    snapshot_every: int = setting(
        1000, "steps between snapshots checkpoints/NNNNNN.pt (and at the end)", check=POSITIVE
    )
    sample_every: int = setting(
        500, "steps between retrieval sheets samples/NNNNNN.jpg (and at the end)", check=POSITIVE
    )
    sample_queries: int = setting(4, "query artworks (rows) of the retrieval sheet", check=POSITIVE)
    sample_neighbours: int = setting(5, "nearest neighbours shown per query", check=POSITIVE)
    sample_pool: int = setting(32, "the sheet searches the first this many artworks", check=POSITIVE)


@dataclass
class PSPConfig(RunConfig):
    """`blendgan train psp`: pixel2style2pixel encoder against the frozen generator's face branch."""

    faces: str = setting("", "folder of aligned face photos (FFHQ alignment; `blendgan align` makes them)", DATA)
    ckpt: str = setting(
        "", "the frozen generator, blendgan.pt (its face branch; its VGG19 serves the perceptual loss)", DATA
    )
    init: str = setting("", "psp_encoder.pt to continue from; empty: a new encoder", DATA)
    id_weights: str = setting(
        "",
        "ArcFace IR-SE50 weights for the identity loss (pSp's model_ir_se50.pth); required unless --id_lambda 0",
        DATA,
    )
    vgg_weights: str = setting(
        "",
        "VGG19 of the perceptual loss (blendgan.pt, style_encoder.pt or torchvision's "
        "vgg19 file); empty: the one inside --ckpt",
        DATA,
    )
    batch: int = setting(8, "images per process and step", OPTIMISATION, POSITIVE)
    iters: int = setting(
        500000, "total steps of the run (a resumed run stops where a straight run would)", OPTIMISATION, POSITIVE
    )
    lr: float = setting(1e-4, "Adam learning rate", OPTIMISATION, POSITIVE)
    l2_lambda: float = setting(1.0, "weight of the pixel MSE", LOSSES, NON_NEGATIVE)
    lpips_lambda: float = setting(
        0.8, "weight of the VGG perceptual loss (uncalibrated, not LPIPS); 0 disables it", LOSSES, NON_NEGATIVE
    )
    id_lambda: float = setting(0.1, "weight of the ArcFace identity loss; 0 disables it", LOSSES, NON_NEGATIVE)
    w_norm_lambda: float = setting(
        0.0, "weight of the W-norm of the codes' offsets from latent_avg; 0 disables it", LOSSES, NON_NEGATIVE
    )
    input_size: int = setting(
        256, "the encoder sees faces pooled to this size (inference pools to 256)", DATA, POSITIVE
    )
    snapshot_every: int = setting(
        5000, "steps between snapshots checkpoints/NNNNNN.pt (and at the end)", check=POSITIVE
    )
    sample_every: int = setting(1000, "steps between sample sheets samples/NNNNNN.jpg (and at the end)", check=POSITIVE)
    sample_rows: int = setting(4, "faces (rows of input | reconstruction) in the sample sheet", check=POSITIVE)


@dataclass
class FitStyleConfig(RunConfig):
    """`blendgan fit-style`: fit a style from one to a few references the encoders get wrong (issue 26).

    Stage 1 (the first --code_steps steps) fits the style code z_s alone; stage 2 (the remaining steps up to
    --iters) fits a low-rank adapter on the synthesis convolutions with the fitted code fixed, JoJoGAN's recipe
    translated to BlendGAN: the reference's own face codes, their style layers (from --add_weight_index on)
    mixed with random faces', all mapped to the reference."""

    references: list = field(
        default_factory=list,
        metadata={
            "help": "reference artworks (faces, FFHQ-aligned or square crops of the face)",
            "group": DATA,
            "check": None,
            "choices": None,
        },
    )
    ckpt: str = setting(
        "", "the base generator, blendgan.pt (it stays unchanged; the adapter is a file beside it)", DATA
    )
    psp_encoder_ckpt: str = setting("", "psp_encoder.pt: the references' own face codes", DATA)
    sheet_faces: str = setting(
        "", "faces of the before/after sheet (folder); empty: the bundled test_imgs/face_imgs", DATA
    )
    batch: int = setting(2, "images per process and step (stage 2: mixed faces per reference)", OPTIMISATION, POSITIVE)
    iters: int = setting(
        300, "total steps: --code_steps of stage 1, the rest stage 2 (the adapter)", OPTIMISATION, POSITIVE
    )
    code_steps: int = setting(100, "steps of stage 1 (the style code alone); 0 skips it", OPTIMISATION, NON_NEGATIVE)
    rank: int = setting(4, "rank of the adapter's low-rank weight changes", NETWORKS, POSITIVE)
    layers: str = setting("all", "layers the adapter changes: all, or resolutions MIN-MAX (e.g. 32-1024)", NETWORKS)
    add_weight_index: int = setting(
        6, "WBM blend of the fit (as in `transfer`): style from this layer on", NETWORKS, NON_NEGATIVE
    )
    fit_resolution: int = setting(
        256,
        "the fit runs the generator up to this resolution (the losses see 256 px) "
        "and adapts the layers up to it; 0: the generator's size",
        NETWORKS,
        NON_NEGATIVE,
    )
    code_lr: float = setting(0.01, "Adam learning rate of the style code (stage 1)", OPTIMISATION, POSITIVE)
    lr: float = setting(0.002, "Adam learning rate of the adapter (stage 2)", OPTIMISATION, POSITIVE)
    mix_truncation: float = setting(
        0.7, "random faces mixed in stage 2 are drawn this close to the mean face", OPTIMISATION, NON_NEGATIVE
    )
    perceptual_lambda: float = setting(1.0, "weight of the VGG perceptual loss", LOSSES, NON_NEGATIVE)
    style_lambda: float = setting(1.0, "weight of the relative Gram (style) loss", LOSSES, NON_NEGATIVE)
    l1_lambda: float = setting(0.0, "weight of the pixel L1 loss", LOSSES, NON_NEGATIVE)
    snapshot_every: int = setting(100, "steps between snapshots checkpoints/NNNNNN.pt (and at the end)", check=POSITIVE)
    sample_every: int = setting(
        100, "steps between before/after sheets samples/NNNNNN.jpg (and at the end)", check=POSITIVE
    )


#: `blendgan fit-style --quick`: one image per step and half the steps, so that a fit at 1024 px finishes within
#: about a quarter of an hour on a 2-core CPU (benchmarks/results/fit_style_cpu.md); flags given beside it win
FIT_STYLE_QUICK = {"batch": 1, "iters": 150, "code_steps": 50, "snapshot_every": 50, "sample_every": 150}

# settings a resumed run may change, when they are given (everything else comes from RUN/config.json)
RESUME_OVERRIDES = (
    "iters",
    "device",
    "snapshot_every",
    "sample_every",
    "log_every",
    "progress",
    "metrics",
    "inception",
)

Config = TypeVar("Config", bound=RunConfig)


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def given_settings(cfg: RunConfig) -> set[str]:
    """The names of the settings that differ from their defaults: what a caller of the Python API gave."""
    default = type(cfg)()
    return {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(default, f.name)}


def check_ranges(cfg: RunConfig) -> None:
    """UsageError (one line, naming the flag) for the first setting outside its range or choices."""
    for f in dataclasses.fields(cfg):
        value, check, choices = getattr(cfg, f.name), f.metadata.get("check"), f.metadata.get("choices")
        flag = f"--{f.name} {value}"
        if choices and value not in choices:
            raise UsageError(f"{flag}: choose one of {', '.join(choices)}")
        if check == POSITIVE and not value > 0:
            raise UsageError(f"{flag}: must be {'at least 1' if isinstance(value, int) else 'positive'}")
        if check == NON_NEGATIVE and not value >= 0:
            raise UsageError(f"{flag}: must not be negative")


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write every setting as pretty JSON, atomically."""
    write_bytes_atomic(path, (json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n").encode())


def load_config(cls: type[Config], path: str | Path) -> Config:
    """Read RUN/config.json back into `cls`; unknown or missing entries are one-line errors."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: cannot read the run's settings ({err}); is this a training run folder?") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a run's settings (a JSON object); is this a training run folder?")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"{path}: unknown settings {unknown}; it was written by another version or trainer")
    return cls(**data)


def merged_for_resume(saved: Config, given: Config, names: set[str]) -> Config:
    """The saved settings, with the run-time ones (`RESUME_OVERRIDES`) that were given (`names`) taken from
    `given`; any other setting given with a value unlike the saved one is a UsageError (the run keeps its own)."""
    for name in sorted(names - set(RESUME_OVERRIDES) - {"outdir", "resume"}):
        if getattr(given, name) != getattr(saved, name):
            raise UsageError(
                f"--{name} {getattr(given, name)}: this run was made with {getattr(saved, name)!r} "
                "and a resumed run keeps its settings (only --iters, --device, --*_every and "
                "--no_progress may change)"
            )
    changed = {k: getattr(given, k) for k in RESUME_OVERRIDES if k in names}
    return dataclasses.replace(saved, outdir=given.outdir, resume=True, **changed)


__all__ = [
    "RunConfig",
    "GeneratorConfig",
    "StyleEncoderConfig",
    "PSPConfig",
    "FitStyleConfig",
    "RESUME_OVERRIDES",
    "setting",
    "check_ranges",
    "given_settings",
    "save_config",
    "load_config",
    "merged_for_resume",
    "FIT_STYLE_QUICK",
    "to_dict",
]
