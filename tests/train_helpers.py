"""Small data and weights for the training tests, made on the spot (no downloads): face and style folders
derived from the bundled photos by crops, flips and filters, and a frozen style encoder with random weights
(its 610304 x 512 matrix stored in bfloat16: 0.6 GB instead of 1.25 GB; the trainer keeps the file's dtype)."""

from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "test_imgs"


def _sources():
    files = sorted((PHOTOS / "face_imgs").glob("*.jpg")) + sorted((PHOTOS / "style_imgs").glob("*.jpg"))
    return [cv2.imread(str(f)) for f in files]


def make_folder(path, n, size=64, kind="faces", seed=0):
    """`n` small images: random crops (+/- flips, brightness) of the bundled photos; styles get filters
    (posterize, colour map, edge-preserving smoothing)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = _sources()
    faces, styles = sources[:2], sources[2:]
    pool = faces if kind == "faces" else styles
    for i in range(n):
        img = pool[i % len(pool)]
        h, w = img.shape[:2]
        s = int(min(h, w) * rng.uniform(0.7, 1.0))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = cv2.resize(img[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)
        if kind == "styles":
            crop = [
                lambda c: (c // 64) * 64,
                lambda c: cv2.applyColorMap(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), i % 12),
                lambda c: cv2.bilateralFilter(c, 7, 60, 7),
            ][i % 3](crop)
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
        ext = ".png" if i % 2 else ".jpg"
        cv2.imwrite(str(path / f"img_{i:03d}{ext}"), crop)
    return path


def make_style_encoder(path, seed=0):
    """style_encoder.pt (bare StyleEncoder state dict) with random weights scaled to keep activations O(1)."""
    from blendgan.models import StyleEncoder

    with torch.device("meta"):
        enc = StyleEncoder()
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in enc.state_dict().items():
        if k.endswith("bias"):
            sd[k] = torch.zeros(v.shape)
        elif v.ndim == 4:  # VGG conv: He init
            sd[k] = torch.randn(v.shape, generator=g) * (2.0 / (v.shape[1] * 9)) ** 0.5
        elif v.shape[1] > 65536:  # the Gram matrix layer: large values (Grams are tiny), bfloat16 storage
            sd[k] = (torch.randn(v.shape, generator=g) * 50).to(torch.bfloat16)
        else:
            sd[k] = torch.randn(v.shape, generator=g)
    torch.save(sd, path)
    return path


def make_psp_encoder(path, size=64, seed=0):
    """psp_encoder.pt layout ({'state_dict': {'encoder.*'}, 'latent_avg'}) with random weights."""
    from blendgan.models import PSPEncoder
    from blendgan.models.generator import n_latent_for_size

    n = n_latent_for_size(size)
    torch.manual_seed(seed)
    enc = PSPEncoder(n)
    sd = {k: v for k, v in enc.state_dict().items() if k.startswith("encoder.")}
    torch.save({"state_dict": sd, "latent_avg": torch.randn(n, 512) * 0.1}, path)
    return path
