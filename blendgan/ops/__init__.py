"""Resampling, activation and modulated-convolution ops in pure PyTorch (no compiled extensions).

Each op has a plain `*_reference` version that states the math and a public entry point that uses a
faster implementation with the same semantics (`*_fast`); tests check them against each other.
"""
from .allocator import release_freed_memory, reuse_freed_memory
from .activation import fused_leaky_relu, fused_leaky_relu_reference
from .linear import linear, linear_reference
from .modulated_conv import (demodulation, modulated_conv2d, modulated_conv2d_fast, modulated_conv2d_reference,
                             weight_sum_of_squares)
from .upfirdn2d import make_kernel, upfirdn2d, upfirdn2d_fast, upfirdn2d_reference



def prepare_for_inference(model, style_matrix_dtype=None):
    """One-time, optional: precompute weight-derived tensors for the fast path (and optionally store the
    style matrix in float16/bfloat16). See `blendgan.models.layers.prepare_for_inference`."""
    from ..models.layers import prepare_for_inference as prepare

    return prepare(model, style_matrix_dtype=style_matrix_dtype)


__all__ = [
    "prepare_for_inference", "release_freed_memory", "reuse_freed_memory",
    "fused_leaky_relu", "fused_leaky_relu_reference",
    "demodulation", "modulated_conv2d", "modulated_conv2d_fast", "modulated_conv2d_reference",
    "weight_sum_of_squares",
    "linear", "linear_reference",
    "make_kernel", "upfirdn2d", "upfirdn2d_fast", "upfirdn2d_reference",
]
