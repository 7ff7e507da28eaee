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


STYLES = (_hatching(0, 8), _hatching(90, 8), _hatching(45, 12), _dots(10))


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
        out.append(cv2.resize(img[y:y + s, x:x + s], (size, size), interpolation=cv2.INTER_AREA))
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
    sd = {"add_weight": g.add_weight.detach()}
    sd.update({f"embedder.{k}": v for k, v in style_encoder_sd.items()})
    sd.update({k: v.detach() for k, v in g.state_dict().items() if k != "add_weight"})
    with torch.no_grad():
        latent_avg = g.mean_latent(256)
    torch.save({"g_ema": sd, "latent_avg": latent_avg}, path)
    return path


def make_balanced_style_encoder(path, seed=0, rows=32):
    """style_encoder.pt with random weights: He-initialised VGG19, and a first MLP layer that gives each of
    the five Gram matrices the same share of its output and is orthogonal to the mean Gram vector (so its
    outputs vary from image to image instead of being dominated by the Grams' common positive mean), as a
    trained encoder's first layer would; stored in bfloat16 (0.6 GB). The rest of the MLP is random."""
    from blendgan.models import StyleEncoder
    from blendgan.models.style_encoder import VGGFeatureExtractor, gram_vector

    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        enc = StyleEncoder()
    sd = {}
    for k, v in enc.state_dict().items():
        if k.endswith("bias"):
            sd[k] = torch.zeros(v.shape)
        elif v.ndim == 4:
            sd[k] = torch.randn(v.shape, generator=g) * (2.0 / (v.shape[1] * 9)) ** 0.5
        elif v.shape[1] <= 4096:
            sd[k] = torch.randn(v.shape, generator=g)
    fe = VGGFeatureExtractor()
    prefix = "embedder.feature_extractor."
    fe.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
    with torch.no_grad():
        probe = gram_vector(fe(torch.rand(8, 3, 64, 64, generator=g) * 2 - 1))
    sizes = [c * c for c in (64, 128, 256, 512, 512)]
    total = sum(sizes)
    col_scale = torch.cat([torch.full((n,), (total / (5 * n)) ** 0.5 / (probe[:, o:o + n].std().item() + 1e-12))
                           for n, o in zip(sizes, [sum(sizes[:i]) for i in range(5)])])
    mean = probe.mean(0) * col_scale  # the common part, in scaled coordinates
    mean = mean / mean.norm()
    wide = torch.empty(512, total, dtype=torch.bfloat16)
    for r in range(0, 512, rows):
        w = torch.randn(rows, total, generator=g)
        w -= (w @ mean)[:, None] * mean[None, :]
        wide[r:r + rows] = (w * col_scale).to(torch.bfloat16)
    sd["embedder_mlp.0.weight"] = wide
    torch.save({k: sd[k] for k in enc.state_dict()}, path)
    return path
