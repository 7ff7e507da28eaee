"""A stand-in for the Inception TorchScript file (the real one cannot be downloaded here) with the same
contract: forward(images [N, 3, H, W] float in [0, 255], return_features=True) -> [N, 2048] float32, resizing
inside with a bilinear filter when the images are not 299 x 299; and small image folders."""

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


class StandInInception(nn.Module):
    """(x - 128) / 128, 16 x 16 average pool, a fixed random projection to 2048, ReLU."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.proj = nn.Parameter(torch.randn(3 * 16 * 16, 2048, generator=g) / 28.0, requires_grad=False)
        self.head = nn.Parameter(torch.randn(2048, 1008, generator=g) / 45.0, requires_grad=False)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = x.to(torch.float32)
        if x.shape[2] != 299 or x.shape[3] != 299:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = (x - 128) / 128
        feats = torch.relu(F.adaptive_avg_pool2d(x, (16, 16)).flatten(1) @ self.proj)
        if return_features:
            return feats
        return torch.softmax(feats @ self.head, dim=1)


def make_stand_in(path, seed=0):
    torch.jit.script(StandInInception(seed)).save(str(path))
    return Path(path)


def sha256(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def photo_folder(path, n, size=64, seed=0, kind="faces"):
    """`n` images made from the bundled photos by random crops and brightness (jpg and png)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files = sorted((ROOT / "test_imgs" / ("face_imgs" if kind == "faces" else "style_imgs")).glob("*.jpg"))
    sources = [cv2.imread(str(f)) for f in files]
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        s = int(min(h, w) * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = cv2.resize(img[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        cv2.imwrite(str(path / f"img_{i:03d}{'.png' if i % 2 else '.jpg'}"), crop)
    return path
