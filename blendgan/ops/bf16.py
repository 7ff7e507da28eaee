"""Whether this machine has real bfloat16 convolution kernels."""

import os
from functools import cache

import torch


def _isa_cap_allows_bf16() -> bool:
    """False when oneDNN was capped below the ISAs with bf16 instructions: PyTorch's own check reads the CPU's
    flags, not the cap, so a capped run would think bf16 is fast."""
    # the same reading as blendgan.machine.onednn_isa_cap: ops import only ops (tests/test_imports.py)
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return cap in ("", "ALL", "DEFAULT") or any(isa in cap for isa in ("BF16", "AMX", "AVX512_CORE_FP16"))


@cache
def _cpu_bf16_is_emulated() -> bool:
    if not _isa_cap_allows_bf16():
        return True
    try:
        return not torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        return False


def bf16_is_emulated(device: torch.device) -> bool:
    """True on a CPU whose oneDNN has no bf16 kernels (no AVX512-BF16 / AMX, or oneDNN capped below them): PyTorch
    then runs bf16 convolutions on its slow reference kernels (docs/speed.md, "bf16 on a CPU without bf16
    kernels")."""
    return device.type == "cpu" and _cpu_bf16_is_emulated()
