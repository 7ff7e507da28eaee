"""The pipeline's face edits: directions files read for this base, and face codes moved along them
(`blendgan.editing`)."""

from typing import TYPE_CHECKING, Sequence

import torch

from ..defaults import ADD_WEIGHT_INDEX
from ..fitting.adapter import generator_fingerprint
from ..io import images

if TYPE_CHECKING:
    from ..editing.directions_file import DirectionSet

__all__ = ["EditingMethods"]


class EditingMethods:
    """`BlendGAN`'s edit methods (mixed into the class)."""

    def load_directions(
        self, paths: "images.PathLike | Sequence[images.PathLike]", add_weight_index: int = ADD_WEIGHT_INDEX
    ) -> "DirectionSet":
        """Directions of `blendgan directions` files for this base (another base is refused in one line) and
        external [512] / [n_latent, 512] tensors (.pt, .npy; [512] ones move the layers before add_weight_index)."""
        from ..editing.apply import default_layers, load_directions

        def mapping(z):
            with torch.inference_mode():
                return self._to_output(self.generator.style(self._to_model(z)))

        paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") else list(paths)
        layers = default_layers(add_weight_index, self.n_latent)
        return load_directions(paths, generator_fingerprint(self.generator), self.n_latent, mapping, layers)

    def edit(self, face_codes: torch.Tensor, amounts: "dict[str, float]", directions: "DirectionSet") -> torch.Tensor:
        """Face codes moved along named directions by amounts in standard deviations (`bg.edit(codes,
        {"smile": 1.0}, bg.load_directions("directions.safetensors"))`); all amounts 0: the same codes."""
        from ..editing.apply import Edits

        return Edits(directions, amounts)(face_codes)
