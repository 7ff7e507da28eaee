"""Image folders for training, and the deterministic order in which their samples are drawn.

Every random choice of a run (which image, flipped or not, latent codes, noise) is a function of the run's
seed and the *global sample position* (step x global batch + slot), never of the process that draws it.
Process `rank` of `world` takes the slots rank, rank + world, rank + 2·world, ... of each global batch, so
the data position of a run is just its step count, a resumed run continues exactly, and N processes with
batch B see the same samples as one process with batch N·B (see `global_positions`).
"""

import sys

import torch

from .. import distributed
from ..errors import InputImageError, UsageError
from ..io import images

CACHE_LIMIT_BYTES = 1 << 30  # decoded images are kept in memory while the folder's resized pixels fit


def global_positions(step, batch, ctx):
    """Global sample positions of this process's `batch` samples at `step` (interleaved over processes)."""
    base = step * batch * ctx.world_size
    return [base + ctx.rank + ctx.world_size * j for j in range(batch)]


def sample_generator(seed, stream, position):
    """A torch.Generator for one (stream, global position): the same numbers on any process or run."""
    key = (int(seed) * 1_000_003 + int(stream)) * 2**40 + int(position)
    return torch.Generator().manual_seed(key % 2**63)


def check_folder(path, what):
    """UsageError (one line) unless `path` is a folder or file with at least one image file name; cheap
    (no decoding), so every folder is checked before any work."""
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

    def __init__(self, path, size, what, ctx, log=None):
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

    def pixels(self, i):
        """uint8 H x W x 3 BGR pixels of image i at the training size."""
        return self._pixels[i] if self.cache else self._load(self.files[i])

    def tensor(self, i, flip=False):
        """[3, size, size] float32 RGB in [-1, 1], optionally mirrored left-right."""
        x = images.bgr_to_tensor(self.pixels(i))[0]
        return x.flip(-1) if flip else x


class Sampler:
    """Which image and which flip a global sample position gets: epoch e uses a permutation of the folder
    drawn from (seed, stream, e); every position is used exactly once per epoch."""

    def __init__(self, n, seed, stream, flips=True):
        self.n, self.seed, self.stream, self.flips = n, int(seed), int(stream), flips
        self._perms = {}

    def _perm(self, epoch):
        if epoch not in self._perms:
            g = torch.Generator().manual_seed((self.seed * 7919 + self.stream) * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g).tolist()}  # only the current epoch
        return self._perms[epoch]

    def index(self, position):
        return self._perm(position // self.n)[position % self.n]

    def flip(self, position):
        if not self.flips:
            return False
        g = sample_generator(self.seed, 1000 + self.stream, position)
        return bool(torch.rand((), generator=g) < 0.5)

    def draw(self, positions):
        """[(image index, flip)] for the positions."""
        return [(self.index(p), self.flip(p)) for p in positions]


def batch_of(folder, draws):
    """[N, 3, size, size] float32 tensor of the drawn (index, flip) samples."""
    return torch.stack([folder.tensor(i, f) for i, f in draws])


__all__ = ["ImageFolder", "Sampler", "batch_of", "check_folder", "global_positions", "sample_generator"]
