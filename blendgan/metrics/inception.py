"""Inception-v3 pool features for FID and KID, from the standard `inception-2015-12-05.pt` TorchScript file.

The file is NVIDIA's TorchScript translation of TensorFlow's 2015-12-05 Inception graph, the one StyleGAN2-ADA,
StyleGAN3 and clean-fid compute their FID with. Its contract: ``net(images, return_features=True)`` takes float
images ``[N, 3, H, W]`` with values in [0, 255] (uint8 range, RGB) and returns the 2048-d pool features
``[N, 2048]``; images that are not 299 x 299 are resized inside it with a bilinear filter without antialiasing.

Resize convention (clean-fid's "clean" mode, Parmar et al. 2022): we do not let the network resize. Each uint8
RGB image is resized to 299 x 299 here, channel by channel in float32 with Pillow's antialiased bicubic filter,
clipped to [0, 255] and not rounded, so the network always receives 299 x 299 and its own resize never runs.
An aliasing resize (the network's bilinear one, or a strided one) makes FID depend on the resolution and on
JPEG artefacts; the antialiased filter does not. Generated images are first quantised to uint8 exactly as they
are when saved (blendgan.io.images), so a generator scored on the fly and its saved images score the same.
Non-square images are resized to a square (their aspect ratio is not kept), as in clean-fid.

The file cannot be fetched here: it is given by path (``--inception``) or found as `$BLENDGAN_HOME/
inception-2015-12-05.pt`, and its sha256 is checked before it is loaded.
"""

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..weights.home import HOME_ENV, weights_dir

FILENAME = "inception-2015-12-05.pt"
SHA256 = "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"
URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INPUT_SIZE = 299
FEATURE_DIM = 2048
WHERE_FROM = (
    f"it is the Inception TorchScript of StyleGAN2-ADA / clean-fid, downloadable from {URL} "
    f"(95,607,719 bytes); pass it with --inception FILE or put it in ${HOME_ENV}"
)


def file_sha256(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def find_inception(path=None) -> Path:
    """The Inception file: `path` if given, else `$BLENDGAN_HOME/inception-2015-12-05.pt` (or ./pretrained_models).
    A missing file is a UsageError naming the file, the flag and where it comes from."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise UsageError(f"--inception {p}: file not found; {WHERE_FROM}")
        return p
    p = weights_dir() / FILENAME
    if not p.is_file():
        where = os.environ.get(HOME_ENV) and f"${HOME_ENV}={os.environ[HOME_ENV]}" or "./pretrained_models"
        raise UsageError(f"{FILENAME} not found in {where} (needed by FID/KID); {WHERE_FROM}")
    return p


def check_sha256(path, expected=None) -> str:
    """The file's sha256, checked against the published one (`expected` overrides it, for stand-ins)."""
    expected = expected or SHA256
    digest = file_sha256(path)
    if digest != expected:
        raise UsageError(
            f"{path}: sha256 {digest[:16]}... is not that of {FILENAME} ({expected[:16]}...): the file "
            f"is damaged or another network; {WHERE_FROM}"
        )
    return digest


def load_inception(path=None, device="cpu", expected_sha256=None):
    """(TorchScript module in eval mode, sha256 of its file); see `find_inception` and `check_sha256`."""
    import torch

    p = find_inception(path)
    digest = check_sha256(p, expected_sha256)
    try:
        net = torch.jit.load(str(p), map_location=device)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"{p}: not a TorchScript file ({str(err).splitlines()[0]}); {WHERE_FROM}") from None
    return net.eval(), digest


def resize_for_inception(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> 3 x 299 x 299 float32 in [0, 255] (the resize convention of this module)."""
    from PIL import Image

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {rgb.dtype} {rgb.shape}")
    if rgb.shape[:2] == (INPUT_SIZE, INPUT_SIZE):
        return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    out = np.empty((3, INPUT_SIZE, INPUT_SIZE), np.float32)
    for c in range(3):
        channel = Image.fromarray(np.ascontiguousarray(rgb[:, :, c], dtype=np.float32))
        out[c] = np.asarray(channel.resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC), dtype=np.float32)
    return np.clip(out, 0, 255, out=out)


class InceptionFeatures:
    """Callable: list of H x W x 3 uint8 RGB images -> float64 features [N, 2048]."""

    name = "inception"

    def __init__(self, net, device="cpu", digest=""):
        self.net, self.device, self.digest = net, device, digest

    @classmethod
    def load(cls, path=None, device="cpu", expected_sha256=None):
        net, digest = load_inception(path, device, expected_sha256)
        return cls(net, device, digest)

    def __call__(self, images):
        import torch

        x = torch.from_numpy(np.stack([resize_for_inception(im) for im in images])).to(self.device)
        with torch.inference_mode():
            out = self.net(x, return_features=True)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(images), FEATURE_DIM):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise UsageError(f"the Inception network returned {got}, not [N, {FEATURE_DIM}] features; {WHERE_FROM}")
        return out.detach().double().cpu().numpy()
