"""The skeleton every trainer runs on: one run start and one step tail.

    run start   open the run folder (new, or resumed with its saved settings and highest snapshot), the settings
                check all trainers share (ranges from the config fields, precision), the process group, the
                compute dtype and autocast, the clock
    each step   the trainer's own step (its losses and optimiser updates), then the tail: log line, sample
                sheet, snapshot, barrier

A trainer is a class built from the `Run` (it loads its data and networks and may call `run.write_settings()`
as soon as its inputs are checked) with these methods:

    check(cfg, ctx)      static: the trainer's own settings check, before any work
    restore(snapshot)    load its networks and optimisers from a snapshot (resumed runs)
    parallel()           wrap what trains for several processes (after restore: DDP broadcasts rank 0's weights)
    step(step, positions) -> {name: float}   one optimiser step on the global sample positions
    log_values(values)   the step's values as logged (e.g. averaged over processes) plus its own extras
    postfix(record)      the progress bar's short summary of a log line
    sample()             the sample sheet (BGR uint8), main process only
    state()              its part of a snapshot (networks, optimisers; the skeleton adds step, clock, random
                         states, data sizes and settings)
    data_sizes()         {name: number of images} recorded in each snapshot
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, TextIO

import torch

from .. import distributed
from ..errors import UsageError
from ..io.images import write_image_atomic
from . import config as config_mod
from . import data
from .runs import JsonLog, RunDir, load_snapshot, rng_state, save_snapshot, set_rng_state
from .tensorboard import Board


def compute_dtype(precision: str) -> torch.dtype:
    return torch.float64 if precision == "fp64" else torch.float32


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision of the forward passes (bf16 anywhere, fp16 on CUDA)."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def open_run(cfg: config_mod.Config, given: set[str]) -> tuple[config_mod.Config, RunDir, dict | None]:
    """(settings, folder, snapshot or None). A resumed run takes its saved settings, with the run-time ones
    among `given` (the settings the user gave) changed, and its highest snapshot, or none when it was
    stopped before its first: it then starts again from step 0. A new run refuses a folder that already holds
    snapshots (nothing is overwritten)."""
    folder = RunDir(cfg.outdir)
    snaps = folder.snapshots()
    if not cfg.resume:
        if snaps:
            raise UsageError(
                f"{folder.path} already holds snapshots; continue it with --resume or pass another --outdir"
            )
        return cfg, folder, None
    if not folder.config.is_file():
        if snaps:
            raise UsageError(f"{folder.config}: missing; {folder.path} is not a complete training run folder")
        raise UsageError(
            f"{folder.path}: no snapshot to resume from and no saved settings (config.json); start the "
            "run without --resume, or pass the --outdir of an earlier run"
        )
    cfg = config_mod.merged_for_resume(config_mod.load_config(type(cfg), folder.config), cfg, given)
    return cfg, folder, load_snapshot(snaps[-1][1]) if snaps else None


def check_settings(cfg: config_mod.RunConfig, ctx: distributed.Context) -> None:
    """The check every trainer runs first: ranges and choices of every setting, precision vs device."""
    config_mod.check_ranges(cfg)
    if cfg.precision == "fp16" and ctx.device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA GPU (its gradient scaler); use bf16 or fp32 on the CPU")
    if ctx.is_main:
        from ..devices import warn_if_bf16_is_emulated

        warn_if_bf16_is_emulated(cfg.precision, ctx.device)


class StepClock:
    """images/s between log lines and the run's total training time (carried over by snapshots)."""

    def __init__(self, start_step: int, images_per_step: int, elapsed_before: float = 0.0) -> None:
        self.images_per_step, self.elapsed_before = images_per_step, elapsed_before
        self.t_start = self.t_last = time.perf_counter()
        self.step_last = start_step

    def rate(self, done: int) -> float:
        now = time.perf_counter()
        r = (done - self.step_last) * self.images_per_step / max(now - self.t_last, 1e-9)
        self.t_last, self.step_last = now, done
        return r

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start


class Progress:
    """tqdm bar over images (rate in img/s, ETA) on the main process; silent elsewhere."""

    def __init__(self, total_steps: int, start_step: int, images_per_step: int, enabled: bool = True) -> None:
        self.images_per_step = images_per_step
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_steps * images_per_step,
                initial=start_step * images_per_step,
                unit="img",
                unit_scale=True,
                dynamic_ncols=True,
                smoothing=0.1,
            )

    def step(self, postfix: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self.images_per_step)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Run:
    """One training run in this process: settings, folder, snapshot to resume from, device and precision."""

    def __init__(
        self,
        cfg: config_mod.RunConfig,
        ctx: distributed.Context,
        folder: RunDir,
        snapshot: dict | None,
        log_file: TextIO | None = None,
    ) -> None:
        self.cfg, self.ctx, self.folder, self.snapshot, self.log_file = cfg, ctx, folder, snapshot, log_file
        self.device, self.dtype = ctx.device, compute_dtype(cfg.precision)
        self.cast = autocast(cfg.precision, ctx.device)
        self.images_per_step = cfg.batch * ctx.world_size
        self.start, self.elapsed_before = 0, 0.0
        if snapshot is not None:
            saved = snapshot["data"]["images_per_step"]
            if saved != self.images_per_step:
                raise UsageError(
                    f"the run was trained with {saved} images per step (batch x processes); resume it "
                    f"with the same global batch (now {self.images_per_step})"
                )
            self.start, self.elapsed_before = int(snapshot["step"]), float(snapshot["elapsed_s"])
        self._log = None

    def write_settings(self) -> None:
        """Create the folder, write config.json and drop log lines past the start (main process), once; from
        then on `--outdir RUN --resume` continues the run. Every process calls it (a barrier)."""
        if self._log is not None:
            return
        self._log = JsonLog(self.folder.log, enabled=self.ctx.is_main)
        if self.ctx.is_main:
            self.folder.create()
            config_mod.save_config(self.cfg, self.folder.config)
            self._log.truncate_after(self.start)
        distributed.barrier(self.ctx)

    def loop(self, trainer: Any) -> int:
        """Steps from the start to --iters with the shared tail; returns the final step."""
        cfg, ctx = self.cfg, self.ctx
        if self.snapshot is not None:
            trainer.restore(self.snapshot)
            set_rng_state(self.snapshot["rng"])
            self.snapshot = None
        trainer.parallel()
        self.write_settings()
        progress = Progress(cfg.iters, self.start, self.images_per_step, enabled=ctx.is_main and cfg.progress)
        clock = StepClock(self.start, self.images_per_step, self.elapsed_before)
        board = Board(self.folder.path, self.start, enabled=ctx.is_main)  # when tensorboard is installed
        try:
            self._steps(trainer, progress, clock, board)
        finally:
            board.close()
        progress.close()
        return cfg.iters

    def _steps(self, trainer: Any, progress: Progress, clock: StepClock, board: Board) -> None:
        cfg, ctx = self.cfg, self.ctx
        for step in range(self.start, cfg.iters):
            values = trainer.step(step, data.global_positions(step, cfg.batch, ctx))
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.iters:
                record = {
                    "step": done,
                    "kimg": done * self.images_per_step / 1000,
                    **trainer.log_values(values),
                    "images_per_s": clock.rate(done),
                    "elapsed_s": clock.elapsed(),
                }
                self._log.write(record)
                board.scalars({**record, "lr": getattr(cfg, "lr", None)}, done)
                progress.step(trainer.postfix(record))
            else:
                progress.step()
            if ctx.is_main and (done % cfg.sample_every == 0 or done == cfg.iters):
                sheet = trainer.sample()
                write_image_atomic(self.folder.sample_path(done), sheet)
                board.image("samples", sheet, done)
            if done % cfg.snapshot_every == 0 or done == cfg.iters:
                if ctx.is_main:
                    state = trainer.state()
                    save_snapshot(
                        self.folder.snapshot_path(done),
                        {
                            **state,
                            "step": done,
                            "elapsed_s": clock.elapsed(),
                            "rng": rng_state(),
                            "data": {
                                "images_seen": done * self.images_per_step,
                                "images_per_step": self.images_per_step,
                                **trainer.data_sizes(),
                            },
                            "config": config_mod.to_dict(cfg),
                        },
                    )
                distributed.barrier(ctx)
                after = getattr(trainer, "after_snapshot", None)  # e.g. the generator's --metrics
                if after is not None:
                    measured = after(done, done * self.images_per_step / 1000, self.folder.snapshot_path(done))
                    board.scalars({f"metrics/{k}": v for k, v in (measured or {}).items()}, done)
                board.flush()
                _hold_for_tests(done)


#: test hook: "STEP" makes the process stop itself (SIGSTOP) right after that step's snapshot, so a test can
#: kill it at exactly that point (a kill timed by polling can come after later snapshots on a fast machine)
HOLD_ENV = "BLENDGAN_TEST_HOLD_AFTER_SNAPSHOT"


def _hold_for_tests(step: int) -> None:
    import os
    import signal

    if os.environ.get(HOLD_ENV) == str(step) and hasattr(signal, "SIGSTOP"):  # POSIX only
        os.kill(os.getpid(), signal.SIGSTOP)


def train(
    trainer_cls: Callable[[Run], Any],
    cfg: config_mod.RunConfig,
    given: set[str] | None = None,
    log_file: TextIO | None = None,
) -> int:
    """Run (or resume) a training run of `trainer_cls` on this process (or its torchrun group); returns the
    final step. `given`: the names of the settings the user gave (on resume only those among the run-time ones
    change the saved run); None takes those that differ from their defaults (the Python API)."""
    given = config_mod.given_settings(cfg) if given is None else set(given)
    cfg, folder, snapshot = open_run(cfg, given)
    config_mod.check_ranges(cfg)  # before joining a process group: a bad flag is refused at once
    ctx = distributed.init(cfg.device)
    try:
        check_settings(cfg, ctx)
        trainer_cls.check(cfg, ctx)
        run = Run(cfg, ctx, folder, snapshot, log_file)
        del snapshot
        return run.loop(trainer_cls(run))
    finally:
        ctx.close()


__all__ = ["Progress", "Run", "StepClock", "autocast", "check_settings", "compute_dtype", "open_run", "train"]
