"""Resampling, activation and modulated-convolution ops in pure PyTorch (no compiled extensions).

Each op has a plain `*_reference` version that states the math and a public entry point that uses a
faster implementation with the same semantics (`*_fast`); tests check them against each other.
"""

from .activation import fused_leaky_relu, fused_leaky_relu_reference
from .linear import linear, linear_reference
from .modulated_conv import (
    demodulation,
    modulated_conv2d,
    modulated_conv2d_fast,
    modulated_conv2d_reference,
    weight_sum_of_squares,
)
from .upfirdn2d import make_kernel, upfirdn2d, upfirdn2d_fast, upfirdn2d_reference

__all__ = [
    "fused_leaky_relu",
    "fused_leaky_relu_reference",
    "demodulation",
    "modulated_conv2d",
    "modulated_conv2d_fast",
    "modulated_conv2d_reference",
    "weight_sum_of_squares",
    "linear",
    "linear_reference",
    "make_kernel",
    "upfirdn2d",
    "upfirdn2d_fast",
    "upfirdn2d_reference",
]
