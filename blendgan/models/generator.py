"""BlendGAN generator: StyleGAN2 synthesis + face mapping net `style` + style mapping net `embedding`
+ Weighted Blending Module `add_weight` + the style encoder `embedder`.
"""

import math
import random
from typing import Optional, Sequence

import torch
from torch import nn

from .layers import ConstantInput, EqualLinear, PixelNorm, StyledConv, ToRGB, random_normal
from .style_encoder import VGG19_WIDTH, StyleEncoder

SUPPORTED_SIZES = tuple(2**i for i in range(3, 11))  # 8 ... 1024


def channels_for(channel_multiplier=2, max_channels=512):
    """Channels per resolution as in the original model.py (512 up to 32 px, then halving); `max_channels`
    caps every width (512 = the official networks; smaller values give narrow models for experiments and tests)."""
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
    return {res: min(c, int(max_channels)) for res, c in table.items()}


def n_latent_for_size(size: int) -> int:
    """Number of per-layer latents: 2·log2(size) − 2 (64 → 10, 256 → 14, 1024 → 18)."""
    return 2 * int(math.log2(size)) - 2


def size_for_n_latent(n_latent: int) -> int:
    """Inverse of `n_latent_for_size`."""
    return 2 ** ((n_latent + 2) // 2)


def mapping_network(style_dim, n_mlp, lr_mlp):
    """PixelNorm then n_mlp x EqualLinear(lr_mul 0.01, fused lrelu); keys `.1` ... `.n_mlp`."""
    return nn.Sequential(
        PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu") for _ in range(n_mlp)]
    )


class NoiseBuffers(nn.Module):
    """Fixed noise maps `noise_i [1, 1, r, r]`, r = 2^((i + 5) // 2)."""

    def __init__(self, num_layers):
        super().__init__()
        self.num_layers = num_layers
        for i in range(num_layers):
            res = 2 ** ((i + 5) // 2)
            self.register_buffer(f"noise_{i}", random_normal(1, 1, res, res))

    def maps(self):
        return [getattr(self, f"noise_{i}") for i in range(self.num_layers)]


class Generator(nn.Module):
    """BlendGAN generator with the original state-dict layout and `forward` keywords."""

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[int] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
        max_channels: int = 512,
        with_style_encoder: bool = True,
        style_width: int = VGG19_WIDTH,
    ) -> None:
        super().__init__()
        if size not in SUPPORTED_SIZES:
            raise ValueError(f"size must be a power of two between 8 and 1024, got {size}")
        self.size, self.style_dim = size, style_dim
        self.log_size = int(math.log2(size))
        self.n_latent = n_latent_for_size(size)
        self.num_layers = 2 * self.log_size - 3
        self.channel_multiplier, self.max_channels = channel_multiplier, int(max_channels)
        channels = channels_for(channel_multiplier, max_channels)

        # Registration order = the original state-dict order.
        self.add_weight = nn.Parameter(torch.ones(1, self.n_latent, 1))
        # A trainer keeps the frozen style encoder outside the trained module (with_style_encoder=False:
        # no `embedder.*` entries); forward then needs `z_embed` instead of `style_image`.
        self.embedder = StyleEncoder(style_dim, style_width) if with_style_encoder else None
        self.embedding = mapping_network(style_dim, n_mlp, lr_mlp)
        self.style = mapping_network(style_dim, n_mlp, lr_mlp)
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(channels[4], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty; kept for the original layout
        self.to_rgbs = nn.ModuleList()
        in_ch = channels[4]
        for i in range(3, self.log_size + 1):
            out_ch = channels[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch
        self.noises = NoiseBuffers(self.num_layers)

    # ----------------------------------------------------------------- helpers
    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Face mapping network: z [N, 512] -> w [N, 512]."""
        return self.style(z)

    @torch.no_grad()
    def get_z_embed(self, style_image: torch.Tensor) -> torch.Tensor:
        """Style encoder: [-1, 1] RGB image -> z_embed [N, 512]."""
        return self.embedder(style_image)

    @torch.no_grad()
    def mean_latent(self, n_latent: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Mean of `style(z)` over n random z, shape [1, 512] (truncation centre)."""
        p = self.input.input
        z = torch.randn(n_latent, self.style_dim, generator=generator, device=p.device, dtype=p.dtype)
        return self.style(z).mean(0, keepdim=True)

    def make_noise(self, generator: Optional[torch.Generator] = None) -> "list[torch.Tensor]":
        """Fresh random noise maps with the shapes of the stored buffers."""
        return [torch.randn(b.shape, generator=generator, device=b.device, dtype=b.dtype) for b in self.noises.maps()]

    def blend_weights(
        self, add_weight_index: Optional[int] = None, style_amounts: "Sequence | torch.Tensor | None" = None
    ) -> torch.Tensor:
        """WBM weights a [1, n_latent, 1]: add_weight clamped to [0, 1], first `add_weight_index` layers = 1.

        The original clamps the parameter in place; clamping a copy gives the same numbers without
        changing the module. `style_amounts` t ([n_latent] or [N, n_latent], in [0, 1]; see
        `blendgan.controls`) replaces the add_weight_index step: a' = 1 - t * (1 - a), [N|1, n_latent, 1].
        It is computed as lerp(a, 1, 1 - t), exact at both ends: t = 1 gives a, t = 0 gives 1."""
        a = self.add_weight.clamp(0, 1)
        if style_amounts is not None:
            t = torch.as_tensor(style_amounts, dtype=a.dtype, device=a.device).reshape(-1, self.n_latent, 1)
            return torch.lerp(a, torch.ones_like(a), 1 - t)
        if add_weight_index is not None:
            a = a.clone()
            a[:, :add_weight_index] = 1  # Python slice semantics, as in the original
        return a

    def style_latent(self, z_embed: torch.Tensor, style_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Style mapping: z_embed [N, 512] -> w_style [N, 512]; several styles z_embed [N, J, 512] with mix
        weights [N|1, J] mix in W space: sum_j k_j * embedding(z_j) (each style mapped on its own, so one
        style with weight 1 gives the single style's numbers exactly)."""
        if z_embed.ndim == 2:
            return self.embedding(z_embed)
        if style_weights is None:
            raise ValueError("several style codes [N, J, 512] need style_weights [N|1, J]")
        w = None
        for j in range(z_embed.shape[1]):
            mapped = self.embedding(z_embed[:, j])
            term = style_weights[:, j : j + 1].to(mapped.dtype) * mapped
            w = term if w is None else w + term
        return w

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        styles: "Sequence[torch.Tensor]",
        return_latents: bool = False,
        inject_index: Optional[int] = None,
        truncation: float = 1,
        truncation_latent: Optional[torch.Tensor] = None,
        input_is_latent: bool = False,
        noise: "Optional[Sequence[Optional[torch.Tensor]]]" = None,
        randomize_noise: bool = True,
        style_image: Optional[torch.Tensor] = None,
        z_embed: Optional[torch.Tensor] = None,
        only_return_z_embed: bool = False,
        add_weight_index: Optional[int] = None,
        blend_weights: Optional[torch.Tensor] = None,
        style_weights: Optional[torch.Tensor] = None,
        max_resolution: Optional[int] = None,
    ) -> "tuple[torch.Tensor, Optional[torch.Tensor]]":
        """The original keywords, plus two for the stylization controls (`blendgan.controls`):
        `blend_weights` [N|1, n_latent] replaces the WBM weights (add_weight_index is then ignored), and
        `z_embed` [N, J, 512] with `style_weights` [N|1, J] mixes J styles in W space (`style_latent`); and
        `max_resolution` (see `synthesis`) for fitting at a lower resolution."""
        if only_return_z_embed and style_image is not None:
            return self.get_z_embed(style_image)
        if not input_is_latent:
            styles = [self.style(s) for s in styles]

        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.noises.maps()

        if truncation < 1:
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]

        latent = self._per_layer_latent(styles, inject_index)

        if z_embed is None and style_image is not None:
            z_embed = self.get_z_embed(style_image)
        if z_embed is not None:
            style_latent = self.style_latent(z_embed, style_weights).unsqueeze(1)  # broadcast over the layers
            if blend_weights is None:
                a = self.blend_weights(add_weight_index)
            else:
                a = blend_weights.reshape(blend_weights.shape[0], self.n_latent, 1).to(self.add_weight.dtype)
            latent = latent * a + style_latent * (1 - a)

        image = self.synthesis(latent, noise, max_resolution)
        if return_latents:
            return (image, latent, z_embed) if z_embed is not None else (image, latent)
        return image, None

    def _per_layer_latent(self, styles, inject_index):
        """[N, n_latent, 512] from one (2-D or 3-D) or two (style mixing) latents."""
        if len(styles) < 2:
            s = styles[0]
            return s if s.ndim == 3 else s.unsqueeze(1).repeat(1, self.n_latent, 1)
        if inject_index is None:
            inject_index = random.randint(1, self.n_latent - 1)
        first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
        second = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
        return torch.cat([first, second], 1)

    def synthesis(
        self, latent: torch.Tensor, noise: "list[torch.Tensor]", max_resolution: Optional[int] = None
    ) -> "tuple[torch.Tensor, torch.Tensor]":
        """Synthesis network on per-layer latents [N, n_latent, 512]. `max_resolution` stops at that block and
        returns its RGB skip image (e.g. 256 px of a 1024 px generator: the layers above are not run)."""
        noise = [self._noise_map(n, latent, i) for i, n in enumerate(noise)]
        x = self.input(latent.shape[0])
        x = self.conv1(x, latent[:, 0], noise[0])
        skip = self.to_rgb1(x, latent[:, 1])
        i = 1
        for j, to_rgb in enumerate(self.to_rgbs):
            if max_resolution is not None and 2 ** (j + 3) > max_resolution:
                break
            x = self.convs[2 * j](x, latent[:, i], noise[2 * j + 1])
            x = self.convs[2 * j + 1](x, latent[:, i + 1], noise[2 * j + 2])
            skip = to_rgb(x, latent[:, i + 2], skip)
            i += 2
        return skip

    def _noise_map(self, noise, latent, i):
        if noise is not None:
            return noise
        res = 2 ** ((i + 5) // 2)  # randomize_noise=True: fresh N(0, 1) maps per call
        return torch.randn(latent.shape[0], 1, res, res, device=latent.device, dtype=latent.dtype)
