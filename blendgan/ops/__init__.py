"""Resampling and activation ops in pure PyTorch (no compiled extensions).

Each op has a plain `*_reference` version that states the math and a public entry point that may use
a faster implementation with the same semantics; tests check them against each other.
"""
from .activation import fused_leaky_relu, fused_leaky_relu_reference
from .modulated_conv import modulated_conv2d, modulated_conv2d_reference
from .upfirdn2d import make_kernel, upfirdn2d, upfirdn2d_reference

__all__ = [
    "fused_leaky_relu", "fused_leaky_relu_reference",
    "modulated_conv2d", "modulated_conv2d_reference",
    "make_kernel", "upfirdn2d", "upfirdn2d_reference",
]
