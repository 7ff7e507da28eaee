"""Fused leaky ReLU: bias, leaky ReLU with slope 0.2, then gain sqrt(2) (spec section 1.3)."""
import math

import torch.nn.functional as F

NEGATIVE_SLOPE = 0.2
GAIN = math.sqrt(2.0)


def _broadcast_bias(x, bias):
    # per-channel bias along dim 1 for any rank >= 2
    return bias.reshape(1, -1, *([1] * (x.ndim - 2)))


def fused_leaky_relu_reference(x, bias, negative_slope=NEGATIVE_SLOPE, scale=GAIN):
    """`scale * leaky_relu(x + bias)`, the plain definition."""
    return F.leaky_relu(x + _broadcast_bias(x, bias), negative_slope=negative_slope) * scale


def fused_leaky_relu(x, bias, negative_slope=NEGATIVE_SLOPE, scale=GAIN):
    """Public entry point; same numbers as the reference."""
    return fused_leaky_relu_reference(x, bias, negative_slope, scale)
