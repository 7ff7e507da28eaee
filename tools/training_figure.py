"""Picture of a training run: the loss curves of RUN/log.jsonl beside the first and the last sample grid.

    python tools/training_figure.py RUN docs/training_run.png

Drawn with OpenCV only (no plotting library needed).
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np

CURVES = {"d_face": (200, 80, 0), "d_style": (0, 140, 255), "d_style_latent": (0, 0, 200),
          "g_face": (160, 160, 0), "g_style": (200, 0, 200), "g_style_latent": (60, 60, 60)}


def running_mean(values, window):
    """Mean of the last `window` values at each step (fewer at the start)."""
    c = np.cumsum(np.concatenate([[0.0], values]))
    i = np.arange(1, len(values) + 1)
    return (c[i] - c[np.maximum(i - window, 0)]) / np.minimum(i, window)


def plot(log, width=520, height=360, margin=44):
    img = np.full((height, width, 3), 255, np.uint8)
    steps = [r["step"] for r in log]
    window = max(1, len(log) // 20)  # per-step GAN losses are noisy: draw their running mean
    smooth = {k: running_mean(np.array([r[k] for r in log], np.float64), window) for k in CURVES}
    values = [v for k in CURVES for v in smooth[k]]
    lo, hi = min(values), max(values)
    x = lambda s: int(margin + (s - steps[0]) / max(steps[-1] - steps[0], 1) * (width - margin - 10))  # noqa: E731
    y = lambda v: int(height - margin - (v - lo) / max(hi - lo, 1e-9) * (height - margin - 30))  # noqa: E731
    cv2.rectangle(img, (margin, 30), (width - 10, height - margin), (0, 0, 0), 1)
    for k, color in CURVES.items():
        pts = np.array([[x(s), y(v)] for s, v in zip(steps, smooth[k])], np.int32)
        cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)
    for i, (k, color) in enumerate(CURVES.items()):
        cv2.putText(img, k, (margin + 6 + (i % 3) * 150, 12 + (i // 3) * 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    color, 1, cv2.LINE_AA)
    font = dict(fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=0.38, color=(0, 0, 0), thickness=1)
    cv2.putText(img, f"{hi:.2f}", (2, 36), **font)
    cv2.putText(img, f"{lo:.2f}", (2, height - margin), **font)
    cv2.putText(img, f"step {steps[0]}", (margin, height - margin + 16), **font)
    cv2.putText(img, f"step {steps[-1]}", (width - 80, height - margin + 16), **font)
    cv2.putText(img, f"loss terms, running mean of {window} steps", (margin + 90, height - margin + 32), **font)
    return img


def fit_height(img, h):
    """`img` at height h: shrunk when taller, else centred on white (sample pixels are never enlarged)."""
    if img.shape[0] > h:
        return cv2.resize(img, (int(img.shape[1] * h / img.shape[0]), h), interpolation=cv2.INTER_AREA)
    top = (h - img.shape[0]) // 2
    return cv2.copyMakeBorder(img, top, h - img.shape[0] - top, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))


def main(run, out):
    run = Path(run)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    grids = sorted((run / "samples").glob("*.jpg"))
    panel = plot(log)
    # the grids are JPEG decodes: 6 bits per channel are invisible there and keep the PNG small
    parts = [panel] + [fit_height(cv2.imread(str(g)) & 0xFC, panel.shape[0]) for g in (grids[0], grids[-1])]
    sep = np.full((panel.shape[0], 6, 3), 255, np.uint8)
    cv2.imwrite(str(out), np.concatenate([p for part in parts for p in (part, sep)][:-1], axis=1),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])


if __name__ == "__main__":
    main(*sys.argv[1:3])
