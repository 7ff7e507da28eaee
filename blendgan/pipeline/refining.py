"""The pipeline's refined face codes: thin methods over `fitting.refiner.FaceRefiner`, which owns the optimisation,
its ArcFace model, the float32 copies and the memory and folder caches."""

from typing import Callable, Optional

import numpy as np
import torch

from ..fitting.refine import RefineSettings
from ..io import images

#: progress(step, steps, loss) after each refinement step
RefineProgress = Callable[[int, int, float], None]

__all__ = ["RefiningMethods", "RefineProgress"]


class RefiningMethods:
    """`BlendGAN`'s refine methods (mixed into the class; `self.refiner` is the pipeline's `FaceRefiner`)."""

    @property
    def last_refine(self):
        """The last `refine_face_bgr` call's `RefineResult` (seconds, losses), or a cached one; None after 0 steps."""
        return self.refiner.last

    @property
    def refine_cache_dir(self):
        return self.refiner.cache_dir

    def set_refine_cache(self, folder: "images.PathLike | None") -> None:
        """Also keep refined codes in `folder` (one .pt file per image and settings, written atomically), so
        that another run or process reuses them; None: memory only."""
        self.refiner.set_cache_dir(folder)

    def load_identity_weights(self, path: "images.PathLike | None") -> None:
        """ArcFace IR-SE50 weights (pSp's model_ir_se50.pth) for the identity term of `refine_face`;
        None drops them (the term is then off)."""
        self.refiner.load_identity_weights(path)

    def release_refine_models(self) -> None:
        """Drop the float32 copies `refine_face` makes in a reduced-precision pipeline (made again when needed)."""
        self.refiner.release_copies()

    def refine_face_bgr(
        self, image_bgr: np.ndarray, steps: int = 50, *, progress: Optional[RefineProgress] = None, **options
    ) -> torch.Tensor:
        """W+ codes [1, n_latent, 512] (CPU float32) of a uint8 BGR face, optimised from pSp's for `steps` steps
        so that the generator redraws the photo closer (`blendgan.fitting.refine`: L2 + VGG perceptual, + ArcFace
        identity when `load_identity_weights` was called, + a pull toward pSp's codes so styles still apply).
        `options`: lr, seed, l2, perceptual, identity, pull, loss_size (`RefineSettings`).

        Cached by image content and settings in memory and, with `set_refine_cache`, in a folder: a second call
        does no optimisation. `progress(step, steps, loss)` is called after each step. `self.last_refine` holds
        the last call's `RefineResult` (seconds, losses before/after) and whether it came from a cache."""
        fields = RefineSettings.__dataclass_fields__
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise TypeError(f"refine_face_bgr() got unexpected keyword arguments {unknown}")
        settings = RefineSettings(
            steps=int(steps), **{k: type(fields[k].default)(v) for k, v in options.items()}
        ).check()
        if settings.steps == 0:
            self.refiner.last = None
            return self._to_output(self.encode_face_bgr(image_bgr))
        return self.refiner.refine(image_bgr, lambda: self.encode_face_bgr(image_bgr), settings, progress)

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
