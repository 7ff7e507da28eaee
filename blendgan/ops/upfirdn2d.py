"""FIR upsample -> pad -> filter -> downsample (StyleGAN2's upfirdn2d, the original op/upfirdn2d.py).

`upfirdn2d_reference` is the plain definition (zero insertion, zero padding, a true 2-D convolution,
subsampling) and is what every faster variant is tested against.
"""

from typing import Sequence

import torch
import torch.nn.functional as F

from .bf16 import bf16_is_emulated


def make_kernel(taps: "Sequence[float]", scale: float = 1.0) -> torch.Tensor:
    """Normalized 2-D FIR kernel: outer product of the 1-D taps divided by its sum, times `scale`.

    The arithmetic runs on the CPU and only the result moves to the default device: under
    `torch.device("meta")` (how checkpoints are loaded) meta-tensor math would import torch._dynamo
    (time and memory per process: docs/speed.md, "Figures behind code comments").
    """
    k = torch.as_tensor(taps, dtype=torch.float32, device="cpu")
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return (k / k.sum() * scale).to(torch.get_default_device())


def _check_args(x, kernel, up, down, pad):
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NCHW input, got shape {tuple(x.shape)}")
    if kernel.ndim != 2:
        raise ValueError(f"upfirdn2d expects a 2-D kernel, got shape {tuple(kernel.shape)}")
    if up < 1 or down < 1:
        raise ValueError("up and down must be >= 1")
    p0, p1 = pad
    if p0 < 0 or p1 < 0:
        raise ValueError("negative padding is not supported")
    return int(p0), int(p1)


def upfirdn2d_reference(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: "tuple[int, int]" = (0, 0)
) -> torch.Tensor:
    """Reference upfirdn2d: every (sample, channel) plane independently, same parameters on both axes."""
    p0, p1 = _check_args(x, kernel, up, down, pad)
    n, c, h, w = x.shape
    planes = x.reshape(n * c, 1, h, w)
    if up > 1:
        # Zeros follow each sample: originals land on indices 0, up, 2*up, ...
        zeros = planes.new_zeros(n * c, 1, h * up, w * up)
        zeros[:, :, ::up, ::up] = planes
        planes = zeros
    planes = F.pad(planes, (p0, p1, p0, p1))
    # conv2d is a cross-correlation; flipping the kernel makes it a true convolution.
    weight = torch.flip(kernel, [0, 1]).to(planes)[None, None]
    planes = F.conv2d(planes, weight)
    planes = planes[:, :, ::down, ::down]
    return planes.reshape(n, c, planes.shape[2], planes.shape[3])


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: "tuple[int, int]" = (0, 0)
) -> torch.Tensor:
    """Public entry point: same semantics as `upfirdn2d_reference`, computed as one depthwise
    (transposed) convolution over all channels at once (see `upfirdn2d_fast`)."""
    return upfirdn2d_fast(x, kernel, up=up, down=down, pad=pad)


def _fir_weight(kernel, like, flip=True):
    """[1, 1, kh, kw] FIR weight in x's dtype/device.

    `flip=True` turns F.conv2d's cross-correlation into the true convolution of the definition;
    conv_transpose2d scatters without flipping, so it takes the kernel as is (`flip=False`)."""
    k = torch.flip(kernel, [0, 1]) if flip else kernel
    return k.to(device=like.device, dtype=like.dtype)[None, None]


def _grouped_is_fast(x):
    # oneDNN (float32, and bfloat16 where the CPU has bf16 kernels) and cuDNN have real depthwise kernels;
    # elsewhere (float64 on CPU, bf16 on an AVX2-only CPU) PyTorch loops over the channels one group at a
    # time, so one plane-batch conv is better (docs/speed.md, "bf16 on a CPU without bf16 kernels").
    if x.device.type != "cpu":
        return True
    return x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and not bf16_is_emulated(x.device))


def _depthwise(x, kernel, transposed, bias, **conv_args):
    """Apply the same 2-D FIR to every (sample, channel) plane of x with one convolution call."""
    n, c, h, w = x.shape
    fn = F.conv_transpose2d if transposed else F.conv2d
    weight = _fir_weight(kernel, x, flip=not transposed)
    if _grouped_is_fast(x):
        if x.device.type == "cpu" and c > 1:
            # oneDNN's depthwise kernels are faster in NHWC than in NCHW (docs/speed.md, "Figures behind code comments")
            x = x.contiguous(memory_format=torch.channels_last)
        return fn(x, weight.expand(c, 1, *weight.shape[2:]), bias, groups=c, **conv_args)
    out = fn(x.reshape(n * c, 1, h, w), weight, **conv_args)
    out = out.reshape(n, c, *out.shape[2:])
    return out if bias is None else out + bias.reshape(1, c, 1, 1)


def upfirdn2d_fast(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: "tuple[int, int]" = (0, 0),
    bias: "torch.Tensor | None" = None,
) -> torch.Tensor:
    """upfirdn2d as one depthwise convolution over all planes.

    - up == 1: pad, then a strided conv with the flipped kernel (stride = down keeps every down-th
      sample starting at 0, as the definition's subsampling does); symmetric pads go into the conv itself.
    - up > 1: zero insertion + pad + filter is a transposed conv with stride `up`, padding kh-1-p0 and
      output_padding p1-p0+up-1, whenever those are valid; otherwise zeros are inserted explicitly and
      the up == 1 path runs.
    The loaded kernel is used as is (any values, not only [1,3,3,1]). `bias` (per channel, optional)
    is added in the convolution's epilogue. Any memory format is accepted.
    """
    p0, p1 = _check_args(x, kernel, up, down, pad)
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    if bias is not None:
        bias = bias.to(x.dtype)
    if up > 1:
        q_h, q_w = kh - 1 - p0, kw - 1 - p0
        op = p1 - p0 + up - 1
        if down == 1 and q_h >= 0 and q_w >= 0 and 0 <= op < up:
            return _depthwise(x, kernel, True, bias, stride=up, padding=(q_h, q_w), output_padding=op)
        zeros = x.new_zeros(n, c, h * up, w * up)
        zeros[:, :, ::up, ::up] = x
        x = zeros
    if p0 == p1:
        return _depthwise(x, kernel, False, bias, stride=down, padding=p0)
    return _depthwise(F.pad(x, (p0, p1, p0, p1)), kernel, False, bias, stride=down)
