"""What the three trainers share around their loops: precision handling, opening or resuming a run folder,
and the timing/logging bookkeeping of one step."""
import contextlib
import time

import torch

from ..errors import UsageError
from . import config as config_mod
from . import distributed
from .rundir import JsonLog, Progress, RunDir, load_snapshot

PRECISIONS = ("fp32", "bf16", "fp16", "fp64")


def compute_dtype(precision):
    return torch.float64 if precision == "fp64" else torch.float32


def autocast(precision, device):
    """Mixed precision of the forward passes (bf16 anywhere, fp16 on CUDA)."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def check_common(cfg, ctx):
    if cfg.batch < 1 or cfg.iters < 1:
        raise UsageError("--batch and --iters must be at least 1")
    if cfg.snapshot_every < 1 or cfg.sample_every < 1 or cfg.log_every < 1:
        raise UsageError("--snapshot_every, --sample_every and --log_every must be at least 1")
    if cfg.lr <= 0:
        raise UsageError(f"--lr {cfg.lr}: must be positive")
    if cfg.precision not in PRECISIONS:
        raise UsageError(f"--precision {cfg.precision}: use fp32, bf16, fp16 (CUDA) or fp64")
    if cfg.precision == "fp16" and ctx.device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA GPU (its gradient scaler); use bf16 or fp32 on the CPU")


def open_run(cfg):
    """(cfg, run, snapshot or None): a resumed run takes its saved settings (but the run-time few) and its
    highest snapshot; a new run refuses a folder that already holds snapshots (nothing is overwritten)."""
    run = RunDir(cfg.outdir)
    if cfg.resume:
        snap_path = run.latest_snapshot()
        if not run.config.is_file():
            raise UsageError(f"{run.config}: missing; {run.path} is not a complete training run folder")
        cfg = config_mod.merged_for_resume(config_mod.load_config(type(cfg), run.config), cfg)
        return cfg, run, load_snapshot(snap_path)
    if run.snapshots():
        raise UsageError(f"{run.path} already holds snapshots; continue it with --resume or pass another --outdir")
    return cfg, run, None


def start_run(cfg, run, ctx, start):
    """Create the folder, write config.json, drop log lines past `start` (main process); -> JsonLog."""
    log = JsonLog(run.log, enabled=ctx.is_main)
    if ctx.is_main:
        run.create()
        config_mod.save_config(cfg, run.config)
        log.truncate_after(start)
    distributed.barrier(ctx)
    return log


class StepClock:
    """images/s between log lines and the run's total training time (carried over by snapshots)."""

    def __init__(self, start_step, images_per_step, elapsed_before=0.0):
        self.images_per_step, self.elapsed_before = images_per_step, elapsed_before
        self.t_start = self.t_last = time.perf_counter()
        self.step_last = start_step

    def rate(self, done):
        now = time.perf_counter()
        r = (done - self.step_last) * self.images_per_step / max(now - self.t_last, 1e-9)
        self.t_last, self.step_last = now, done
        return r

    def elapsed(self):
        return self.elapsed_before + time.perf_counter() - self.t_start


def check_images_per_step(snapshot, images_per_step):
    saved = snapshot["data"]["images_per_step"]
    if saved != images_per_step:
        raise UsageError(f"the run was trained with {saved} images per step (batch x processes); resume it with "
                         f"the same global batch (now {images_per_step})")


__all__ = ["JsonLog", "Progress", "autocast", "check_common", "check_images_per_step", "compute_dtype",
           "open_run", "start_run", "StepClock"]
