"""The pipeline's whole-photo methods: a thin front to `blendgan.photo` (detection, alignment, paste-back)."""

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..io import images

if TYPE_CHECKING:
    from ..align import FaceAligner

__all__ = ["PhotoMethods"]


class PhotoMethods:
    """`BlendGAN`'s whole-photo methods (mixed into the class)."""

    def stylize_photo(
        self,
        image: "images.PathLike | images.Image.Image | np.ndarray",
        style: "images.PathLike | torch.Tensor | Sequence",
        faces: "str | int" = "all",
        **options,
    ) -> "tuple[np.ndarray, list]":
        """A whole photo with every face stylized and pasted back: ``(photo, records)``; the options and
        controls are those of `blendgan.photo.stylize_photo`, which this calls with this pipeline."""
        from .. import photo

        return photo.stylize_photo(self, image, style, faces, **options)

    def face_aligner(self) -> "FaceAligner":
        """The FFHQ face aligner (dlib detector + landmarks), loaded on first use and kept."""
        if getattr(self, "_aligner", None) is None:
            from ..photo import make_aligner

            self._aligner = make_aligner()
        return self._aligner
