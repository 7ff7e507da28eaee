"""The pipeline's latent-guided faces: pairs drawn from random latents (the original's
`generate_image_pairs`), the mapped latents themselves, and the two-style interpolation of the morph video."""

from dataclasses import replace
from typing import Optional, Sequence

import torch

from ..controls import Controls, stack_styles
from ..errors import UsageError
from .types import LayerWeights, StyleCodes, weights_tuple

__all__ = ["SamplingMethods"]


class SamplingMethods:
    """`BlendGAN`'s sampling methods (mixed into the class; they draw through its `_generate`)."""

    def sample_pair(
        self,
        z: torch.Tensor,
        z_embed: StyleCodes,
        truncation: float = 1.0,
        truncation_latent: "torch.Tensor | None" = None,
        add_weight_index: int = 6,
        noise: "list[torch.Tensor] | None" = None,
        *,
        strength: "float | Sequence[float]" = 1.0,
        layer_weights: LayerWeights = None,
        preserve_color: bool = False,
        style_weights: Optional[Sequence[float]] = None,
    ) -> "tuple[torch.Tensor, torch.Tensor]":
        """generate_image_pairs: (face, stylized face) for latent z [N, 512] and style code [N|1, 512].

        `noise`: optional per-layer noise maps [N, 1, r, r] (both images of a pair get the same maps);
        default: the generator's stored maps, as in the original. The controls are those of `stylize`;
        `strength` may also be a list with one value per row (data sets drawing it per pair)."""
        strengths = list(strength) if isinstance(strength, (list, tuple)) else None
        controls = Controls(1.0 if strengths else strength, layer_weights, preserve_color, weights_tuple(style_weights))
        z_embed, mix = stack_styles(z_embed, controls)
        z, z_embed = self._pair(z, z_embed)
        extra = {}
        if noise is not None:
            extra["noise"] = [self._to_model(m) for m in noise]
        if truncation < 1:
            if truncation_latent is None:
                raise UsageError("truncation < 1 needs a truncation centre (latent_avg or mean_latent)")
            extra.update(truncation=truncation, truncation_latent=self._to_model(truncation_latent))
        plain = self._generate(z, **extra)
        rows = [controls] if strengths is None else [replace(controls, strength=s) for s in strengths]
        extra.update(self._control_inputs(rows, add_weight_index, mix))
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
