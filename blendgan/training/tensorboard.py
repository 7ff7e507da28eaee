"""TensorBoard event files in RUN/tensorboard/, next to log.jsonl, when the optional `tensorboard` package is
installed (`pip install "blendgan[tensorboard]"`); without it nothing is written and nothing fails.

What goes in: every number of each log.jsonl line (losses, regularisation terms, ADA's p, speed), the learning
rate, the metrics measured at snapshots, and each sample sheet as an image. View with
`tensorboard --logdir RUN/tensorboard`. A resumed run purges the events past its snapshot's step (TensorBoard
drops them when it reads the new file), so its curves continue without a doubled stretch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from pathlib import Path

FOLDER = "tensorboard"
# tag groups: a log entry's name prefix -> its TensorBoard section
GROUPS = (
    ("augment_", "augment"),
    ("d_", "loss"),
    ("g_", "loss"),
    ("r1", "loss"),
    ("path_", "regularization"),
    ("mean_path", "regularization"),
    ("images_per_s", "speed"),
    ("elapsed_s", "speed"),
)
SKIP = ("step", "kimg")


def summary_writer_class() -> type | None:
    """torch's SummaryWriter, or None when the tensorboard package is absent."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def tag(name: str) -> str:
    for prefix, group in GROUPS:
        if name.startswith(prefix):
            return f"{group}/{name}"
    return name if "/" in name else f"train/{name}"


class Board:
    """The run's event writer (main process), a no-op when disabled or when tensorboard is not installed."""

    def __init__(self, run_folder: Path, start_step: int = 0, enabled: bool = True) -> None:
        cls = summary_writer_class() if enabled else None
        self.writer = None
        if cls is not None:
            self.writer = cls(str(Path(run_folder) / FOLDER), purge_step=start_step or None)

    def scalars(self, record: dict, step: int) -> None:
        """Every number of `record` (lists of numbers as name/0, name/1, ...)."""
        if self.writer is None:
            return
        for name, value in record.items():
            if name in SKIP or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                self.writer.add_scalar(tag(name), float(value), step)
            elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
                for i, v in enumerate(value):
                    self.writer.add_scalar(f"{tag(name)}/{i}", float(v), step)

    def image(self, name: str, bgr: np.ndarray, step: int) -> None:
        """An H x W x 3 uint8 BGR sheet."""
        if self.writer is not None:
            self.writer.add_image(name, bgr[:, :, ::-1].copy(), step, dataformats="HWC")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["Board", "FOLDER", "summary_writer_class", "tag"]
