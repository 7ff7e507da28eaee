"""`BlendGAN`: device, dtype, batching, the face and style caches, and stylizing. Refining, sampling, edits and
whole photos are its mixed-in methods (`refining`, `sampling`, `editing`, `photos` beside this module)."""

from typing import Optional, Sequence

import numpy as np
import torch

from ..controls import Controls, stack_styles, step_weights
from ..devices import compile_generator, place, resolve_device, resolve_dtype, warn_if_bf16_is_emulated
from ..errors import UsageError
from ..fitting.adapter import generator_fingerprint
from ..fitting.refiner import FaceRefiner, image_digest, weights_fingerprint
from ..io import images
from ..models.mixed_precision import keep_float32
from .editing import EditingMethods
from .photos import PhotoMethods
from .refining import RefiningMethods
from .sampling import SamplingMethods
from .types import LayerWeights, StyleCodes, weights_tuple

DEFAULT_BATCH_SIZE = 4

__all__ = ["BlendGAN", "DEFAULT_BATCH_SIZE"]


class BlendGAN(RefiningMethods, SamplingMethods, EditingMethods, PhotoMethods):
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
        self.generator = place(generator, self.device, self.dtype)
        if self.dtype != torch.float32:
            # the two latent MLPs (mapping, style embedding) stay in float32: in bf16 they put ~1 %
            # error into every layer's style; measured ~11x fewer pixels off by > 2 grey levels at
            # 1024 px for no measurable cost (docs/speed.md)
            keep_float32(self.generator, to_rgb=False, latents=True)
        self.size = generator.size
        self.n_latent = generator.n_latent
        self.psp_encoder = place(psp_encoder, self.device, self.dtype) if psp_encoder is not None else None
        if style_encoder is None:
            self.style_encoder = self.generator.embedder
        else:
            self.style_encoder = place(style_encoder, self.device, self.dtype)
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
        # refined face codes and their caches; the models' part of its cache key is taken now
        # (release_face_encoder drops the pSp encoder)
        self.refiner = FaceRefiner(
            self.generator,
            self.device,
            self.dtype,
            precision,
            weights_fingerprint(self.generator, self.psp_encoder),
        )
        # torch.compile (inductor) of the generator: each new call signature compiles first, so it pays
        # off on long jobs only (docs/speed.md)
        self._run_generator = compile_generator(self.generator, self.device) if compile else self.generator

    @property
    def weights_id(self) -> str:
        """A fingerprint of the generator's and pSp encoder's weights (adapters merged), for cache and resume keys."""
        return self.refiner.weights_id

    @classmethod
    def from_checkpoints(
        cls,
        ckpt: "images.PathLike",
        psp_encoder_ckpt: "images.PathLike | None" = None,
        style_encoder_ckpt: "images.PathLike | None" = None,
        *,
        size: "int | None" = None,
        channel_multiplier: int = 2,
        adapters: "Sequence[tuple[images.PathLike, float]]" = (),
        **kwargs,
    ) -> "BlendGAN":
        """Load `blendgan.pt` (+ `psp_encoder.pt`, + optional `style_encoder.pt`) and build the pipeline.

        `adapters`: (adapter.safetensors, scale) pairs from `blendgan fit-style`, merged into the generator's
        weights at load (scale 0: the base model exactly); the files on disk are not changed."""
        from ..fitting.adapter import merge_adapter
        from ..weights.building import load_generator, load_psp_encoder, load_style_encoder

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
        key = image_digest(image_bgr)
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
        pinned = self._pinned_styles.get(image_digest(image_bgr)) if self._pinned_styles else None
        if pinned is not None:
            return pinned
        return self._encode_cached(self._style_cache, self.style_encoder, image_bgr)

    def remember_style_bgr(self, image_bgr: np.ndarray, z_embed: torch.Tensor) -> None:
        """From now on this exact picture stands for `z_embed` (e.g. a fitted style code shown as its
        reference's thumbnail in the web app); `clear_caches` keeps it."""
        self._pinned_styles[image_digest(image_bgr)] = z_embed.reshape(1, -1).to(self.device)

    def encode_face(self, image: "images.PathLike | images.Image.Image | np.ndarray") -> torch.Tensor:
        """pSp codes of a face (path, PIL image or H x W x 3 RGB array; FFHQ-aligned)."""
        return self.encode_face_bgr(images.to_bgr(image))

    def embed_style(self, image: "images.PathLike | images.Image.Image | np.ndarray") -> torch.Tensor:
        """Style code z_embed [1, 512] of an artwork (path, PIL image or RGB array), or the code stored in a
        style-code file (`blendgan fit-style`'s style_code.safetensors)."""
        if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
            from ..fitting.style_code import is_style_code_file

            if is_style_code_file(image):
                return self.read_style(image)[1]
        return self.embed_style_bgr(images.to_bgr(image))

    def read_style(self, path: "images.PathLike") -> "tuple[np.ndarray, torch.Tensor]":
        """(BGR picture, z_embed [1, 512]) of a style file: an image (read and embedded), or a style-code file
        (its stored code, checked against this generator, and its reference's thumbnail)."""
        from ..fitting.style_code import is_style_code_file, read_checked_style_code

        if not is_style_code_file(path):
            bgr = images.read_image_bgr(path)
            return bgr, self.embed_style_bgr(bgr)
        bgr, z = read_checked_style_code(path, generator_fingerprint(self.generator), self.size)
        return bgr, z.to(self.device)

    def release_face_encoder(self) -> None:
        """Drop the pSp encoder (e.g. once every face of a job is encoded): its weights, and the mapping
        of a memory-mapped checkpoint, are freed when nothing else holds them. Cached codes stay."""
        self.psp_encoder = None

    def page_out_style_encoder(self) -> int:
        """Hand the style encoder's weight pages back to the OS (e.g. once every style code is made):
        those of a memory-mapped checkpoint (fp32 from ..pt / .safetensors) are re-read from the file if
        it is used again. Returns the bytes advised (0 where unavailable)."""
        from ..allocator import page_out

        return page_out(
            [t for t in [*self.style_encoder.parameters(), *self.style_encoder.buffers()] if t.device.type == "cpu"]
        )

    def clear_caches(self) -> None:
        """Forget cached face, style and refined codes (pinned styles stay)."""
        self._face_cache.clear()
        self._style_cache.clear()
        self.refiner.memory.clear()

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
        z_embed: StyleCodes,
        add_weight_index: int = 6,
        *,
        strength: float = 1.0,
        layer_weights: LayerWeights = None,
        preserve_color: bool = False,
        style_weights: Optional[Sequence[float]] = None,
        max_resolution: Optional[int] = None,
        noise: "list[torch.Tensor] | None" = None,
    ) -> torch.Tensor:
        """Images [N, 3, size, size] from pSp codes [N|1, n_latent, 512] and style codes [N|1, 512].

        Controls (`blendgan.controls`; the defaults give the original image exactly): `strength` in [0, 1]
        (0: the face's reconstruction), `layer_weights` (n_latent values in [0, 1] or a preset name such as
        'structure'; replaces the add_weight_index step), `preserve_color` (the colour layers keep the face's
        code), `style_weights` (several styles: z_embed a list of [N|1, 512] codes or [N|1, J, 512], mixed
        in W space with these weights). `max_resolution` (a power of two below `size`): stop the synthesis at
        that block, [N, 3, r, r] (for faces pasted back smaller than that; None: the full generator). `noise`:
        per-layer noise maps [N|1, 1, r, r] as in `sample_pair` (None: the generator's stored maps)."""
        controls = Controls(strength, layer_weights, preserve_color, weights_tuple(style_weights))
        z_embed, mix = stack_styles(z_embed, controls)
        return self._stylize(face_codes, z_embed, mix, controls, add_weight_index, max_resolution, noise)

    def _stylize(self, face_codes, z_embed, mix, controls, add_weight_index, max_resolution=None, noise=None):
        face_codes, z_embed = self._pair(face_codes, z_embed)
        extra = self._control_inputs([controls], add_weight_index, mix)
        if max_resolution is not None and int(max_resolution) < self.size:
            extra["max_resolution"] = int(max_resolution)
        if noise is not None:
            extra["noise"] = [self._to_model(m) for m in noise]
        return self._generate(
            face_codes,
            input_is_latent=True,
            z_embed=self._to_model(z_embed),
            add_weight_index=add_weight_index,
            **extra,
        )

    def _control_inputs(self, rows, add_weight_index, mix):
        """The generator's keywords for the controls of each row (one `Controls` for the batch, or one per row):
        the style mix weights, and per-row blend weights where a control changes them; rows at strength 1 then
        take the add_weight_index step (their original blend weights, exactly)."""
        extra = {}
        if mix is not None:
            extra["style_weights"] = mix.to(self.device)  # float32: the latent MLPs stay float32 in bf16
        amounts = [c.style_amounts(self.n_latent, add_weight_index) for c in rows]
        if any(a is not None for a in amounts):
            amounts = [step_weights(self.n_latent, add_weight_index) if a is None else a for a in amounts]
            with torch.inference_mode():
                extra["blend_weights"] = self.generator.blend_weights(style_amounts=amounts).reshape(len(rows), -1)
        return extra

    def mix_styles(
        self,
        face_codes: torch.Tensor,
        z_embeds: Sequence[torch.Tensor],
        weights: Sequence[float],
        add_weight_index: int = 6,
        **controls,
    ) -> torch.Tensor:
        """Images of the face codes in a mix of several styles: w_style = sum_j k_j * embedding(z_j) with the
        weights k normalised to sum 1 (`bg.mix_styles(codes, [z1, z2], [0.7, 0.3])`). Takes the other
        controls of `stylize` as keywords."""
        return self.stylize(face_codes, list(z_embeds), add_weight_index, style_weights=weights, **controls)

    def reconstruct(self, face_codes: torch.Tensor, noise: "list[torch.Tensor] | None" = None) -> torch.Tensor:
        """The face as the generator sees it (pSp inversion, no style); `noise` as in `stylize`."""
        extra = {} if noise is None else {"noise": [self._to_model(m) for m in noise]}
        return self._generate(self._to_model(face_codes), input_is_latent=True, **extra)

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
