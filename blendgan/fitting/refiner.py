"""The refine machinery a pipeline delegates to: refined face codes cached by image, settings and weights, in
memory and optionally in a folder (one file per key, written atomically), the ArcFace identity model, and the
float32 copies of the generator and VGG that a reduced-precision pipeline refines on."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..devices import place
from ..errors import UsageError
from ..io import images
from ..io.files import open_atomic
from . import refine
from .refine import ReconstructionLoss, RefineSettings, load_identity_model


def image_digest(array: np.ndarray) -> str:
    """Content key of an image array for the caches."""
    h = hashlib.sha1(np.ascontiguousarray(array).tobytes())
    h.update(repr((array.shape, str(array.dtype))).encode())
    return h.hexdigest()


def file_digest(path) -> str:
    """sha1 of a file's bytes (the identity weights' part of the refine cache key)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def weights_fingerprint(*models) -> str:
    """Cheap identity of the models' weights for cache keys: every tensor's name, shape, dtype and its first
    and last 64 values (hashing all of a 1024 px generator's bytes would take seconds)."""
    h = hashlib.sha1()
    for model in models:
        if model is None:
            h.update(b"none")
            continue
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            if t.is_contiguous() and t.numel():  # a view, never a copy (derived buffers follow their weights)
                flat = t.detach().view(-1)
                for part in (flat[:64], flat[-64:]):
                    h.update(part.float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class CachedRefine:
    """`last` of a call served from a cache: the stored losses, no optimisation, no seconds spent."""

    def __init__(self, entry: dict):
        self.codes, self.loss_before, self.loss_after = entry["codes"], entry["loss_before"], entry["loss_after"]
        self.steps, self.seconds, self.cached = entry["steps"], 0.0, True


class FaceRefiner:
    """Refines W+ codes of aligned faces for one pipeline's generator (`blendgan.fitting.refine`), with caches.

    `generator`: the pipeline's placed generator (its style encoder's VGG19 gives the perceptual term);
    `precision`, `device`, `dtype`: the pipeline's; `weights_id`: the models' fingerprint for cache keys (taken
    by the pipeline before it may drop the pSp encoder)."""

    def __init__(
        self, generator: torch.nn.Module, device: torch.device, dtype: torch.dtype, precision: str, weights_id: str
    ):
        self.generator, self.device, self.dtype, self.precision = generator, device, dtype, precision
        self.weights_id = weights_id
        self.cache_dir: Path | None = None
        self.memory: dict = {}
        self.identity_model = self.identity_name = None
        self.copies = None  # float32 (generator, VGG) for refining in a bf16 (CPU) / fp16 pipeline
        self.last = None

    # ------------------------------------------------------------------ settings
    def set_cache_dir(self, folder) -> None:
        """Also keep refined codes in `folder`; None: memory only."""
        self.cache_dir = Path(folder).expanduser() if folder else None

    def load_identity_weights(self, path) -> None:
        """ArcFace IR-SE50 weights for the identity term; None drops them (the term is then off)."""
        if not path:
            self.identity_model, self.identity_name = None, None
            return
        self.identity_model = place(load_identity_model(path), self.device, self.dtype_for_refining())
        self.identity_name = f"{Path(path).name}:{file_digest(path)}"

    def release_copies(self) -> None:
        """Drop the float32 copies made for a reduced-precision pipeline (made again when needed)."""
        self.copies = None

    # ------------------------------------------------------------------ refining
    def refine(
        self,
        image_bgr: np.ndarray,
        initial_codes: Callable[[], torch.Tensor],
        settings: RefineSettings,
        progress=None,
    ) -> torch.Tensor:
        """Refined codes [1, n_latent, 512] (CPU float32) of a uint8 BGR face; `initial_codes()` gives pSp's.
        Served from the memory or folder cache when the same image, settings and weights were refined before."""
        key = self.key(image_digest(image_bgr), settings)
        hit = self.memory.get(key)
        if hit is None:
            hit = self._read_file(key)
        if hit is not None:
            self.memory[key] = hit
            self.last = CachedRefine(hit)
            return hit["codes"]
        result = self._optimise(image_bgr, initial_codes(), settings, progress)
        entry = {
            "codes": result.codes.detach().to(device="cpu", dtype=torch.float32),
            "loss_before": result.loss_before,
            "loss_after": result.loss_after,
            "seconds": result.seconds,
            "steps": result.steps,
        }
        self.memory[key] = entry
        self._write_file(key, entry)
        self.last = result
        return entry["codes"]

    def key(self, digest: str, settings: RefineSettings) -> str:
        identity = self.identity_name if settings.identity > 0 else None
        text = f"{digest}|{settings.key()}|id={identity}|{self.precision}|{self.device.type}|{self.weights_id}"
        return hashlib.sha1(text.encode()).hexdigest()

    def _read_file(self, key):
        folder = self.cache_dir
        if folder is None or not (folder / f"{key}.pt").is_file():
            return None
        try:
            entry = torch.load(folder / f"{key}.pt", map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache file is recomputed and rewritten
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not torch.is_tensor(entry.get("codes")):
            return None
        return entry

    def _write_file(self, key, entry):
        folder = self.cache_dir
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open_atomic(folder / f"{key}.pt") as f:
                torch.save({**entry, "key": key}, f)
        except OSError as err:
            raise UsageError(
                f"refine cache folder {folder}: cannot write ({err.strerror}); pass a writable folder or none"
            ) from err

    def _optimise(self, image_bgr, init, settings, progress):
        init = init.to(device=self.device, dtype=torch.float32)
        generator, vgg, dtype = self.models()
        loss = ReconstructionLoss(
            vgg, settings.l2, settings.perceptual, self.identity_model, settings.identity, settings.loss_size
        ).to(self.device)
        target = images.bgr_to_tensor(image_bgr).to(device=self.device, dtype=dtype)
        return refine.refine_codes(  # looked up on the module: tests count the calls
            generator,
            target,
            init,
            loss,
            steps=settings.steps,
            lr=settings.lr,
            pull=settings.pull,
            seed=settings.seed,
            progress=progress,
            dtype=dtype,
        )

    def dtype_for_refining(self) -> torch.dtype:
        """The pipeline's dtype for fp32, and for bf16 on GPUs; else float32. On CPU PyTorch runs bf16
        convolutions on slow reference kernels where the CPU has no bf16 instructions (docs/refine.md), and fp16
        gradients through the generator would need loss scaling (not done), so fp16 pipelines refine in float32
        too. Not measured on a GPU."""
        if self.dtype == torch.float32 or (self.device.type == "cuda" and self.dtype == torch.bfloat16):
            return self.dtype
        return torch.float32

    def models(self):
        """(generator, VGG19 feature layers, dtype) the refinement runs: the pipeline's own, or in the cases of
        `dtype_for_refining` float32 copies of the generator without its style encoder and of the VGG layers,
        made on first use and kept until `release_copies`."""
        vgg = self.generator.embedder.embedder.feature_extractor.vgg_layers
        dtype = self.dtype_for_refining()
        if dtype == self.dtype:
            return self.generator, vgg, dtype
        if self.copies is None:
            embedder = self.generator.embedder
            self.generator.embedder = None  # not needed from W+ codes; not copied (its 610304 x 512 matrix)
            try:
                generator = copy.deepcopy(self.generator)
            finally:
                self.generator.embedder = embedder
            generator = place(generator, self.device, dtype)
            self.copies = (generator, place(copy.deepcopy(vgg), self.device, dtype))
        return (*self.copies, dtype)
