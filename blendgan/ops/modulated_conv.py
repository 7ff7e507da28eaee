"""Modulated (and demodulated) convolution of StyleGAN2 (Karras et al. 2020, eq. 1-3; the original
model.py's ModulatedConv2d).

`modulated_conv2d_reference` builds one kernel per sample and runs one grouped convolution, the
straightforward form of the math.
"""

from typing import Callable

import torch
import torch.nn.functional as F

from .upfirdn2d import upfirdn2d_fast, upfirdn2d_reference

DEMOD_EPS = 1e-8


def modulated_conv2d_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    scale: float,
    demodulate: bool = True,
    upsample: bool = False,
    blur_kernel: "torch.Tensor | None" = None,
    blur_pad: "tuple[int, int]" = (1, 1),
    upfirdn: "Callable[..., torch.Tensor]" = upfirdn2d_reference,
) -> torch.Tensor:
    """Per-sample modulated convolution.

    x: [N, in, H, W]; weight: [1, out, in, k, k] (raw stored weight); styles: [N, in] (modulation output);
    scale: 1/sqrt(in*k*k). With `upsample`, a stride-2 transposed convolution followed by the FIR blur
    (`blur_kernel`, pads `blur_pad`) doubles the resolution.
    """
    n, in_ch, h, w = x.shape
    _, out_ch, _, k, _ = weight.shape
    wgt = scale * weight * styles.reshape(n, 1, in_ch, 1, 1)  # [N, out, in, k, k]
    if demodulate:
        demod = torch.rsqrt(wgt.pow(2).sum([2, 3, 4]) + DEMOD_EPS)
        wgt = wgt * demod.reshape(n, out_ch, 1, 1, 1)
    if upsample:
        # conv_transpose2d wants [in, out, k, k] per group: input channel i scatters into output o.
        wgt = wgt.transpose(1, 2).reshape(n * in_ch, out_ch, k, k)
        out = F.conv_transpose2d(x.reshape(1, n * in_ch, h, w), wgt, stride=2, padding=0, groups=n)
        out = out.reshape(n, out_ch, out.shape[2], out.shape[3])
        return upfirdn(out, blur_kernel, pad=blur_pad)
    wgt = wgt.reshape(n * out_ch, in_ch, k, k)
    out = F.conv2d(x.reshape(1, n * in_ch, h, w), wgt, padding=k // 2, groups=n)
    return out.reshape(n, out_ch, h, w)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, **kwargs) -> torch.Tensor:
    """Public entry point: `modulated_conv2d_fast` (same numbers as the reference up to rounding).

    Takes the reference's keywords except `upfirdn`: the fast path has its own FIR blur."""
    return modulated_conv2d_fast(x, weight, styles, **kwargs)


# ----------------------------------------------------------------------------------------------- fast path
# The same math rearranged, exact up to rounding:
#   demod[b, o] = rsqrt(scale^2 * sum_i s[b, i]^2 * sum_{kh,kw} w[o, i]^2 + eps)   (no [N, out, in, k, k] tensor)
#   conv(x_b, scale * w * s_b * demod_b) = demod_b * conv(scale * s_b * x_b, w)   (modulate data, not weights)
# The per-sample style and demodulation factors are folded into whichever side is smaller: into a
# per-sample copy of the weight when the weight is smaller than one sample's activations (the high
# resolutions), otherwise into the activations around one convolution with the shared weight.
# The FIR blur after the transposed conv is a depthwise convolution, and bias, noise and the fused
# leaky ReLU's gain are folded into the convolution epilogue (gain * lrelu(v) = lrelu(gain * v), gain > 0).


def _compute_dtype(dtype):
    """Accumulation dtype for the small per-sample factors: float64 stays, everything else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def demodulation(
    weight: torch.Tensor, styles: torch.Tensor, scale: float, weight_sq: "torch.Tensor | None" = None
) -> torch.Tensor:
    """[N, out] demodulation factors rsqrt(sum_{i,kh,kw} (scale * w[o,i] * s[b,i])^2 + 1e-8).

    `weight_sq` ([out, in], sum over the spatial taps of w^2) may be passed precomputed."""
    acc = _compute_dtype(styles.dtype)
    if weight_sq is None:
        weight_sq = weight_sum_of_squares(weight)
    sq = styles.to(acc).square()
    wt = weight_sq.to(acc).t()
    # one row at a time: a GEMM over the whole batch would round differently for other batch sizes
    return torch.rsqrt((scale * scale) * torch.cat([sq[b : b + 1] @ wt for b in range(sq.shape[0])]) + DEMOD_EPS)


def weight_sum_of_squares(weight: torch.Tensor) -> torch.Tensor:
    """sum over the spatial taps of w^2, [out, in], in the accumulation dtype (float32 or float64)."""
    return weight[0].to(_compute_dtype(weight.dtype)).square().sum([2, 3])


def _channels_last(x):
    # oneDNN and cuDNN run these convolutions (few channels, large maps) markedly faster in NHWC;
    # every later op keeps the format, so the conversion happens once per forward (at 4x4).
    if x.device.type in ("cpu", "cuda"):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _fold_into_weight(weight, in_ch, h, w):
    """True when a per-sample weight copy is cheaper than passes over one sample's activations."""
    return weight[0].numel() <= in_ch * h * w


def _memory_format(t):
    return (
        torch.channels_last
        if t.is_contiguous(memory_format=torch.channels_last) and t.shape[1] > 1
        else torch.contiguous_format
    )


def modulated_conv2d_fast(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    scale: float,
    demodulate: bool = True,
    upsample: bool = False,
    blur_kernel: "torch.Tensor | None" = None,
    blur_pad: "tuple[int, int]" = (1, 1),
    bias: "torch.Tensor | None" = None,
    noise: "torch.Tensor | None" = None,
    gain: float = 1.0,
    negative_slope: "float | None" = None,
    residual: "torch.Tensor | None" = None,
    weight_sq: "torch.Tensor | None" = None,
    weight_t: "torch.Tensor | None" = None,
) -> torch.Tensor:
    """Modulated convolution with an optional fused epilogue; same numbers as the reference up to rounding.

    Returns `act(gain * (modconv(x) + noise) + gain * bias) + residual` where `act` is leaky ReLU with
    `negative_slope` (None: identity), `noise` broadcasts like [N or 1, 1, H, W] (already multiplied by
    its weight), `bias` is per output channel, `residual` is added last (the ToRGB skip image). With the
    defaults it is exactly the reference's `modulated_conv2d`. `gain` must be positive. `weight_sq`
    ([out, in], see `weight_sum_of_squares`) and `weight_t` (weight[0] as a contiguous [in, out, k, k],
    for upsampling) may be passed precomputed; they must match `weight`.
    """
    n, in_ch, h, w = x.shape
    out_ch, k = weight.shape[1], weight.shape[3]
    acc = _compute_dtype(x.dtype)
    x = _channels_last(x)
    in_scale = styles.to(acc) * scale  # [N, in]
    out_scale = demodulation(weight, styles, scale, weight_sq) * gain if demodulate else None  # [N, out]
    if out_scale is None and gain != 1.0:
        out_scale = torch.full((n, out_ch), float(gain), dtype=acc, device=x.device)
    if bias is not None:
        bias = (bias.reshape(-1).to(acc) * gain).to(x.dtype)
    if noise is not None:
        noise = (noise * gain).to(x.dtype)

    if _fold_into_weight(weight, in_ch, h, w):
        # per-sample weights; each sample's result goes straight into its slice of the output
        if upsample:  # per-sample weights built directly in conv_transpose2d's [in, out, k, k] layout
            base = weight[0].transpose(0, 1) if weight_t is None else weight_t
            wgt = base.to(acc)[None] * in_scale[:, :, None, None, None]
            if out_scale is not None:
                wgt = wgt * out_scale[:, None, :, None, None]
        else:
            wgt = weight[0].to(acc)[None] * in_scale[:, None, :, None, None]
            if out_scale is not None:
                wgt = wgt * out_scale[:, :, None, None, None]
        wgt = wgt.to(x.dtype, memory_format=torch.contiguous_format)
        if n == 1 or _needs_grad(x, wgt, bias, noise):
            # one sample, or autograd on (out= writes are not differentiable): plain concatenation
            parts = [_conv(x[b : b + 1], wgt[b], upsample, blur_kernel, blur_pad, k, bias) for b in range(n)]
            out = parts[0] if n == 1 else torch.cat(parts)
        else:
            out = _per_sample_into_batch(x, wgt, upsample, blur_kernel, blur_pad, k, bias, noise)
            noise = None  # already added
    else:
        # shared weight: modulate the activations, one convolution for the whole batch, demodulate after
        xs = x * in_scale.to(x.dtype)[:, :, None, None]
        shared = (weight[0].transpose(0, 1) if weight_t is None else weight_t) if upsample else weight[0]
        # per sample, so that results do not depend on the batch (oneDNN blocks small maps by batch)
        out = torch.cat([_conv(xs[b : b + 1], shared, upsample, blur_kernel, blur_pad, k, None) for b in range(n)])
        if out_scale is not None:
            scale_o = out_scale.to(x.dtype)[:, :, None, None]
            out = torch.addcmul(bias[None, :, None, None], out, scale_o) if bias is not None else out * scale_o
        elif bias is not None:
            out = out + bias[None, :, None, None]
    if noise is not None:
        out.add_(noise)
    if negative_slope is not None:
        F.leaky_relu_(out, negative_slope)
    if residual is not None:
        # the ToRGB image leaves the layer in the standard NCHW layout
        if _needs_grad(out, residual):
            return (out + residual).contiguous()
        out = torch.add(out, residual, out=torch.empty(out.shape, dtype=out.dtype, device=out.device))
    return out


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _per_sample_into_batch(x, wgt, upsample, blur_kernel, blur_pad, k, bias, noise):
    """Sample b convolved with wgt[b], written straight into its slice of one batch output; the noise
    add (if any) doubles as that copy."""
    out = None
    for b in range(x.shape[0]):
        part = _conv(x[b : b + 1], wgt[b], upsample, blur_kernel, blur_pad, k, bias)
        if out is None:
            out = torch.empty(
                (x.shape[0], *part.shape[1:]), dtype=part.dtype, device=part.device, memory_format=_memory_format(part)
            )
        if noise is None:
            out[b : b + 1].copy_(part)
        else:
            torch.add(part, noise[b : b + 1] if noise.shape[0] > 1 else noise, out=out[b : b + 1])
    return out


def _conv(x, wgt, upsample, blur_kernel, blur_pad, k, bias):
    """One weight on x: [out, in, k, k] for a plain conv; [in, out, k, k] for upsampling, which is a
    stride-2 transposed conv followed by the depthwise FIR blur."""
    if not upsample:
        if k == 1:
            return _pointwise(x, wgt, bias)
        return F.conv2d(x, wgt, bias, padding=k // 2)
    t = F.conv_transpose2d(x, wgt, stride=2)
    # the bias goes after the blur: near the borders blurring a constant does not give that constant
    return upfirdn2d_fast(t, blur_kernel, pad=blur_pad, bias=bias)


def _pointwise(x, wgt, bias):
    """1x1 convolution as one matrix product over the pixels (channels-last view of x).

    oneDNN splits the channel sum of a 1x1 conv with few outputs (ToRGB: 3) across threads, so its
    rounding depends on the thread count; the matrix product does not, which keeps images identical
    whatever the number of threads (e.g. one process with 2 threads vs 2 processes with 1)."""
    n, c, h, w = x.shape
    out_ch = wgt.shape[0]
    pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    weight = wgt.reshape(out_ch, c).t()
    out = torch.matmul(pixels, weight) if bias is None else torch.addmm(bias.to(x.dtype), pixels, weight)
    return out.reshape(n, h, w, out_ch).permute(0, 3, 1, 2)  # NCHW shape, channels-last memory
