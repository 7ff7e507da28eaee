"""What the tests share: repository paths, recipe weights and checkpoints in the original file formats.

Recipe weights are the deterministic stand-in for trained weights that the conformance fixture uses (its
README, "The weight recipe"): every state-dict entry is drawn from its key, its shape and a seed alone, so
any test session can make them, no download and no ../shared needed. Key names, shapes and dtypes come from
meta-device instances of our models (the conformance tests check those against the official key lists).

    blendgan.pt     = {'g_ema': float32 recipe generator (seed N), 'latent_avg': recipe [1, 512] (seed N)}
    psp_encoder.pt  = {'state_dict': {'encoder.' + k: float32 recipe (seed N + 1)},
                       'latent_avg': recipe [n_styles, 512] (seed N + 1)}

A generator is slow to make (~10 s, 1.3 GB for the float32 610304 x 512 style matrix), so `RecipeFiles`
writes each file once per test session and keeps the float32 `embedder.*` tensors (identical for every
size with one seed) in memory for reuse. `shape_only_checkpoint` gives files with the right keys and
shapes but stride-0 zero tensors: a few hundred kB on disk, for tests of transport and structure.
Only the numeric conformance tests need the fixture itself (`conformance()`, None when ../shared is absent).
"""

import math
import os
import sys
import tempfile
import zlib
from collections import OrderedDict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FACES = sorted((ROOT / "test_imgs" / "face_imgs").glob("*.*"))
STYLES = sorted((ROOT / "test_imgs" / "style_imgs").glob("*.*"))
CONFORMANCE = ROOT.parent / "shared" / "conformance"
SKIP_REASON = f"conformance fixture not found at {CONFORMANCE} (check out ../shared beside the repo to run this)"
GENERATOR_SEED = 1234  # seed N for blendgan.pt and N + 1 for psp_encoder.pt
STYLE_MATRIX = "embedder.embedder_mlp.0.weight"  # the 512 x 610304 Gram-vector projection


def rel_err(a, b):
    """max |a - b| / max |b| of two tensors of one shape, in float64 (the tests' error measure)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def run_cli(argv):
    """(exit status, stderr) of `blendgan ARGV` run in this process."""
    import contextlib
    import io

    from blendgan.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def conformance():
    """The fixture's check_conformance module (numeric conformance tests only), or None when it is absent."""
    if not (CONFORMANCE / "check_conformance.py").is_file():
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_conformance", CONFORMANCE / "check_conformance.py")
    if "check_conformance" not in sys.modules:
        module = importlib.util.module_from_spec(spec)
        sys.modules["check_conformance"] = module
        spec.loader.exec_module(module)
    return sys.modules["check_conformance"]


def n_styles_for(size):
    return 2 * (size.bit_length() - 1) - 2


# --------------------------------------------------------------------------- the weight recipe
def _generator_for(key, seed):
    return torch.Generator().manual_seed((zlib.crc32(key.encode("utf-8")) + int(seed)) % 2**63)


def recipe_tensor(key, shape, seed):
    """float64 value of one entry: randn from a generator seeded by (crc32(key) + seed), then scaled so
    that every layer passes signals of a usable size (rules of the conformance README, in its order)."""
    shape = tuple(int(d) for d in shape)
    nd = len(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.float64)
    x = torch.randn(shape, generator=_generator_for(key, seed), dtype=torch.float64)
    if key.endswith("running_var"):
        return x.abs_().mul_(0.25).add_(1.0)
    if key.endswith("running_mean"):
        return x.mul_(0.1)
    if key == "add_weight":  # blend weights in [0, 1): uniform from a fresh generator with the same seed
        return torch.rand(shape, generator=_generator_for(key, seed), dtype=torch.float64)
    if nd == 4 and key.endswith(".weight"):  # ordinary convolutions: He scaling
        return x.mul_(math.sqrt(2.0 / (shape[1] * shape[2] * shape[3])))
    if nd == 2 and key.endswith(".weight") and key.startswith(("style.", "embedding.")):  # lr_mul 0.01 MLPs
        return x.mul_(100.0)
    if key == STYLE_MATRIX:  # else the Gram projection is swamped by the biases
        return x.mul_(1000.0)
    if nd == 1 and key.endswith("res_layer.4.weight"):  # last BatchNorm of each pSp residual branch
        return x.mul_(0.1)
    if nd == 1 and key.endswith(".bias"):
        return x.mul_(0.1).add_(1.0) if "modulation" in key else x.mul_(0.1)
    if nd == 1 and key.endswith(".weight"):
        return x.mul_(0.1).add_(1.0)
    return x


def _style_matrix_float32(key, shape, seed, rows=32):
    """The style matrix (1000·randn, 512 x 610304) drawn a few rows at a time and cast to float32 as it goes:
    ~1.3 GB instead of the 2.5 GB float64 matrix plus its 1.3 GB cast."""
    g = _generator_for(key, seed)
    out = torch.empty(shape, dtype=torch.float32)
    for i in range(0, shape[0], rows):
        n = min(rows, shape[0] - i)
        out[i : i + n] = torch.randn((n, shape[1]), generator=g, dtype=torch.float64).mul_(1000.0)
    return out


_CHUNK_CHECKS = {}


def _row_chunks_match(width):
    """Whether this torch build draws the same normal stream row by row as in one call (it does on CPU when
    a row holds a multiple of 16 values); checked once per width, else the one-call recipe is used."""
    if width not in _CHUNK_CHECKS:
        whole = torch.randn((3, width), generator=_generator_for("check", 0), dtype=torch.float64)
        g = _generator_for("check", 0)
        rows = [torch.randn((1, width), generator=g, dtype=torch.float64) for _ in range(3)]
        _CHUNK_CHECKS[width] = torch.equal(whole, torch.cat(rows))
    return _CHUNK_CHECKS[width]


def _recipe_float32(key, shape, dtype, seed):
    if key == STYLE_MATRIX and _row_chunks_match(shape[1]):
        return _style_matrix_float32(key, shape, seed)
    value = recipe_tensor(key, shape, seed)  # float64; cast right away so only one big float64 lives
    return value.to(torch.float32 if dtype.is_floating_point else dtype)


# Narrow widths for the tests that exercise programs rather than the published layout: the same keys and
# code, 1/16 of the generator's channels, 1/8 of VGG19's, 1/4 of IR-SE50's (the narrowest squeeze-excite
# allows). The published widths stay covered by the checkpoint, conformance and precision tests.
TINY = {"max_channels": 32, "style_width": 8, "psp_width": 16}


def model_factory(kind, size=64, tiny=False):
    """A constructor of the model `kind` ('generator', 'psp_encoder', 'style_encoder') at the published
    widths, or at the `TINY` ones."""
    from blendgan.models import Generator, PSPEncoder, StyleEncoder
    from blendgan.models.psp_encoder import IR_SE50_WIDTH
    from blendgan.models.style_encoder import VGG19_WIDTH

    w = TINY if tiny else {"max_channels": 512, "style_width": VGG19_WIDTH, "psp_width": IR_SE50_WIDTH}
    return {
        "generator": lambda: Generator(size, max_channels=w["max_channels"], style_width=w["style_width"]),
        "psp_encoder": lambda: PSPEncoder(n_styles_for(size), w["psp_width"]),
        "style_encoder": lambda: StyleEncoder(width=w["style_width"]),
    }[kind]


def model_keys(kind, size=64, tiny=False):
    """[(key, shape, dtype)] of a model's state dict, in its order (meta device: nothing allocated)."""
    with torch.device("meta"):
        model = model_factory(kind, size, tiny)()
    return [(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()]


def generator_state_dict(size, seed=GENERATOR_SEED, embedder=None, tiny=False):
    """float32 recipe state dict of the generator; `embedder` reuses already made `embedder.*` tensors."""
    out = OrderedDict()
    for key, shape, dtype in model_keys("generator", size, tiny):
        out[key] = (
            embedder[key] if embedder is not None and key in embedder else _recipe_float32(key, shape, dtype, seed)
        )
    return out


def psp_state_dict(size, seed=GENERATOR_SEED + 1, tiny=False):
    """(float32 recipe of the inner GradualStyleEncoder, keys without 'encoder.'; latent_avg [n_styles, 512])."""
    sd = OrderedDict(
        (key[len("encoder.") :], _recipe_float32(key[len("encoder.") :], shape, dtype, seed))
        for key, shape, dtype in model_keys("psp_encoder", size, tiny)
        if key.startswith("encoder.")
    )
    return sd, recipe_tensor("latent_avg", [n_styles_for(size), 512], seed).float()


def blendgan_checkpoint(state_dict, seed=GENERATOR_SEED):
    """The blendgan.pt layout around a generator state dict."""
    return {"g_ema": state_dict, "latent_avg": recipe_tensor("latent_avg", [1, 512], seed).float()}


def psp_checkpoint(inner, latent_avg):
    """The psp_encoder.pt layout around an inner encoder state dict."""
    return {"state_dict": OrderedDict((f"encoder.{k}", v) for k, v in inner.items()), "latent_avg": latent_avg}


def save(obj, path):
    """torch.save to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def shape_only_checkpoint(kind, size=64):
    """A checkpoint dict in the original layout of `kind` with every tensor a stride-0 expanded zero.

    Keys and shapes are those of the models (meta-device instances), so loaders' structural checks pass,
    while torch.save stores one element per tensor.
    """
    sd = OrderedDict((k, torch.zeros((), dtype=dtype).expand(shape)) for k, shape, dtype in model_keys(kind, size))
    if kind == "generator":
        return {"g_ema": sd, "latent_avg": torch.zeros((), dtype=torch.float32).expand(1, 512)}
    if kind == "psp_encoder":
        latent_avg = sd.pop("latent_avg")
        return {"state_dict": sd, "latent_avg": latent_avg}
    return dict(sd)


class RecipeFiles:
    """Recipe checkpoint files written once per session under `root`, keyed by (kind, size, seed, tiny).

    Other pytest processes of the session (pytest-xdist workers) may use the same `root`: each file is made
    by whichever process asks first, under a lock, and read by the others. (The tests that draw the
    published-width embedder run in one process: conftest's `pytest_xdist_make_scheduler`.)"""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._embedders = {}

    @staticmethod
    def _once(path, make):
        """`path`, written by `make(path)` unless it exists."""
        from filelock import FileLock  # torch's own dependency

        if not path.exists():
            with FileLock(f"{path}.lock"):
                if not path.exists():
                    make(path)
        return path

    def embedder(self, seed=GENERATOR_SEED, tiny=False):
        """float32 `embedder.*` recipe tensors for `seed` (generated once, then shared by every size)."""
        if (seed, tiny) not in self._embedders:
            keys = [k for k in model_keys("generator", 64, tiny) if k[0].startswith("embedder.")]
            self._embedders[seed, tiny] = OrderedDict(
                (key, _recipe_float32(key, shape, dtype, seed)) for key, shape, dtype in keys
            )
        return self._embedders[seed, tiny]

    def generator_state_dict(self, size, seed=GENERATOR_SEED, tiny=False):
        """float32 recipe state dict (the embedder tensors are shared, not copied)."""
        return generator_state_dict(size, seed, embedder=self.embedder(seed, tiny), tiny=tiny)

    def blendgan(self, size, seed=GENERATOR_SEED, tiny=False):
        """Path of blendgan_<size>_<seed>[_tiny].pt = {'g_ema', 'latent_avg' [1, 512]}."""
        return self._once(
            self.root / f"blendgan_{size}_{seed}{'_tiny' if tiny else ''}.pt",
            lambda p: save(blendgan_checkpoint(self.generator_state_dict(size, seed, tiny), seed), p),
        )

    def psp_encoder(self, size, seed=GENERATOR_SEED + 1, state=None, tiny=False):
        """Path of psp_encoder_<size>_<seed>[_tiny].pt = {'state_dict': {'encoder.*'}, 'latent_avg' [n_styles, 512]}.

        `state` = psp_state_dict(size, seed, tiny) when the caller has it already (saves generating it twice).
        """
        return self._once(
            self.root / f"psp_encoder_{size}_{seed}{'_tiny' if tiny else ''}.pt",
            lambda p: save(psp_checkpoint(*(state or psp_state_dict(size, seed, tiny))), p),
        )


_SESSIONS = {}


def session_recipe_files(tmp_path_factory):
    """The session's RecipeFiles (shared by every test module of one pytest run, and by the processes of a
    `pytest -n` run: their temp folders have the session's folder as parent)."""
    base = tmp_path_factory.getbasetemp()
    if base not in _SESSIONS:
        _SESSIONS[base] = RecipeFiles((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "recipe_files")
    return _SESSIONS[base]


def h264_frame_writer(path, size, fps):
    """A started imageio-ffmpeg writer of an H.264 clip (yuv420p, crf 12, no audio) at `path`: send it H×W×3 uint8
    RGB frames of `size` (width, height), then close it."""
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path),
        size,
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-crf", "12", "-preset", "fast"],
    )
    writer.send(None)
    return writer


def make_face_clip(
    path, seconds=2.0, fps=10, size=(480, 360), tone=True, photo="grace_hopper", cut_at=None, cut_shift=(0, 0)
):
    """A short video made from a bundled photo: a slow pan and zoom towards the face (H.264), with a 440 Hz tone
    of the same duration as its audio when `tone`. Deterministic for a given ffmpeg build. `cut_at`: from that
    frame on, the picture jumps by `cut_shift` (x, y) output pixels (a scene cut to a shifted face)."""
    import subprocess

    import cv2
    import imageio_ffmpeg
    import numpy as np

    src = cv2.imread(str(ROOT / "test_imgs" / "photos" / f"{photo}.jpg"))[:, :, ::-1]
    width, height = size
    n = int(round(seconds * fps))
    silent = Path(str(path) + ".silent.mp4")
    writer = h264_frame_writer(silent, size, fps)
    for t in range(n):
        a = t / max(n - 1, 1)
        scale = height / src.shape[0] * (1.0 + 0.15 * a)  # zoom in by 15 %
        cx, cy = 256 + 12 * a, 260 - 8 * a  # pan across the face
        m = np.array([[scale, 0, width / 2 - scale * cx], [0, scale, height / 2 - scale * cy]])
        if cut_at is not None and t >= cut_at:
            m[:, 2] += cut_shift
        frame = cv2.warpAffine(
            np.ascontiguousarray(src), m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    if not tone:
        silent.replace(path)
        return Path(path)
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(silent),
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={n / fps}",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    silent.unlink()
    return Path(path)


def alignment_missing():
    """Why the alignment extra (dlib and its landmark model) cannot be used here, or None when it can. Only what
    building an aligner needs is checked: building one at collection would read dlib's models for nothing."""
    try:
        import dlib  # noqa: F401

        from blendgan.align import find_predictor

        find_predictor()
    except Exception as err:  # noqa: BLE001 - the optional extra is missing: the caller's tests skip
        return f"alignment extra missing: {err}"
    return None


def run_blendgan_torchrun(args, nproc=2, env=None, timeout=900):
    """`torchrun --standalone --nproc_per_node NPROC -m blendgan ARGS` from the checkout (subprocess result).

    One thread per process for any process count (torchrun sets it only for several): the pSp encoder's CPU
    convolutions round differently with another thread count. `env` adds or overrides variables."""
    import subprocess

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    return subprocess.run(
        [*cmd, "-m", "blendgan", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )
