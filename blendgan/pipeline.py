"""The BlendGAN pipeline: the one place that knows both the models and the outside world.

It owns the device, the dtype, batching and the caches of face codes and style codes. Images come in
as paths, PIL images or NumPy arrays (RGB) and go out as tensors in [-1, 1] (convert them with
`blendgan.io.images`). Commands are thin wrappers over this module.

    from blendgan import BlendGAN
    bg = BlendGAN.from_checkpoints("pretrained_models/blendgan.pt", "pretrained_models/psp_encoder.pt")
    codes = bg.encode_face("face.jpg")
    style = bg.embed_style("painting.jpg")
    image = bg.stylize(codes, style, add_weight_index=6)      # [1, 3, size, size] in [-1, 1]
    bg.to_rgb(image)[0]                                         # H x W x 3 uint8 RGB
"""

import hashlib
import shutil

import numpy as np
import torch

from .controls import Controls, step_weights
from .errors import UsageError
from .fitting.adapter import generator_fingerprint
from .io import images
from .models import prepare_for_inference
from .models.mixed_precision import keep_float32
from .ops.bf16 import bf16_is_emulated

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_BATCH_SIZE = 4


def resolve_device(device: "str | torch.device | None" = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; anything else must be available."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: Apple MPS is not available here; use --device auto or cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {device!r} is not a device name (auto, cpu, cuda, cuda:N, mps)") from err


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp32 everywhere; bf16 on CPU/CUDA; fp16 on GPUs only (it is ~100x slower than fp32 on CPU)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("--precision fp16 is extremely slow on CPU; use --precision bf16 (or fp32)")
    return PRECISIONS[precision]


def warn_if_bf16_is_emulated(precision: str, device: torch.device) -> None:
    """One line on stderr when bf16 was asked for on a CPU without bf16 kernels (it works, but slowly)."""
    if precision == "bf16" and bf16_is_emulated(device):
        import sys

        print(
            "warning: --precision bf16: this CPU has no bf16 kernels for PyTorch's convolutions (no AVX512-BF16 "
            "or AMX), so they run on slow reference code; use fp32 here (benchmarks/results/bf16_cpu.md)",
            file=sys.stderr,
        )


def _digest(array):
    """Content key of an image array for the caches."""
    h = hashlib.sha1(np.ascontiguousarray(array).tobytes())
    h.update(repr((array.shape, str(array.dtype))).encode())
    return h.hexdigest()


def _file_digest(path):
    """sha1 of a file's bytes (the identity weights' part of the refine cache key)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _weights_fingerprint(*models):
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


class _CachedRefine:
    """`last_refine` of a call served from a cache: the stored losses, no optimisation, no seconds spent."""

    def __init__(self, entry):
        self.codes, self.loss_before, self.loss_after = entry["codes"], entry["loss_before"], entry["loss_after"]
        self.steps, self.seconds, self.cached = entry["steps"], 0.0, True


def _place(model, device, dtype):
    """Move a model to the device/dtype in place, freeze it and derive the fast path's buffers."""
    model = model.to(device=device, dtype=dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return prepare_for_inference(model)


def compile_generator(generator: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """torch.compile (inductor) of a prepared generator; on CPU inductor builds C++ kernels, so a missing
    compiler is a UsageError now rather than a traceback at the first image."""
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise UsageError(
            "--compile: torch.compile needs a C++ compiler on CPU and none was found (g++, c++, "
            "clang++); install one (e.g. apt install g++) or leave out --compile"
        )
    return torch.compile(generator)


class BlendGAN:
    """Generator + encoders on one device/dtype, with caches of face codes and style codes.

    The pipeline takes the modules it is given over: they are moved to its device and dtype in place
    (`nn.Module.to`), put in eval mode with gradients off, and get the fast path's derived buffers
    (`prepare_for_inference`; not in the state dict). Their weights are not changed. Pass a
    `copy.deepcopy` of a module you train or use elsewhere in another dtype.
    """

    def __init__(
        self,
        generator: torch.nn.Module,
        psp_encoder: "torch.nn.Module | None" = None,
        style_encoder: "torch.nn.Module | None" = None,
        *,
        device: "str | torch.device" = "auto",
        precision: str = "fp32",
        latent_avg: "torch.Tensor | None" = None,
        truncation: "float | None" = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        compile: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        warn_if_bf16_is_emulated(precision, self.device)
        self.precision = precision
        self.batch_size = max(1, int(batch_size))
        if not getattr(generator, "base_fingerprint", None):
            # before the cast: style-code and adapter files name the float32 base they were fitted with
            generator.base_fingerprint = generator_fingerprint(generator)
        self.generator = _place(generator, self.device, self.dtype)
        if self.dtype != torch.float32:
            # the two latent MLPs (mapping, style embedding) stay in float32: in bf16 they put ~1 %
            # error into every layer's style; measured ~11x fewer pixels off by > 2 grey levels at
            # 1024 px for no measurable cost (benchmarks/results/speed2_cpu.md)
            keep_float32(self.generator, to_rgb=False, latents=True)
        self.size = generator.size
        self.n_latent = generator.n_latent
        self.psp_encoder = _place(psp_encoder, self.device, self.dtype) if psp_encoder is not None else None
        if style_encoder is None:
            self.style_encoder = self.generator.embedder
        else:
            self.style_encoder = _place(style_encoder, self.device, self.dtype)
        if self.psp_encoder is not None and self.psp_encoder.encoder.n_styles != self.n_latent:
            raise UsageError(
                f"the pSp encoder makes {self.psp_encoder.encoder.n_styles} codes but the "
                f"{self.size}px generator needs {self.n_latent}: use the encoder for size {self.size}"
            )
        self.latent_avg = latent_avg  # from blendgan.pt: truncation centre of generate_image_pairs
        self.truncation = truncation
        self._face_cache = {}
        self._style_cache = {}
        self._pinned_styles = {}
        self._refine_cache = {}  # refined face codes by (image, settings, weights): refine_face_bgr
        # the models' part of the refine cache key, taken now (release_face_encoder drops the pSp encoder)
        self._weights_id = _weights_fingerprint(self.generator, self.psp_encoder)
        self.refine_cache_dir = None
        self._identity_model = self._identity_name = None
        self._refine_copies = None  # float32 (generator, VGG) for refining in a bf16 (CPU) / fp16 pipeline
        self.last_refine = None
        # torch.compile (inductor) of the generator: ~25 s per new call signature on 2 CPU cores, then
        # 1.04-1.06x faster at 64-1024 px (benchmarks/results/compile_cpu.md): for long jobs only
        self._run_generator = compile_generator(self.generator, self.device) if compile else self.generator

    @classmethod
    def from_checkpoints(
        cls,
        ckpt: "images.PathLike",
        psp_encoder_ckpt: "images.PathLike | None" = None,
        style_encoder_ckpt: "images.PathLike | None" = None,
        *,
        size: "int | None" = None,
        channel_multiplier: int = 2,
        adapters=(),
        **kwargs,
    ) -> "BlendGAN":
        """Load `blendgan.pt` (+ `psp_encoder.pt`, + optional `style_encoder.pt`) and build the pipeline.

        `adapters`: (adapter.safetensors, scale) pairs from `blendgan fit-style`, merged into the generator's
        weights at load (scale 0: the base model exactly); the files on disk are not changed."""
        from .fitting.adapter import merge_adapter
        from .weights.building import load_generator, load_psp_encoder, load_style_encoder

        generator, info = load_generator(ckpt, size=size, channel_multiplier=channel_multiplier)
        # recorded in float32, before adapters and before a cast to bf16: style-code files are checked with it
        generator.base_fingerprint = generator_fingerprint(generator)
        for path, scale in adapters or ():
            merge_adapter(generator, path, scale)
        psp = load_psp_encoder(psp_encoder_ckpt, size=generator.size) if psp_encoder_ckpt else None
        style = load_style_encoder(style_encoder_ckpt) if style_encoder_ckpt else None
        return cls(
            generator, psp, style, latent_avg=info.get("latent_avg"), truncation=info.get("truncation"), **kwargs
        )

    @classmethod
    def from_models(
        cls,
        generator: torch.nn.Module,
        psp_encoder: "torch.nn.Module | None" = None,
        style_encoder: "torch.nn.Module | None" = None,
        **kwargs,
    ) -> "BlendGAN":
        """Build the pipeline from already constructed models (e.g. `blendgan.weights` loaders).

        The modules are taken over (moved in place, frozen, see the class docstring), not copied."""
        return cls(generator, psp_encoder, style_encoder, **kwargs)

    # ------------------------------------------------------------------ tensors in / out
    def _to_model(self, t):
        return t.to(device=self.device, dtype=self.dtype)

    @staticmethod
    def _to_output(t):
        return t.detach().to(device="cpu", dtype=torch.float32)

    @staticmethod
    def to_rgb(image_tensor: torch.Tensor) -> "list[np.ndarray]":
        """[N, 3, H, W] in [-1, 1] -> list of H x W x 3 uint8 RGB arrays (the original's conversion)."""
        return [images.bgr_to_rgb_array(b) for b in images.tensors_to_bgr(image_tensor)]

    # ------------------------------------------------------------------ encoders (cached)
    def _encode_cached(self, cache, model, image_bgr):
        """model(image as tensor), memoised by the image's content."""
        key = _digest(image_bgr)
        if key not in cache:
            with torch.inference_mode():
                cache[key] = model(self._to_model(images.bgr_to_tensor(image_bgr)))
        return cache[key]

    def encode_face_bgr(self, image_bgr: np.ndarray) -> torch.Tensor:
        """pSp codes [1, n_latent, 512] of a uint8 BGR image, at its own resolution (pooled to 256)."""
        if self.psp_encoder is None:
            raise UsageError("no pSp encoder loaded (or released): pass psp_encoder_ckpt (psp_encoder.pt)")
        return self._encode_cached(self._face_cache, self.psp_encoder, image_bgr)

    def embed_style_bgr(self, image_bgr: np.ndarray) -> torch.Tensor:
        """Style code z_embed [1, 512] of a uint8 BGR image, at its own resolution (pooled to 256); a picture
        given to `remember_style_bgr` gets the code it was given."""
        pinned = self._pinned_styles.get(_digest(image_bgr)) if self._pinned_styles else None
        if pinned is not None:
            return pinned
        return self._encode_cached(self._style_cache, self.style_encoder, image_bgr)

    def remember_style_bgr(self, image_bgr: np.ndarray, z_embed: torch.Tensor) -> None:
        """From now on this exact picture stands for `z_embed` (e.g. a fitted style code shown as its
        reference's thumbnail in the web app); `clear_caches` keeps it."""
        self._pinned_styles[_digest(image_bgr)] = z_embed.reshape(1, -1).to(self.device)

    def encode_face(self, image: "images.PathLike | images.Image.Image | np.ndarray") -> torch.Tensor:
        """pSp codes of a face (path, PIL image or H x W x 3 RGB array; FFHQ-aligned)."""
        return self.encode_face_bgr(images.to_bgr(image))

    def embed_style(self, image: "images.PathLike | images.Image.Image | np.ndarray") -> torch.Tensor:
        """Style code z_embed [1, 512] of an artwork (path, PIL image or RGB array), or the code stored in a
        style-code file (`blendgan fit-style`'s style_code.safetensors)."""
        if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
            from .fitting.style_code import is_style_code_file

            if is_style_code_file(image):
                return self.read_style(image)[1]
        return self.embed_style_bgr(images.to_bgr(image))

    def read_style(self, path: "images.PathLike") -> "tuple[np.ndarray, torch.Tensor]":
        """(BGR picture, z_embed [1, 512]) of a style file: an image (read and embedded), or a style-code file
        (its stored code, checked against this generator, and its reference's thumbnail)."""
        from .fitting.style_code import is_style_code_file, read_style_code

        if not is_style_code_file(path):
            bgr = images.read_image_bgr(path)
            return bgr, self.embed_style_bgr(bgr)
        z, thumb, meta = read_style_code(path)
        if meta.get("base_fingerprint") != generator_fingerprint(self.generator):
            raise UsageError(
                f"{path}: this style code was fitted with another base checkpoint "
                f"({meta.get('base_checkpoint', '?')}); use it with that --ckpt or fit it again"
            )
        bgr = thumb[:, :, ::-1].copy() if thumb is not None else np.zeros((self.size, self.size, 3), np.uint8)
        return bgr, z.to(self.device)

    def release_face_encoder(self) -> None:
        """Drop the pSp encoder (e.g. once every face of a job is encoded): its weights, and the mapping
        of a memory-mapped checkpoint, are freed when nothing else holds them. Cached codes stay."""
        self.psp_encoder = None

    def page_out_style_encoder(self) -> int:
        """Hand the style encoder's weight pages back to the OS (e.g. once every style code is made):
        those of a memory-mapped checkpoint (fp32 from .pt / .safetensors) are re-read from the file if
        it is used again. Returns the bytes advised (0 where unavailable)."""
        from .allocator import page_out

        return page_out(
            [t for t in [*self.style_encoder.parameters(), *self.style_encoder.buffers()] if t.device.type == "cpu"]
        )

    def clear_caches(self) -> None:
        self._face_cache.clear()
        self._style_cache.clear()
        self._refine_cache.clear()

    # ------------------------------------------------------------------ refined face codes (issue 26)
    def set_refine_cache(self, folder: "images.PathLike | None") -> None:
        """Also keep refined codes in `folder` (one .pt file per image and settings, written atomically), so
        that another run or process reuses them; None: memory only."""
        from pathlib import Path

        self.refine_cache_dir = Path(folder).expanduser() if folder else None

    def load_identity_weights(self, path: "images.PathLike | None") -> None:
        """ArcFace IR-SE50 weights (pSp's model_ir_se50.pth) for the identity term of `refine_face`;
        None drops them (the term is then off)."""
        if not path:
            self._identity_model, self._identity_name = None, None
            return
        from pathlib import Path

        from .fitting.refine import load_identity_model

        self._identity_model = _place(load_identity_model(path), self.device, self._refine_dtype())
        self._identity_name = f"{Path(path).name}:{_file_digest(path)}"

    def refine_face_bgr(
        self,
        image_bgr: np.ndarray,
        steps: int = 50,
        *,
        lr: float = 0.01,
        seed: int = 0,
        l2: float = 1.0,
        perceptual: float = 0.8,
        identity: float = 0.1,
        pull: float = 0.5,
        loss_size: int = 256,
        progress=None,
    ) -> torch.Tensor:
        """W+ codes [1, n_latent, 512] (CPU float32) of a uint8 BGR face, optimised from pSp's for `steps` steps
        so that the generator redraws the photo closer (`blendgan.fitting.refine`: L2 + VGG perceptual, + ArcFace
        identity when `load_identity_weights` was called, + a pull toward pSp's codes so styles still apply).

        Cached by image content and settings in memory and, with `set_refine_cache`, in a folder: a second call
        does no optimisation. `progress(step, steps, loss)` is called after each step. `self.last_refine` holds
        the last call's `RefineResult` (seconds, losses before/after) and whether it came from a cache."""
        from .fitting.refine import RefineSettings

        settings = RefineSettings(
            steps=int(steps),
            lr=float(lr),
            l2=float(l2),
            perceptual=float(perceptual),
            identity=float(identity),
            pull=float(pull),
            loss_size=int(loss_size),
            seed=int(seed),
        ).check()
        if settings.steps == 0:
            self.last_refine = None
            return self._to_output(self.encode_face_bgr(image_bgr))
        key = self._refine_key(_digest(image_bgr), settings)
        hit = self._refine_cache.get(key)
        if hit is None:
            hit = self._read_refine_file(key)
        if hit is not None:
            self._refine_cache[key] = hit
            self.last_refine = _CachedRefine(hit)
            return hit["codes"]
        result = self._refine(image_bgr, settings, progress)
        entry = {
            "codes": self._to_output(result.codes),
            "loss_before": result.loss_before,
            "loss_after": result.loss_after,
            "seconds": result.seconds,
            "steps": result.steps,
        }
        self._refine_cache[key] = entry
        self._write_refine_file(key, entry)
        self.last_refine = result
        return entry["codes"]

    def refine_face(
        self, image: "images.PathLike | images.Image.Image | np.ndarray", steps: int = 50, **options
    ) -> torch.Tensor:
        """Refined codes of a face (path, PIL image or RGB array; FFHQ-aligned); see `refine_face_bgr`."""
        return self.refine_face_bgr(images.to_bgr(image), steps, **options)

    def face_codes_bgr(self, image_bgr: np.ndarray, refine: int = 0, **options) -> torch.Tensor:
        """The codes the jobs stylize: pSp's (`encode_face_bgr`) with refine=0, else `refine_face_bgr`."""
        if not refine:
            return self.encode_face_bgr(image_bgr)
        return self.refine_face_bgr(image_bgr, refine, **options)

    def _refine(self, image_bgr, settings, progress):
        from .fitting.refine import ReconstructionLoss, refine_codes

        init = self.encode_face_bgr(image_bgr).to(device=self.device, dtype=torch.float32)
        generator, vgg, dtype = self._refine_models()
        loss = ReconstructionLoss(
            vgg, settings.l2, settings.perceptual, self._identity_model, settings.identity, settings.loss_size
        ).to(self.device)
        target = images.bgr_to_tensor(image_bgr).to(device=self.device, dtype=dtype)
        return refine_codes(
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

    def _refine_dtype(self):
        """The refinement's dtype: the pipeline's for fp32, and for bf16 on GPUs; else float32. On CPU PyTorch
        runs bf16 convolutions with slow reference kernels where the CPU has no bf16 instructions (measured on
        an AVX2 EPYC: 80 s a step at 64 px against 4.5 s in float32; benchmarks/results/refine_cpu.md); fp16
        gradients through the generator would need loss scaling (not done), so fp16 pipelines refine in
        float32 too. Not measured on a GPU."""
        if self.dtype == torch.float32 or (self.device.type == "cuda" and self.dtype == torch.bfloat16):
            return self.dtype
        return torch.float32

    def _refine_models(self):
        """(generator, VGG19 feature layers, dtype) the refinement runs: the pipeline's own, or in the cases of
        `_refine_dtype` float32 copies of the generator without its style encoder and of the VGG layers, made
        on first use and kept (~+130 MB at 1024 px; `release_refine_models` frees them)."""
        vgg = self.generator.embedder.embedder.feature_extractor.vgg_layers
        dtype = self._refine_dtype()
        if dtype == self.dtype:
            return self.generator, vgg, dtype
        if self._refine_copies is None:
            import copy

            embedder = self.generator.embedder
            self.generator.embedder = None  # not needed from W+ codes; not copied (its 610304 x 512 matrix)
            try:
                generator = copy.deepcopy(self.generator)
            finally:
                self.generator.embedder = embedder
            generator = _place(generator, self.device, dtype)
            self._refine_copies = (generator, _place(copy.deepcopy(vgg), self.device, dtype))
        return (*self._refine_copies, dtype)

    def release_refine_models(self) -> None:
        """Drop the float32 copies `refine_face` makes in a reduced-precision pipeline (made again when needed)."""
        self._refine_copies = None

    def _refine_key(self, image_digest, settings):
        identity = self._identity_name if settings.identity > 0 else None
        text = f"{image_digest}|{settings.key()}|id={identity}|{self.precision}|{self.device.type}|{self._weights_id}"
        return hashlib.sha1(text.encode()).hexdigest()

    def _read_refine_file(self, key):
        folder = self.refine_cache_dir
        if folder is None or not (folder / f"{key}.pt").is_file():
            return None
        try:
            entry = torch.load(folder / f"{key}.pt", map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache file is recomputed and rewritten
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not torch.is_tensor(entry.get("codes")):
            return None
        return entry

    def _write_refine_file(self, key, entry):
        folder = self.refine_cache_dir
        if folder is None:
            return
        import os
        import tempfile

        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
            with os.fdopen(fd, "wb") as f:
                torch.save({**entry, "key": key}, f)
            os.replace(tmp, folder / f"{key}.pt")
        except OSError as err:
            raise UsageError(
                f"refine cache folder {folder}: cannot write ({err.strerror}); pass a writable folder or none"
            ) from err

    # ------------------------------------------------------------------ generation
    def _generate(self, styles, **kwargs):
        """Run the generator over the batch in chunks of `batch_size`; returns float32 CPU images."""
        n = styles.shape[0]
        out = []
        for start in range(0, n, self.batch_size):
            chunk = {k: _batch_slice(v, n, start, self.batch_size) for k, v in kwargs.items()}
            with torch.inference_mode():
                image, _ = self._run_generator(
                    [self._to_model(styles[start : start + self.batch_size])], randomize_noise=False, **chunk
                )
            out.append(self._to_output(image))
        return torch.cat(out)

    def stylize(
        self,
        face_codes: torch.Tensor,
        z_embed,
        add_weight_index: int = 6,
        *,
        strength: float = 1.0,
        layer_weights=None,
        preserve_color: bool = False,
        style_weights=None,
    ) -> torch.Tensor:
        """Images [N, 3, size, size] from pSp codes [N|1, n_latent, 512] and style codes [N|1, 512].

        Controls (`blendgan.controls`; the defaults give the original image exactly): `strength` in [0, 1]
        (0: the face's reconstruction), `layer_weights` (n_latent values in [0, 1] or a preset name such as
        'structure'; replaces the add_weight_index step), `preserve_color` (the colour layers keep the face's
        code), `style_weights` (several styles: z_embed a list of [N|1, 512] codes or [N|1, J, 512], mixed
        in W space with these weights)."""
        controls = Controls(
            strength,
            layer_weights,
            preserve_color,
            None if style_weights is None else tuple(float(k) for k in style_weights),
        )
        z_embed, mix = self._style_input(z_embed, controls)
        return self._stylize(face_codes, z_embed, mix, controls, add_weight_index)

    def _stylize(self, face_codes, z_embed, mix, controls, add_weight_index):
        face_codes, z_embed = self._pair(face_codes, z_embed)
        extra = {}
        if mix is not None:
            extra["style_weights"] = mix.to(self.device)  # float32: the latent MLPs stay float32 in bf16
        amounts = controls.style_amounts(self.n_latent, add_weight_index)
        if amounts is not None:
            with torch.inference_mode():
                extra["blend_weights"] = self.generator.blend_weights(style_amounts=amounts).reshape(1, -1)
        return self._generate(
            face_codes,
            input_is_latent=True,
            z_embed=self._to_model(z_embed),
            add_weight_index=add_weight_index,
            **extra,
        )

    def mix_styles(self, face_codes, z_embeds, weights, add_weight_index=6, **controls):
        """Images of the face codes in a mix of several styles: w_style = sum_j k_j * embedding(z_j) with the
        weights k normalised to sum 1 (`bg.mix_styles(codes, [z1, z2], [0.7, 0.3])`). Takes the other
        controls of `stylize` as keywords."""
        return self.stylize(face_codes, list(z_embeds), add_weight_index, style_weights=weights, **controls)

    def _style_input(self, z_embed, controls):
        """(z_embed, mix weights [1, J] or None): one style as given, or J styles stacked to [N|1, J, 512]."""
        several = isinstance(z_embed, (list, tuple)) or z_embed.ndim == 3
        if not several:
            if controls.style_weights is not None and len(controls.style_weights) != 1:
                raise UsageError(f"{len(controls.style_weights)} style weights for one style code")
            return z_embed, None
        if isinstance(z_embed, (list, tuple)):
            rows = [z.reshape(-1, z.shape[-1]) for z in z_embed]
            n = max(r.shape[0] for r in rows)
            z_embed = torch.stack([r.expand(n, -1) for r in rows], dim=1)
        k = controls.mix_weights(z_embed.shape[1])
        return z_embed, torch.tensor([k], dtype=torch.float32)

    def stylize_photo(
        self, image, style, faces="all", *, min_face=None, min_score=None, aligner=None, refine=0, **controls
    ):
        """A whole photo with every face stylized and pasted back: ``(photo, records)``.

        ``image``: a photo (path, PIL image or H x W x 3 RGB array), any size. ``style``: an artwork (path,
        PIL, RGB array) or a style code ``z_embed`` [1, 512], or a list of them mixed with ``style_weights``.
        ``faces``: ``"all"``, ``"largest"`` or K (the K largest). ``controls`` go to ``stylize`` (e.g.
        ``add_weight_index``, ``strength``). Returns the photo as an H x W x 3 uint8 RGB array at its own
        size, and one ``blendgan.photo.PhotoFace`` per detection (its placement, aligned crop, stylized face
        and mask, or why it was skipped), in detector order. ``refine`` > 0: each face's codes are refined for
        that many steps first (`refine_face_bgr`, cached)."""
        from . import photo

        def code(one):
            return one.reshape(1, -1) if torch.is_tensor(one) else self.embed_style(one)

        # several styles (a list) are mixed with the `style_weights` control
        z_embed = [code(s) for s in style] if isinstance(style, (list, tuple)) else code(style)
        bgr = images.to_bgr(image)
        options = {k: v for k, v in (("min_face", min_face), ("min_score", min_score)) if v is not None}
        records = photo.find_faces(aligner or self.face_aligner(), bgr, faces, **options)
        result = photo.stylize_faces(
            self, bgr, records, z_embed, face_codes=lambda c: self.face_codes_bgr(c, refine), **controls
        )
        return images.bgr_to_rgb_array(result), records

    def face_aligner(self):
        """The FFHQ face aligner (dlib detector + landmarks), loaded on first use and kept."""
        if getattr(self, "_aligner", None) is None:
            from .photo import make_aligner

            self._aligner = make_aligner()
        return self._aligner

    def reconstruct(self, face_codes: torch.Tensor) -> torch.Tensor:
        """The face as the generator sees it (pSp inversion, no style)."""
        return self._generate(self._to_model(face_codes), input_is_latent=True)

    def sample_pair(
        self,
        z: torch.Tensor,
        z_embed,
        truncation: float = 1.0,
        truncation_latent: "torch.Tensor | None" = None,
        add_weight_index: int = 6,
        noise: "list[torch.Tensor] | None" = None,
        *,
        strength=1.0,
        layer_weights=None,
        preserve_color: bool = False,
        style_weights=None,
    ) -> "tuple[torch.Tensor, torch.Tensor]":
        """generate_image_pairs: (face, stylized face) for latent z [N, 512] and style code [N|1, 512].

        `noise`: optional per-layer noise maps [N, 1, r, r] (both images of a pair get the same maps);
        default: the generator's stored maps, as in the original. The controls are those of `stylize`;
        `strength` may also be a list with one value per row (data sets drawing it per pair)."""
        strengths = list(strength) if isinstance(strength, (list, tuple)) else None
        controls = Controls(
            1.0 if strengths else strength,
            layer_weights,
            preserve_color,
            None if style_weights is None else tuple(float(k) for k in style_weights),
        )
        z_embed, mix = self._style_input(z_embed, controls)
        z, z_embed = self._pair(z, z_embed)
        extra = {}
        if noise is not None:
            extra["noise"] = [self._to_model(m) for m in noise]
        if truncation < 1:
            if truncation_latent is None:
                raise UsageError("truncation < 1 needs a truncation centre (latent_avg or mean_latent)")
            extra.update(truncation=truncation, truncation_latent=self._to_model(truncation_latent))
        plain = self._generate(z, **extra)
        if mix is not None:
            extra["style_weights"] = mix.to(self.device)  # float32: the latent MLPs stay float32 in bf16
        rows = (
            [controls]
            if strengths is None
            else [Controls(s, layer_weights, preserve_color, controls.style_weights) for s in strengths]
        )
        amounts = [c.style_amounts(self.n_latent, add_weight_index) for c in rows]
        if any(a is not None for a in amounts):
            # rows at strength 1 take the add_weight_index step (their original blend weights, exactly)
            amounts = [step_weights(self.n_latent, add_weight_index) if a is None else a for a in amounts]
            with torch.inference_mode():
                extra["blend_weights"] = self.generator.blend_weights(style_amounts=amounts).reshape(len(rows), -1)
        styled = self._generate(z, z_embed=self._to_model(z_embed), add_weight_index=add_weight_index, **extra)
        return plain, styled

    def noise_shapes(self) -> "list[tuple[int, ...]]":
        """Shapes [1, 1, r, r] of the generator's per-layer noise maps (for drawing random ones)."""
        return [tuple(b.shape) for b in self.generator.noises.maps()]

    def face_codes_from_z(
        self, z: torch.Tensor, truncation: float = 1.0, truncation_latent: "torch.Tensor | None" = None
    ) -> torch.Tensor:
        """Face codes [N, n_latent, 512] of random latents z [N, 512] (a latent-guided face, the original
        GUI's random face): w = mapping(z), pulled towards `truncation_latent` when truncation < 1."""
        with torch.inference_mode():
            w = self.generator.style(self._to_model(z))
            if truncation < 1:
                if truncation_latent is None:
                    raise UsageError("truncation < 1 needs a truncation centre (latent_avg or mean_latent)")
                centre = self._to_model(truncation_latent.reshape(1, -1))
                w = centre + truncation * (w - centre)
        return self._to_output(w).unsqueeze(1).repeat(1, self.n_latent, 1)

    def mean_latent(self, n: int, generator: "torch.Generator | None" = None) -> torch.Tensor:
        """Mean mapped latent of n random z drawn on the CPU generator (device-independent)."""
        z = torch.randn(n, 512, generator=generator)
        with torch.inference_mode():
            w = torch.cat([self.generator.style(self._to_model(c)) for c in z.split(1024)])
        return w.float().mean(0, keepdim=True)

    def interpolate(
        self,
        face_codes: torch.Tensor,
        z_from: torch.Tensor,
        z_to: torch.Tensor,
        alphas: "list[float] | tuple[float, ...]",
        add_weight_index: int = 7,
        *,
        space: str = "z",
        **controls,
    ) -> torch.Tensor:
        """Images blending two styles by each alpha, in order (the interpolation video).

        space 'z' (gen_video's original): style codes torch.lerp(z_from, z_to, alpha). space 'w': the style
        mix of `mix_styles` with weights (1 - alpha, alpha), so a frame equals that two-style mix exactly.
        Takes the other controls of `stylize` as keywords."""
        if space == "w":
            pair = torch.stack([z_from.reshape(-1), z_to.reshape(-1)])  # [2, 512]
            z = pair.unsqueeze(0).expand(len(alphas), -1, -1)
            mix = torch.tensor(
                [Controls(style_weights=(1.0 - float(a), float(a))).mix_weights(2) for a in alphas], dtype=torch.float32
            )
            return self._stylize(face_codes, z, mix, Controls(**controls), add_weight_index)
        if space != "z":
            raise UsageError(f"interpolation space {space!r}: choose 'z' (style codes) or 'w' (mapped styles)")
        z = torch.stack([torch.lerp(z_from.reshape(-1), z_to.reshape(-1), float(a)) for a in alphas])
        return self.stylize(face_codes, z, add_weight_index=add_weight_index, **controls)

    def _pair(self, a, b):
        """Broadcast two batches where one of them has a single entry."""
        a, b = a.to(self.device), b.to(self.device)
        if a.shape[0] != b.shape[0]:
            n = max(a.shape[0], b.shape[0])
            if min(a.shape[0], b.shape[0]) != 1:
                raise ValueError(f"batch sizes {a.shape[0]} and {b.shape[0]} do not broadcast")
            a = a.expand(n, *a.shape[1:])
            b = b.expand(n, *b.shape[1:])
        return a, b


def _batch_slice(value, n, start, size):
    """Rows start:start+size of a per-sample tensor (or list of them, e.g. noise maps); anything else as is."""
    if torch.is_tensor(value) and value.ndim and value.shape[0] == n:
        return value[start : start + size]
    if isinstance(value, (list, tuple)) and value and all(torch.is_tensor(v) and v.shape[0] == n for v in value):
        return [v[start : start + size] for v in value]
    return value


def video_alphas() -> "list[float]":
    """gen_video's 31 blend factors: 0, sigmoid(-5.0 ... 4.5 step 0.5), then ten 1s."""
    return [0.0] + [float(1.0 / (1.0 + np.exp(-a))) for a in np.arange(-5, 5, 0.5)] + [1.0] * 10
