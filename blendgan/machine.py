"""What this machine is, read without importing torch: the CPU's model, the vector flags that decide which
kernels PyTorch and oneDNN can use, and whether oneDNN was capped below them. Every speed figure carries these
(`blendgan bench`, the benchmarks' machine line), and the bf16 check reads the cap."""

import os
import platform
from pathlib import Path

SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "asimd", "sve")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; elsewhere what the platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector-instruction flags that matter for PyTorch's kernels, of those the CPU reports."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    words = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            words.update(line.split(":", 1)[1].split())
            break
    return [f for f in SIMD_FLAGS if f in words]


def onednn_isa_cap() -> str:
    """The ISA oneDNN is capped at (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA, e.g. 'AVX2'), '' when it is not."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip()
    return "" if cap.upper() in ("", "ALL", "DEFAULT") else cap


def isa_cap_note() -> str:
    """'; oneDNN capped at ISA' when oneDNN's kernels are limited below the CPU's flags (a figure measured so is
    the capped ISA's, not the CPU's), else ''."""
    cap = onednn_isa_cap()
    return f"; oneDNN capped at {cap}" if cap else ""
