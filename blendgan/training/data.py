"""Image folders (or `blendgan dataset` shards) for training, and the deterministic order in which their samples are
drawn.

Every random choice of a run (which image, flipped or not, latent codes, noise) is a function of the run's
seed and the *global sample position* (step x global batch + slot), never of the process that draws it.
Process `rank` of `world` takes the slots rank, rank + world, rank + 2·world, ... of each global batch, so
the data position of a run is just its step count, a resumed run continues exactly, and N processes with
batch B see the same samples as one process with batch N·B (see `global_positions`).
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from .. import distributed
from ..errors import InputImageError, UsageError
from ..io import images

CACHE_LIMIT_BYTES = 1 << 30  # decoded images are kept in memory while the folder's resized pixels fit


def global_positions(step: int, batch: int, ctx: distributed.Context) -> list[int]:
    """Global sample positions of this process's `batch` samples at `step` (interleaved over processes)."""
    base = step * batch * ctx.world_size
    return [base + ctx.rank + ctx.world_size * j for j in range(batch)]


def sample_generator(seed: int, stream: int, position: int) -> torch.Generator:
    """A torch.Generator for one (stream, global position): the same numbers on any process or run."""
    key = (int(seed) * 1_000_003 + int(stream)) * 2**40 + int(position)
    return torch.Generator().manual_seed(key % 2**63)


def is_shard_set(path: images.PathLike) -> bool:
    """True for a folder of tar shards (what `blendgan dataset` writes)."""
    p = Path(path)
    return p.is_dir() and any(p.glob("*.tar"))


def check_folder(path: images.PathLike, what: str) -> list[Path]:
    """UsageError (one line) unless `path` is a folder or file with at least one image file name, or a folder of
    tar shards; cheap (no decoding), so every folder is checked before any work."""
    if is_shard_set(path):
        return sorted(Path(path).glob("*.tar"))
    files, _ = images.list_images(path)
    if not files:
        raise UsageError(
            f"{path}: no image files in the {what} folder ({', '.join(images.IMAGE_EXTENSIONS)}); "
            f"point --{what} at a folder of aligned face images"
        )
    return files


class ImageFolder:
    """The usable images of one folder, resized to `size` x `size`, as [-1, 1] RGB tensors.

    Unreadable files are reported once (to stderr, by the main process) and skipped; a folder without one
    usable image is a UsageError. Checking the files is shared among the processes (each reads its shard).
    """

    def __init__(
        self, path: images.PathLike, size: int, what: str, ctx: distributed.Context, log: Callable | None = None
    ) -> None:
        self.path, self.size, self.what = path, int(size), what
        files = check_folder(path, what)
        self.cache = len(files) * self.size * self.size * 3 <= CACHE_LIMIT_BYTES
        mine = {}
        problems = []
        for i in range(ctx.rank, len(files), ctx.world_size):
            try:
                img = self._load(files[i])
            except InputImageError as err:
                problems.append(str(err))
                continue
            mine[i] = img if self.cache else None
        gathered = distributed.all_gather_objects((mine, problems), ctx)
        loaded, bad = {}, []
        for part, probs in gathered:
            loaded.update(part)
            bad += probs
        if not loaded:
            raise UsageError(
                f"{path}: none of the {len(files)} files in the {what} folder is a readable image "
                f"(first: {bad[0]}); point --{what} at a folder of aligned face images"
            )
        if ctx.is_main:
            for msg in bad:
                print(f"skipped: {msg}", file=log or sys.stderr)
        self.files = [files[i] for i in sorted(loaded)]
        self._pixels = [loaded[i] for i in sorted(loaded)] if self.cache else None

    def _load(self, file):
        img = images.read_image_bgr(file)  # raises InputImageError naming the file
        return images.resize_square(img, self.size)

    def __len__(self):
        return len(self.files)

    def pixels(self, i: int) -> np.ndarray:
        """uint8 H x W x 3 BGR pixels of image i at the training size."""
        return self._pixels[i] if self.cache else self._load(self.files[i])

    def tensor(self, i: int, flip: bool = False) -> torch.Tensor:
        """[3, size, size] float32 RGB in [-1, 1], optionally mirrored left-right."""
        x = images.bgr_to_tensor(self.pixels(i))[0]
        return x.flip(-1) if flip else x

    def identity(self) -> list:
        """What the images are, for caches made from them: [name, bytes, mtime] of each file."""
        return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in self.files]


class ShardImages(ImageFolder):
    """The images of a folder of tar shards (`blendgan dataset`: {key}.png members, in shard and member order),
    read on demand: memory holds an index of where each image's bytes lie (20 bytes an image), not pixels, so
    it does not grow with the images' size and a data set of any length trains in the same memory.

    The images are numbered like a folder's sorted files, so the samplers (and their guarantees: the same
    samples for any number of processes, exact resume) work unchanged; a folder holding the same images
    under the same sorted names trains identically."""

    OPEN_SHARDS = 8  # file handles kept open (least recently used closed first)

    def __init__(
        self,
        path: images.PathLike,
        size: int,
        what: str,
        ctx: distributed.Context | None = None,
        log: Callable | None = None,
    ) -> None:
        self.path, self.size, self.what = path, int(size), what
        self.shards = sorted(Path(path).glob("*.tar"))
        where, offsets, lengths = [], [], []
        for k, shard in enumerate(self.shards):
            try:
                with tarfile.open(shard) as tar:
                    for m in tar:
                        if m.isfile() and images.is_image_file(m.name):
                            where.append(k)
                            offsets.append(m.offset_data)
                            lengths.append(m.size)
            except (OSError, tarfile.TarError) as err:
                raise UsageError(f"{shard}: not a readable tar shard ({err}); make the data set again") from None
        if not where:
            raise UsageError(f"{path}: its tar shards hold no images; point --{what} at a `blendgan dataset` folder")
        self.where = np.asarray(where, np.int32)
        self.offsets, self.lengths = np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)
        self.cache, self._pixels, self._open = False, None, {}

    def __len__(self):
        return len(self.where)

    def _read(self, i):
        k = int(self.where[i])
        f = self._open.pop(k, None)
        if f is None:
            if len(self._open) >= self.OPEN_SHARDS:
                self._open.pop(next(iter(self._open))).close()
            f = open(self.shards[k], "rb")
        self._open[k] = f  # most recently used last
        f.seek(int(self.offsets[i]))
        return f.read(int(self.lengths[i]))

    def pixels(self, i: int) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(self._read(i), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise UsageError(f"{self.shards[int(self.where[i])]}: image {i} cannot be decoded; make the data set again")
        return img if img.shape[:2] == (self.size, self.size) else images.resize_square(img, self.size)

    def identity(self) -> list:
        return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in self.shards]


def open_images(
    path: images.PathLike, size: int, what: str, ctx: distributed.Context, log: Callable | None = None
) -> ImageFolder:
    """ImageFolder, or ShardImages for a folder of tar shards."""
    if is_shard_set(path):
        return ShardImages(path, size, what, ctx, log)
    return ImageFolder(path, size, what, ctx, log)


class Sampler:
    """Which image and which flip a global sample position gets: epoch e uses a permutation of the folder
    drawn from (seed, stream, e); every position is used exactly once per epoch."""

    def __init__(self, n: int, seed: int, stream: int, flips: bool = True) -> None:
        self.n, self.seed, self.stream, self.flips = n, int(seed), int(stream), flips
        self._perms = {}

    def _perm(self, epoch):
        if epoch not in self._perms:
            g = torch.Generator().manual_seed((self.seed * 7919 + self.stream) * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g).tolist()}  # only the current epoch
        return self._perms[epoch]

    def index(self, position: int) -> int:
        return self._perm(position // self.n)[position % self.n]

    def flip(self, position: int) -> bool:
        if not self.flips:
            return False
        g = sample_generator(self.seed, 1000 + self.stream, position)
        return bool(torch.rand((), generator=g) < 0.5)

    def draw(self, positions: Sequence[int]) -> list[tuple[int, bool]]:
        """[(image index, flip)] for the positions."""
        return [(self.index(p), self.flip(p)) for p in positions]


def batch_of(folder: ImageFolder, draws: Sequence[tuple[int, bool]]) -> torch.Tensor:
    """[N, 3, size, size] float32 tensor of the drawn (index, flip) samples."""
    return torch.stack([folder.tensor(i, f) for i, f in draws])


__all__ = [
    "ImageFolder",
    "Sampler",
    "ShardImages",
    "batch_of",
    "check_folder",
    "global_positions",
    "is_shard_set",
    "open_images",
    "sample_generator",
]
