"""A training run's folder and what is written in it: config.json, checkpoints/{step:06d}.pt,
samples/{step:06d}.jpg, log.jsonl, and the random states a snapshot carries.

Every file is written atomically (blendgan.io.files), so a run killed at any moment leaves only complete
files and resumes from its last complete snapshot; snapshots are read back through the safe checkpoint
reader (weights only, truncated files refused).
"""

import json
import random
import re
from pathlib import Path

import numpy as np
import torch

from .. import weights
from ..errors import CheckpointError, UsageError
from ..io.files import open_atomic, write_bytes_atomic

SNAPSHOT_RE = re.compile(r"^(\d{6,})\.pt$")
FORMAT = "blendgan-training-snapshot/1"


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.checkpoints = self.path / "checkpoints"
        self.samples = self.path / "samples"
        self.log = self.path / "log.jsonl"
        self.style_codes = self.path / "style_codes.pt"  # cache of the frozen style encoder's codes

    def create(self):
        """Make the folders (the main process only)."""
        try:
            for d in (self.path, self.checkpoints, self.samples):
                d.mkdir(parents=True, exist_ok=True)
            # a run killed while writing leaves its temporary file (`.<name>.<random>.tmp<suffix>`, see
            # blendgan/files.py); a resumed run rewrites that step, so the leftover only takes space
            for d in (self.checkpoints, self.samples):
                for leftover in d.glob(".*.tmp*"):
                    leftover.unlink(missing_ok=True)
        except OSError as err:
            raise UsageError(
                f"{self.path}: cannot create the run folder ({err.strerror or err}); pass another --outdir"
            ) from None

    def snapshot_path(self, step):
        return self.checkpoints / f"{step:06d}.pt"

    def sample_path(self, step):
        return self.samples / f"{step:06d}.jpg"

    def snapshots(self):
        """[(step, path)] of the complete snapshots, by step (temporary files of interrupted writes are hidden
        dot-files and never match)."""
        if not self.checkpoints.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir() if (m := SNAPSHOT_RE.match(p.name))]
        return sorted(found)

    def latest_snapshot(self):
        """Path of the highest-step snapshot; UsageError when there is none."""
        snaps = self.snapshots()
        if not snaps:
            raise UsageError(
                f"{self.path}: no snapshot to resume from (no checkpoints/NNNNNN.pt); start the run "
                "without --resume, or pass the --outdir of an earlier run"
            )
        return snaps[-1][1]


def save_snapshot(path, state):
    """torch.save `state` atomically (fsync, then rename over `path`)."""
    try:
        with open_atomic(path) as f:
            torch.save({"format": FORMAT, **state}, f)
    except OSError as err:
        raise UsageError(f"{path}: cannot write the snapshot ({err.strerror or err})") from None


def load_snapshot(path):
    """A training snapshot, read safely (memory-mapped); a truncated, foreign or non-training file is a
    CheckpointError naming it."""
    ckpt = weights.read_checkpoint(path, prefer_safetensors=False)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a training snapshot of blendgan (no '{FORMAT}' format entry); "
            "resume needs the run folder's own checkpoints/NNNNNN.pt"
        )
    return ckpt


def rng_state():
    """Every global random state this process uses (torch CPU and CUDA, NumPy, Python)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": repr(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    import ast

    torch.set_rng_state(state["torch"].clone())
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate(ast.literal_eval(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.clone() for s in state["cuda"]])


class JsonLog:
    """log.jsonl: one JSON object per logged step, appended and flushed (main process only)."""

    def __init__(self, path, enabled=True):
        self.path, self.enabled = Path(path), enabled

    def truncate_after(self, step):
        """Drop lines past `step` (a resumed run rewrites what came after its snapshot)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        write_bytes_atomic(self.path, "".join(line + "\n" for line in keep).encode())

    def write(self, record):
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
                f.flush()


def read_log(path):
    """The records of a log.jsonl."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
