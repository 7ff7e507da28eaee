"""How fast this machine can run the generator, and how close the fast path gets (`blendgan bench`).

A speed figure alone says little across CPUs: a 3x3 512-channel convolution runs at 86 GFLOP/s on one 2-core
AVX2 machine and at 220 on another. So next to the generator's time this measures, in the same run, the
machine's direct-convolution ceiling (the GFLOP/s of that convolution, median of several runs) and counts the
generator's floating-point operations (`torch.utils.flop_counter`): FLOPs / ceiling is the time the generator
would take if every operation ran as fast as the best convolution, its bound. The share of the bound reached
(bound / time) is comparable between machines; 1 means the generator runs at the convolution ceiling.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

import torch

from .machine import cpu_flags, cpu_model, isa_cap_note


def _median_seconds(fn, runs: int, device: torch.device) -> float:
    """Median wall time of `runs` calls after one warm-up call."""
    times = []
    with torch.inference_mode():
        for i in range(runs + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def conv_ceiling(device: torch.device, dtype: torch.dtype = torch.float32, runs: int = 5) -> float:
    """GFLOP/s of a 512 -> 512 3x3 convolution on a 64 x 64 map (batch 1), the generator's dominant operation, in
    the faster of the two memory layouts (the fast path runs channels-last, where oneDNN needs no reorder of the
    activations): the best the machine does, so that a share of the bound is not flattered by a slow layout."""
    w = torch.randn(512, 512, 3, 3, device=device, dtype=dtype)
    best = float("inf")
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(1, 512, 64, 64, device=device, dtype=dtype).contiguous(memory_format=layout)
        best = min(best, _median_seconds(lambda x=x: torch.nn.functional.conv2d(x, w, padding=1), runs, device))
    return 2 * 9 * 512 * 512 * 64 * 64 / best / 1e9


@dataclass
class GeneratorSpeed:
    size: int
    flops: float  # per image, one forward from W+ codes with a style code
    seconds: float  # per image, median
    ceiling_gflops: float

    @property
    def bound_seconds(self) -> float:
        """The time at the convolution ceiling."""
        return self.flops / (self.ceiling_gflops * 1e9)

    @property
    def share_of_bound(self) -> float:
        return self.bound_seconds / self.seconds


def generator_speed(
    size: int, device: torch.device, dtype: torch.dtype, ceiling_gflops: float, runs: int = 3
) -> GeneratorSpeed:
    """Time and FLOPs of the `size` px generator (published widths, random weights: the time does not depend on
    their values) on the fast path, from W+ codes and a style code, batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    from .devices import place
    from .models import Generator

    torch.manual_seed(0)
    generator = place(Generator(size, with_style_encoder=False), device, dtype)
    codes = torch.randn(1, generator.n_latent, 512, device=device, dtype=dtype)
    z = torch.randn(1, 512, device=device, dtype=dtype)

    def forward():
        return generator([codes], input_is_latent=True, z_embed=z, add_weight_index=6, randomize_noise=False)

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        forward()
    seconds = _median_seconds(forward, runs, device)
    return GeneratorSpeed(size, float(counter.get_total_flops()), seconds, ceiling_gflops)


def machine_line() -> str:
    """CPU model and flags, cores, torch threads and the load average: the line every speed figure needs."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"CPU: {cpu_model()} ({', '.join(cpu_flags()) or 'no flags read'}{isa_cap_note()}), {os.cpu_count()} "
        f"logical cores, {torch.get_num_threads()} torch threads; load average {load:.2f}; torch {torch.__version__}"
    )
