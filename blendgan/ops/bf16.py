"""Whether this machine has real bfloat16 convolution kernels."""

from functools import cache

import torch


@cache
def _cpu_bf16_is_emulated() -> bool:
    try:
        return not torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        return False


def bf16_is_emulated(device: torch.device) -> bool:
    """True on a CPU whose oneDNN has no bf16 kernels (no AVX512-BF16 / AMX): PyTorch then runs bf16
    convolutions on its slow reference kernels (docs/speed.md, "bf16 on a CPU without bf16 kernels")."""
    return device.type == "cpu" and _cpu_bf16_is_emulated()
