"""Metrics at training snapshots: `--metrics fid5k,kid5k` on the generator trainer.

At each snapshot the EMA generator makes N faces (G(z), stored noise maps, no truncation; z a function of the
seed and the sample's index only) that are scored against the run's face folder, read at the training size
(the trainer's own resize) and cached by content, so the folder is read once per run. Each metric appends one
JSON line to RUN/metric-<name>.jsonl:

    {"step": 5000, "kimg": 20.0, "snapshot": "checkpoints/005000.pt", "value": 12.3, "seconds": 81.2,
     "best": {"step": 5000, "snapshot": "checkpoints/005000.pt", "value": 12.3}}

`best` names the best snapshot so far (lowest FID / KID). Names: fid or kid followed by N, with an optional
k for thousands (fid5k = 5000 images, kid200 = 200). Under torchrun every process generates its share.
"""

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..io.files import write_bytes_atomic
from .evaluate import Options, _networks, evaluate_generator

NAME_RE = re.compile(r"^(fid|kid)(\d+)(k?)$")


@dataclass(frozen=True)
class TrainingMetric:
    name: str  # as given: fid5k
    kind: str  # fid | kid
    n: int  # generated images


def parse_training_metrics(text):
    """'fid5k,kid5k' -> [TrainingMetric]; a bad name is a UsageError listing the form."""
    out = []
    for name in [t.strip().lower() for t in str(text or "").split(",") if t.strip()]:
        m = NAME_RE.match(name)
        if not m or int(m.group(2)) == 0:
            raise UsageError(
                f"--metrics {name!r}: use fid or kid followed by the number of generated images, "
                "e.g. fid5k (5000), kid50k, fid200"
            )
        out.append(TrainingMetric(name, m.group(1), int(m.group(2)) * (1000 if m.group(3) else 1)))
    return list({m.name: m for m in out}.values())


def metric_log(run_dir, name):
    return Path(run_dir) / f"metric-{name}.jsonl"


def read_metric_log(run_dir, name):
    p = metric_log(run_dir, name)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def best_record(records):
    """The record with the lowest value (FID and KID: lower is better), or None."""
    return min(records, key=lambda r: r["value"]) if records else None


class SnapshotMetrics:
    """Made once per run (checks the Inception file before training starts); called at each snapshot."""

    def __init__(
        self,
        metrics,
        faces,
        run_dir,
        size,
        ctx,
        inception="",
        batch=16,
        seed=0,
        cache_dir="",
        inception_sha256="",
        log=None,
    ):
        self.metrics = parse_training_metrics(metrics)
        self.run_dir, self.faces, self.ctx, self.log = Path(run_dir), faces, ctx, log
        self.opts = Options(
            inception=inception,
            inception_sha256=inception_sha256,
            device=str(ctx.device),
            batch=batch,
            cache_dir=cache_dir,
            real_size=int(size),
            seed=seed,
            log=log,
        )
        if self.metrics:
            _networks(self.opts).get("inception")  # a missing or wrong file fails now, not after hours

    def __bool__(self):
        return bool(self.metrics)

    def __call__(self, generator, step, kimg, snapshot_path=None):
        """Compute every metric for this snapshot, append the records (main process); returns {name: value}."""
        values = {}
        by_n = {}
        for m in self.metrics:
            by_n.setdefault(m.n, []).append(m)
        was_training = generator.training
        generator.eval()
        try:
            for n, group in by_n.items():
                t0 = time.perf_counter()
                got = evaluate_generator(
                    generator, n, self.faces, [m.kind for m in group], self.opts, self.ctx, device=self.ctx.device
                )
                seconds = time.perf_counter() - t0
                for m in group:
                    values[m.name] = got[m.kind]
                    if self.ctx.is_main:
                        self._append(m.name, step, kimg, snapshot_path, got[m.kind], seconds)
        finally:
            generator.train(was_training)
        return values

    def _append(self, name, step, kimg, snapshot_path, value, seconds):
        records = [r for r in read_metric_log(self.run_dir, name) if r["step"] < step]  # a resumed run redoes
        snap = str(Path(snapshot_path).relative_to(self.run_dir)) if snapshot_path else None
        record = {"step": step, "kimg": kimg, "snapshot": snap, "value": value, "seconds": round(seconds, 3)}
        best = best_record(records + [record])
        record["best"] = {k: best[k] for k in ("step", "snapshot", "value")}
        text = "".join(json.dumps(r) + "\n" for r in records + [record])
        write_bytes_atomic(metric_log(self.run_dir, name), text.encode())
        print(
            f"{name} {value:.4f} at step {step}; best {best['value']:.4f} at step {best['step']} ({best['snapshot']})",
            file=self.log or sys.stderr,
        )
