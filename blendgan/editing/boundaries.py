"""One linear direction per attribute in W, fitted on sampled faces (InterFaceGAN's linear boundary).

Ridge regression of the standardised attribute on the centred codes, rather than InterFaceGAN's SVM on
thresholded labels: the landmark measures are continuous, so a regression keeps their whole range instead of
a yes/no split of it; W's 512 coordinates are strongly correlated (the mapping network puts its outputs near a
lower-dimensional set) and N is often not far above 512, where plain least squares is ill-conditioned and
ridge's shrinkage keeps the direction stable; and it has a closed form, so the same samples give the same
bits on every machine and process count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Boundary", "fit_boundary", "held_out", "conditional"]

HOLDOUT_EVERY = 5  # every 5th sample (by index) is held out for R², whatever the process count


@dataclass(frozen=True)
class Boundary:
    """A unit direction [512] in W, the held-out R² of the linear fit, the sample counts and the standard
    deviation of the codes' projection on the direction (the unit of edit amounts)."""

    direction: np.ndarray
    r2: float
    n_train: int
    n_test: int
    std: float


def held_out(indices: np.ndarray) -> np.ndarray:
    """True for the samples held out of the fit (a function of the sample's index only)."""
    return np.asarray(indices) % HOLDOUT_EVERY == 0


def _ridge(x, y, alpha):
    """Coefficients of y ~ x (both centred) with a penalty relative to the mean eigenvalue of xᵀx."""
    gram = x.T @ x
    lam = alpha * np.trace(gram) / gram.shape[0]
    return np.linalg.solve(gram + lam * np.eye(gram.shape[0]), x.T @ y)


def fit_boundary(w: np.ndarray, y: np.ndarray, indices: np.ndarray, alpha: float = 1e-3) -> Boundary:
    """Ridge direction of attribute `y` [N] on codes `w` [N, 512] (samples with a NaN label are dropped);
    R² is measured on the held-out samples (`held_out(indices)`), the direction then refitted on all of them."""
    w = np.asarray(w, np.float64)
    y = np.asarray(y, np.float64)
    ok = np.isfinite(y)
    w, y, test = w[ok], y[ok], held_out(np.asarray(indices)[ok])
    if len(y) < 3 or np.std(y) == 0:
        return Boundary(np.zeros(w.shape[1]), float("nan"), int((~test).sum()), int(test.sum()), 0.0)
    r2 = float("nan")
    train = ~test
    if test.sum() >= 2 and train.sum() >= 2:
        mu_w, mu_y, sd_y = w[train].mean(0), y[train].mean(), y[train].std() or 1.0
        beta = _ridge(w[train] - mu_w, (y[train] - mu_y) / sd_y, alpha)
        pred = (w[test] - mu_w) @ beta
        truth = (y[test] - mu_y) / sd_y
        r2 = float(1 - np.sum((truth - pred) ** 2) / max(np.sum((truth - truth.mean()) ** 2), 1e-30))
    mu_w = w.mean(0)
    beta = _ridge(w - mu_w, (y - y.mean()) / (y.std() or 1.0), alpha)
    direction = beta / max(np.linalg.norm(beta), 1e-30)
    std = float(((w - mu_w) @ direction).std())
    return Boundary(direction, r2, int(train.sum()), int(test.sum()), std)


def conditional(direction: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """`direction` with the `others` projected out, renormalised (InterFaceGAN's conditional edit: e.g. smile
    without yaw moves the codes along smile only where that does not also change the fitted yaw)."""
    basis = []
    for o in others:  # Gram-Schmidt: orthonormal basis of the others
        v = np.asarray(o, np.float64).reshape(-1).copy()
        for b in basis:
            v -= (v @ b) * b
        if np.linalg.norm(v) > 1e-9:
            basis.append(v / np.linalg.norm(v))
    d = np.asarray(direction, np.float64).reshape(-1).copy()
    for b in basis:
        d -= (d @ b) * b
    return d / max(np.linalg.norm(d), 1e-30)
