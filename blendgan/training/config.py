"""Plain-dataclass settings of a training run, saved as RUN/config.json (every setting, JSON types only)."""
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..files import write_bytes_atomic


@dataclass
class RunConfig:
    """Settings every trainer has."""

    outdir: str = "runs/train"
    batch: int = 4                 # per process
    iters: int = 800000            # total optimiser steps of the run (a resumed run stops at the same step)
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"        # fp32 | bf16 (autocast) | fp16 (autocast + gradient scaler, CUDA) | fp64 (checks)
    snapshot_every: int = 5000
    sample_every: int = 1000
    log_every: int = 10
    resume: bool = False
    progress: bool = True


@dataclass
class GeneratorConfig(RunConfig):
    """`blendgan train generator`: StyleGAN2 practice (rosinality / stylegan2-ada) unless noted."""

    faces: str = ""
    styles: str = ""
    size: int = 1024
    init: str = ""                 # rosinality StyleGAN2 checkpoint (g/g_ema/d) or a blendgan.pt to fine-tune
    style_encoder_ckpt: str = ""
    channel_multiplier: int = 2
    max_channels: int = 512
    lr: float = 0.002
    r1: float = 10.0
    path_regularize: float = 2.0
    path_batch_shrink: int = 2
    d_reg_every: int = 16
    g_reg_every: int = 4
    mixing: float = 0.9
    face_weight: float = 1.0       # D_face term (natural faces)
    style_weight: float = 1.0      # D_style term (artworks vs stylized faces)
    style_latent_weight: float = 1.0  # D_style_latent term (stylized face consistent with z_s)
    mbstd_group: int = 4           # minibatch-stddev group size, per process
    ema_kimg: float = 10.0         # g_ema half-life in thousands of images
    ema_rampup: float = 0.05       # half-life <= this fraction of the images seen so far (0: off)
    init_embedding: str = "copy"   # new `embedding` mapping when --init is a plain StyleGAN2: copy | random
    sample_rows: int = 4
    sample_styles: int = 4
    metrics: str = ""              # at each snapshot, e.g. fid5k,kid5k (blendgan.metrics.snapshot)
    inception: str = ""            # inception-2015-12-05.pt for them ('' = $BLENDGAN_HOME)


# settings a resumed run may change (everything else comes from RUN/config.json)
RESUME_OVERRIDES = ("iters", "device", "snapshot_every", "sample_every", "log_every", "progress", "resume", "metrics",
                    "inception")


def to_dict(cfg):
    return dataclasses.asdict(cfg)


def save_config(cfg, path):
    """Write every setting as pretty JSON, atomically."""
    write_bytes_atomic(path, (json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n").encode())


def load_config(cls, path):
    """Read RUN/config.json back into `cls`; unknown or missing entries are one-line errors."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: cannot read the run's settings ({err}); is this a training run folder?") from None
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"{path}: unknown settings {unknown}; it was written by another version or trainer")
    return cls(**data)


def merged_for_resume(saved, given):
    """The saved settings with the few run-time ones (`RESUME_OVERRIDES`) taken from `given`."""
    return dataclasses.replace(saved, **{k: getattr(given, k) for k in RESUME_OVERRIDES})


__all__ = ["RunConfig", "GeneratorConfig", "RESUME_OVERRIDES", "save_config", "load_config", "merged_for_resume",
           "to_dict"]
