"""Fused leaky ReLU: bias, leaky ReLU with slope 0.2, then gain sqrt(2)."""

import math

import torch
import torch.nn.functional as F

NEGATIVE_SLOPE = 0.2
GAIN = math.sqrt(2.0)


def _broadcast_bias(x, bias):
    # per-channel bias along dim 1 for any rank >= 2
    return bias.reshape(1, -1, *([1] * (x.ndim - 2)))


def fused_leaky_relu_reference(
    x: torch.Tensor, bias: "torch.Tensor | None", negative_slope: float = NEGATIVE_SLOPE, scale: float = GAIN
) -> torch.Tensor:
    """`scale * leaky_relu(x + bias)`, the plain definition."""
    return F.leaky_relu(x + _broadcast_bias(x, bias), negative_slope=negative_slope) * scale


def fused_leaky_relu(
    x: torch.Tensor, bias: "torch.Tensor | None", negative_slope: float = NEGATIVE_SLOPE, scale: float = GAIN
) -> torch.Tensor:
    """Public entry point: the reference's value in two passes instead of three.

    A positive gain commutes with leaky ReLU, so `scale * lrelu(x + b) = lrelu(scale*x + scale*b)`:
    one fused multiply-add producing a fresh tensor, then the activation in place on it."""
    if scale <= 0:
        return fused_leaky_relu_reference(x, bias, negative_slope, scale)
    out = torch.add(_broadcast_bias(x, bias).to(x.dtype) * scale, x, alpha=scale)
    return F.leaky_relu_(out, negative_slope)
