"""Picture of training runs: per run, one row with the curves of RUN/log.jsonl, the metrics of
RUN/metric-*.jsonl (`--metrics`, best snapshot circled) if any, and its first and last sample sheet. Works for
the generator's runs and for the encoder trainers' (style-encoder: loss and retrieval top-1; psp: loss, L2,
perceptual).

    python tools/training_figure.py RUN docs/training_run.png
    python tools/training_figure.py STYLE_RUN PSP_RUN docs/encoder_training.png

Drawn with OpenCV only (no plotting library needed).
"""

import json
import sys
from pathlib import Path

import cv2
import numpy as np

CURVES = {
    "d_face": (200, 80, 0),
    "d_style": (0, 140, 255),
    "d_style_latent": (0, 0, 200),
    "g_face": (160, 160, 0),
    "g_style": (200, 0, 200),
    "g_style_latent": (60, 60, 60),
}
ENCODER_CURVES = {"loss": (200, 80, 0), "retrieval_top1": (0, 140, 255), "l2": (0, 0, 200), "perceptual": (200, 0, 200)}


def curves_of(log):
    """The curves a log has: the generator's six terms, else the encoder trainers' ones."""
    keys = CURVES if all(k in log[0] for k in CURVES) else ENCODER_CURVES
    return {k: c for k, c in keys.items() if k in log[0]}


def running_mean(values, window):
    """Mean of the last `window` values at each step (fewer at the start)."""
    c = np.cumsum(np.concatenate([[0.0], values]))
    i = np.arange(1, len(values) + 1)
    return (c[i] - c[np.maximum(i - window, 0)]) / np.minimum(i, window)


def plot(log, width=520, height=360, margin=44):
    curves = curves_of(log)
    img = np.full((height, width, 3), 255, np.uint8)
    steps = [r["step"] for r in log]
    window = max(1, len(log) // 20)  # per-step losses are noisy: draw their running mean
    smooth = {k: running_mean(np.array([r[k] for r in log], np.float64), window) for k in curves}
    values = [v for k in curves for v in smooth[k]]
    lo, hi = min(values), max(values)
    x = lambda s: int(margin + (s - steps[0]) / max(steps[-1] - steps[0], 1) * (width - margin - 10))  # noqa: E731
    y = lambda v: int(height - margin - (v - lo) / max(hi - lo, 1e-9) * (height - margin - 30))  # noqa: E731
    cv2.rectangle(img, (margin, 30), (width - 10, height - margin), (0, 0, 0), 1)
    for k, color in curves.items():
        pts = np.array([[x(st), y(v)] for st, v in zip(steps, smooth[k])], np.int32)
        cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)
    for i, (k, color) in enumerate(curves.items()):
        cv2.putText(
            img,
            k,
            (margin + 6 + (i % 3) * 150, 12 + (i // 3) * 13),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.38,
            color,
            1,
            cv2.LINE_AA,
        )
    font = dict(fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=0.38, color=(0, 0, 0), thickness=1)
    cv2.putText(img, f"{hi:.2f}", (2, 36), **font)
    cv2.putText(img, f"{lo:.2f}", (2, height - margin), **font)
    cv2.putText(img, f"step {steps[0]}", (margin, height - margin + 16), **font)
    cv2.putText(img, f"step {steps[-1]}", (width - 80, height - margin + 16), **font)
    cv2.putText(img, f"loss terms, running mean of {window} steps", (margin + 90, height - margin + 32), **font)
    return img


METRIC_COLORS = [(200, 80, 0), (0, 140, 255), (0, 0, 200), (200, 0, 200)]


def metric_panel(run, width=360, height=360, margin=44):
    """Value per snapshot of each RUN/metric-NAME.jsonl (each on its own scale), best snapshot circled; None
    when the run has no metrics."""
    logs = {}
    for f in sorted(Path(run).glob("metric-*.jsonl")):
        records = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if records:
            logs[f.stem[len("metric-") :]] = records
    if not logs:
        return None
    img = np.full((height, width, 3), 255, np.uint8)
    steps = [r["step"] for records in logs.values() for r in records]
    s0, s1 = min(steps), max(steps)
    cv2.rectangle(img, (margin, 30), (width - 10, height - margin), (0, 0, 0), 1)
    font = dict(fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=0.38, thickness=1, lineType=cv2.LINE_AA)
    for i, (name, records) in enumerate(logs.items()):
        color = METRIC_COLORS[i % len(METRIC_COLORS)]
        values = [r["value"] for r in records]
        lo, hi = min(values), max(values)
        x = lambda s: int(margin + (s - s0) / max(s1 - s0, 1) * (width - margin - 10))  # noqa: E731
        span = (height - margin - 30) / max(hi - lo, 1e-12)
        y = lambda v, lo=lo, span=span: int(height - margin - (v - lo) * span)  # noqa: E731
        pts = np.array([[x(r["step"]), y(r["value"])] for r in records], np.int32)
        cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, tuple(int(c) for c in p), 2, color, -1, cv2.LINE_AA)
        best = min(records, key=lambda r: r["value"])
        cv2.circle(img, (x(best["step"]), y(best["value"])), 6, color, 1, cv2.LINE_AA)
        cv2.putText(
            img, f"{name} {lo:.3g}..{hi:.3g}, best step {best['step']}", (margin, 12 + i * 13), color=color, **font
        )
    cv2.putText(img, f"step {s0}", (margin, height - margin + 16), color=(0, 0, 0), **font)
    cv2.putText(img, f"step {s1}", (width - 80, height - margin + 16), color=(0, 0, 0), **font)
    cv2.putText(img, "metrics at snapshots (own scales)", (margin + 40, height - margin + 32), color=(0, 0, 0), **font)
    return img


def fit_height(img, h):
    # small sheets are enlarged pixel by pixel (sharp, and a PNG of flat blocks stays small)
    interp = cv2.INTER_NEAREST if h > img.shape[0] else cv2.INTER_AREA
    return cv2.resize(img, (int(img.shape[1] * h / img.shape[0]), h), interpolation=interp)


def row(run):
    run = Path(run)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    grids = sorted((run / "samples").glob("*.jpg"))
    panel = plot(log)
    metrics = metric_panel(run, height=panel.shape[0])
    # the grids are JPEG decodes: 6 bits per channel are invisible there and keep the PNG small
    sheets = [fit_height(cv2.imread(str(g)) & 0xFC, panel.shape[0]) for g in dict.fromkeys((grids[0], grids[-1]))]
    parts = [panel] + ([metrics] if metrics is not None else []) + sheets
    sep = np.full((panel.shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([p for part in parts for p in (part, sep)][:-1], axis=1)


def main(*args):
    """main(RUN, ..., OUT): one row per run, stacked."""
    *runs, out = args
    rows = [row(r) for r in runs]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    cv2.imwrite(str(out), np.concatenate(rows, axis=0)[:-6], [cv2.IMWRITE_PNG_COMPRESSION, 9])


if __name__ == "__main__":
    main(*sys.argv[1:])
