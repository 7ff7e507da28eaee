"""The numbers of FID and KID from feature matrices (NumPy, float64).

- FID (Heusel et al. 2017): the Fréchet distance between two Gaussians fitted to the features,
  ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``, with the unbiased covariances (as ``np.cov``). The trace
  term is computed as a nuclear norm (`trace_sqrt_product`) rather than with scipy's ``sqrtm`` of the
  non-symmetric product: exact for these matrices, stable when they are singular (fewer images than 2048).
- KID (Bińkowski et al. 2018): the unbiased estimate of the squared MMD with the cubic polynomial kernel
  ``k(x, y) = (x·y / d + 1)^3``, averaged over random subsets (as StyleGAN2-ADA computes it: 100 subsets of
  at most 1000 features each, drawn with a fixed seed so the value does not change from run to run).
"""

from dataclasses import dataclass

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


@dataclass
class Moments:
    """Mean and covariance of a feature set (what FID needs; KID needs the features themselves), and a factor
    A with AᵀA = covariance: the centred features / sqrt(n - 1) when there are fewer features than dimensions
    (then exact and small), else the covariance's symmetric square root."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    factor: np.ndarray = None

    @classmethod
    def of(cls, features: np.ndarray) -> "Moments":
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"need at least 2 feature rows to fit a Gaussian, got shape {f.shape}")
        mu = f.mean(axis=0)
        centred = f - mu
        factor = centred / np.sqrt(f.shape[0] - 1) if f.shape[0] <= f.shape[1] else None
        return cls(mu, centred.T @ centred / (f.shape[0] - 1), f.shape[0], factor)

    def cov_factor(self):
        return self.factor if self.factor is not None else symmetric_sqrt(self.sigma)


def symmetric_sqrt(sigma):
    """S^(1/2) of a symmetric positive semi-definite matrix (eigenvalues below 0 from rounding clipped)."""
    w, v = np.linalg.eigh(np.asarray(sigma, np.float64))
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(a, b) -> float:
    """Tr (S1 S2)^(1/2) for S1 = AᵀA, S2 = BᵀB: the eigenvalues of S1 S2 are the squared singular values of ABᵀ,
    so the trace is the nuclear norm of ABᵀ (exact for PSD matrices, no non-symmetric square root needed)."""
    return float(np.linalg.svd(np.asarray(a) @ np.asarray(b).T, compute_uv=False).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    return _frechet(
        np.asarray(mu1, np.float64),
        np.asarray(sigma1, np.float64),
        symmetric_sqrt(sigma1),
        np.asarray(mu2, np.float64),
        np.asarray(sigma2, np.float64),
        symmetric_sqrt(sigma2),
    )


def _frechet(mu1, sigma1, a, mu2, sigma2, b):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(a, b))


def fid(real: Moments, fake: Moments) -> float:
    return _frechet(real.mu, real.sigma, real.cov_factor(), fake.mu, fake.sigma, fake.cov_factor())


def mmd2_unbiased_cubic(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD of two equal-sized samples with the kernel (x·y/d + 1)^3."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def kid(
    real: np.ndarray, fake: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0
) -> float:
    """Kernel Inception Distance: mean unbiased MMD² over `subsets` random subsets of both feature sets."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(len(real), len(fake), subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 features on each side")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        total += mmd2_unbiased_cubic(x, y)
    return total / subsets
