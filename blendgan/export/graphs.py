"""Export forms of the models: the same math as `blendgan.models`, written so that a graph capture
(torch.export / TorchScript tracing) yields a static graph with a free batch dimension.

What the inference code does that a graph format cannot hold, and what is done here instead:

- Modulated convolution. The reference builds one kernel per sample and runs a grouped convolution
  (per-sample weights: a kernel shape that depends on the batch); the fast path loops over samples and
  writes into preallocated outputs. Here the modulation is applied to the activations instead
  (StyleGAN2, Karras et al. 2020, section 2.2 / appendix B "fused modulation" discussion):
      conv(x, scale * w * s) * d  ==  conv(x * (scale * s), w) * d,
      d[b, o] = rsqrt(sum_i (scale * s[b, i])^2 * sum_taps w[o, i]^2 + 1e-8),
  exact up to rounding, with one shared weight. The upsampling variant is the same with the stride-2
  transposed convolution, followed by the FIR blur as a depthwise convolution.
- Noise: the generator's stored maps `noises.noise_i` become constants broadcast over the batch
  (what the pipeline uses: `randomize_noise=False`); nothing is drawn at run time.
- Encoders (pSp, style encoder) run their plain reference ops (no per-row loops), see `reference_ops`.
- add_weight_index (Weighted Blending Module override) is a graph input (int64 [1]) of the generator,
  with Python slice semantics (`a[:, :idx] = 1`, negative counts from the end, 0 = no override).
- The stylization controls (`blendgan.controls`) are inputs of `ControlledGeneratorGraph`: the per-layer
  blend weights a' [N, n_latent] and J style codes [N, J, 512] with their mix weights [N, J].

The modules below read the wrapped model's parameters; they never change the model.
"""

import contextlib
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

NEGATIVE_SLOPE = 0.2
GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8


@contextlib.contextmanager
def reference_ops(model: nn.Module) -> "Iterator[nn.Module]":
    """Run `model`'s layers with their plain reference ops inside the block, then restore the flags.

    The reference ops (F.linear, bias + leaky ReLU, pad-and-convolve FIR) capture as static graphs;
    the fast path's per-row / per-sample loops would bake the example batch size into the graph."""
    from ..models.layers import OpsSwitch

    saved = [(m, m.reference) for m in model.modules() if isinstance(m, OpsSwitch)]
    try:
        for m, _ in saved:
            m.reference = True
        yield model
    finally:
        for m, flag in saved:
            m.reference = flag


def equal_linear(layer, x):
    """EqualLinear (equalized learning rate, Karras et al. 2018): (x @ W^T) * scale + b * lr_mul, optional fused
    lrelu."""
    out = F.linear(x, layer.weight.to(x.dtype)) * layer.scale
    out = out + (layer.bias * layer.lr_mul).to(x.dtype)
    if layer.activation:
        out = F.leaky_relu(out, NEGATIVE_SLOPE) * GAIN
    return out


def mapping(net, x):
    """PixelNorm + EqualLinear stack (the generator's `style` and `embedding` networks)."""
    x = x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)
    for layer in list(net)[1:]:
        x = equal_linear(layer, x)
    return x


def blend_weights(add_weight, add_weight_index):
    """Weighted Blending Module weights [1, n_latent, 1]: clamp(add_weight, 0, 1) with the first
    `add_weight_index` entries set to 1 (Python slice semantics; `add_weight_index` is an int64 tensor
    of one element, or None for no override)."""
    a = add_weight.clamp(0, 1)
    if add_weight_index is None:
        return a
    n = add_weight.shape[1]
    idx = add_weight_index.reshape(())
    end = torch.where(idx < 0, idx + n, idx)
    layer = torch.arange(n, device=a.device).reshape(1, n, 1)
    return torch.where(layer < end, torch.ones_like(a), a)


class _FIR:
    """Depthwise FIR weights of a loaded `kernel` buffer (upfirdn2d as one convolution)."""

    @staticmethod
    def blur(x, kernel, pad, c):
        """upfirdn2d(x, kernel, up=1, pad=(p0, p1)) on c channels: pad, then correlate with the flipped
        kernel. (c is passed as a Python int: a traced x.shape[1] would give a kernel of unknown shape.)"""
        w = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape).contiguous()
        p0, p1 = pad
        if p0 == p1:
            return F.conv2d(x, w, padding=p0, groups=c)
        return F.conv2d(F.pad(x, (p0, p1, p0, p1)), w, groups=c)

    @staticmethod
    def upsample2(x, kernel, pad, c):
        """upfirdn2d(x, kernel, up=2, pad=(p0, p1)) on c channels as a depthwise stride-2 transposed
        convolution (zero insertion + pad + filter; the transposed conv scatters the kernel unflipped)."""
        kh = kernel.shape[0]
        p0, p1 = pad
        q, op = kh - 1 - p0, p1 - p0 + 1
        if q < 0 or not 0 <= op < 2:
            raise ValueError(f"unsupported upsampling pads {pad} for a {kh}-tap kernel")
        w = kernel.to(x.dtype)[None, None].expand(c, 1, *kernel.shape).contiguous()
        return F.conv_transpose2d(x, w, stride=2, padding=q, output_padding=op, groups=c)


def modulated_conv(conv, x, w):
    """ModulatedConv2d in activation-modulation form: no per-sample weights (see module docstring)."""
    s = equal_linear(conv.modulation, w) * conv.scale  # [N, in]
    weight = conv.weight[0].to(x.dtype)  # [out, in, k, k]
    x = x * s[:, :, None, None]
    if conv.upsample:
        out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        out = _FIR.blur(out, conv.blur.kernel, conv.blur.pad, conv.out_channel)
    else:
        out = F.conv2d(x, weight, padding=conv.kernel_size // 2)
    if conv.demodulate:
        w_sq = weight.square().sum([2, 3])  # [out, in]
        d = torch.rsqrt(torch.matmul(s.square(), w_sq.t()) + DEMOD_EPS)  # [N, out]
        out = out * d[:, :, None, None]
    return out


def styled_conv(layer, x, w, noise):
    """StyledConv: modulated conv + weight * noise + bias, leaky ReLU(0.2) * sqrt(2)."""
    out = modulated_conv(layer.conv, x, w)
    out = out + layer.noise.weight.to(x.dtype) * noise
    out = out + layer.activate.bias.to(x.dtype)[None, :, None, None]
    return F.leaky_relu(out, NEGATIVE_SLOPE) * GAIN


def to_rgb(layer, x, w, skip):
    """ToRGB: 1x1 modulated conv without demodulation + bias (+ FIR-upsampled skip image)."""
    out = modulated_conv(layer.conv, x, w) + layer.bias.to(x.dtype)
    if skip is not None:
        out = out + _FIR.upsample2(skip, layer.upsample.kernel, layer.upsample.pad, 3)
    return out


def synthesis(g, latent):
    """Generator.synthesis with the stored noise maps, on per-layer latents [N, n_latent, 512]."""
    noise = [n.to(latent.dtype) for n in g.noises.maps()]
    const = g.input.input.to(latent.dtype)
    x = const.expand(latent.shape[0], -1, -1, -1)
    x = styled_conv(g.conv1, x, latent[:, 0], noise[0])
    skip = to_rgb(g.to_rgb1, x, latent[:, 1], None)
    i = 1
    for j, rgb in enumerate(g.to_rgbs):
        x = styled_conv(g.convs[2 * j], x, latent[:, i], noise[2 * j + 1])
        x = styled_conv(g.convs[2 * j + 1], x, latent[:, i + 1], noise[2 * j + 2])
        skip = to_rgb(rgb, x, latent[:, i + 2], skip)
        i += 2
    return skip


class GeneratorGraph(nn.Module):
    """(face codes [N, n_latent, 512], z_embed [N, 512], add_weight_index int64 [1]) -> image [N, 3, S, S].

    Equals `Generator(([codes]), input_is_latent=True, randomize_noise=False, z_embed=z_embed,
    add_weight_index=k)` (the pipeline's `stylize`)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.g = generator

    def forward(self, codes: torch.Tensor, z_embed: torch.Tensor, add_weight_index: torch.Tensor) -> torch.Tensor:
        style_latent = mapping(self.g.embedding, z_embed).unsqueeze(1)
        a = blend_weights(self.g.add_weight, add_weight_index).to(codes.dtype)
        return synthesis(self.g, codes * a + style_latent * (1 - a))


class ControlledGeneratorGraph(nn.Module):
    """(codes [N, n_latent, 512], z_embed [N, J, 512], style_weights [N, J], blend_weights [N, n_latent]) -> image.

    Equals `Generator([codes], input_is_latent=True, randomize_noise=False, z_embed=z_embed,
    style_weights=style_weights, blend_weights=blend_weights)`: the J styles mix in W space
    (sum_j k_j * embedding(z_j)) and the blend weights replace the WBM's (see `blendgan.controls`)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.g = generator

    def forward(
        self, codes: torch.Tensor, z_embed: torch.Tensor, style_weights: torch.Tensor, blend_weights: torch.Tensor
    ) -> torch.Tensor:
        n, j = z_embed.shape[0], z_embed.shape[1]
        mapped = mapping(self.g.embedding, z_embed.reshape(n * j, 512)).reshape(n, j, 512)
        style_latent = (style_weights.unsqueeze(-1) * mapped).sum(1).unsqueeze(1)
        a = blend_weights.unsqueeze(-1).to(codes.dtype)
        return synthesis(self.g, codes * a + style_latent * (1 - a))


class FixedStyleGeneratorGraph(nn.Module):
    """One style baked in: face codes [N, n_latent, 512] -> image. The style's mapped latent and the
    blending weights (for a fixed add_weight_index) are constants of the graph."""

    def __init__(self, generator: nn.Module, z_embed: torch.Tensor, add_weight_index: int) -> None:
        super().__init__()
        self.g = generator
        with torch.no_grad():
            style_latent = mapping(generator.embedding, z_embed.reshape(1, -1).to(generator.add_weight.dtype))
            a = generator.blend_weights(add_weight_index)
        self.register_buffer("style_latent", style_latent.unsqueeze(1), persistent=False)
        self.register_buffer("a", a, persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        a = self.a.to(codes.dtype)
        return synthesis(self.g, codes * a + self.style_latent.to(codes.dtype) * (1 - a))


class EncoderGraph(nn.Module):
    """An encoder (PSPEncoder or StyleEncoder), to be captured inside `reference_ops`; image [N, 3, 256, 256] ->
    its output. The 256x256 input is what their adaptive pooling makes of any image; callers pool
    larger/smaller images the same way first (see `blendgan.onnx_run.adaptive_avg_pool`)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image)
