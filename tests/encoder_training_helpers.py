"""Small data and weights for the encoder trainer tests, made on the spot: artworks (the same contents
rendered in clearly different styles), face folders, and a tiny narrow BlendGAN generator file."""

from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = sorted((ROOT / "test_imgs" / "photos").glob("*.jpg"))


def _hatching(angle_deg, period):
    """Stroke texture: the picture (its own colours) modulated by parallel strokes of one direction and
    spacing; the styles differ only in their strokes, so telling them apart needs texture, not colour."""

    def render(img):
        h, w = img.shape[:2]
        a = np.deg2rad(angle_deg)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = (xx * np.cos(a) + yy * np.sin(a)) * (2 * np.pi / period)
        strokes = 0.45 + 0.55 * (np.sin(phase) > 0)
        return np.clip(img.astype(np.float32) * strokes[..., None], 0, 255).astype(np.uint8)

    return render


def _dots(period):
    def render(img):
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) * (2 * np.pi / period)
        dots = 0.45 + 0.55 * ((np.sin(xx) * np.sin(yy)) > 0)
        return np.clip(img.astype(np.float32) * dots[..., None], 0, 255).astype(np.uint8)

    return render


STYLES = (
    _hatching(0, 8),
    _hatching(90, 8),
    _hatching(45, 12),
    _dots(10),
    _hatching(135, 6),
    _dots(6),
    _hatching(0, 16),
    _hatching(60, 10),
)


def contents(n, size=64, seed=0):
    """`n` different crops of the bundled photos at size x size (BGR uint8)."""
    rng = np.random.default_rng(seed)
    photos = [cv2.imread(str(p)) for p in PHOTOS]
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        s = int(min(h, w) * rng.uniform(0.35, 0.8))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        out.append(cv2.resize(img[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA))
    return out


def make_artworks(path, content_images):
    """Every content in every style, as path/c{content}_s{style}.png; returns [(file, style index)]."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    made = []
    for c, img in enumerate(content_images):
        for s, style in enumerate(STYLES):
            f = path / f"c{c:02d}_s{s}.png"
            cv2.imwrite(str(f), style(img))
            made.append((f, s))
    return made


def make_faces(path, n, size=64, seed=0):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(contents(n, size, seed)):
        cv2.imwrite(str(path / f"face_{i:02d}.png"), img)
    return path


def make_tiny_blendgan(path, style_encoder_sd, size=16, max_channels=16, seed=0):
    """blendgan.pt of a narrow generator (random weights; constant input and mapping scaled so the images are
    O(1)) with the given style encoder as `embedder.*` and a `latent_avg`."""
    from blendgan.models import Generator

    torch.manual_seed(seed)
    g = Generator(size, max_channels=max_channels, with_style_encoder=False)
    sd = {"add_weight": torch.full_like(g.add_weight.detach(), 0.5)}  # half face, half style: styles show
    sd.update({f"embedder.{k}": v for k, v in style_encoder_sd.items()})
    sd.update({k: v.detach() for k, v in g.state_dict().items() if k != "add_weight"})
    with torch.no_grad():
        latent_avg = g.mean_latent(256)
    torch.save({"g_ema": sd, "latent_avg": latent_avg}, path)
    return path
