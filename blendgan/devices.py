"""Devices and number formats: which device a name means, which dtype a precision flag means, and placing a
model there for inference. The pipeline, the web app, the trainers and torchrun's helpers share these."""

import shutil
import sys

import torch

from .errors import UsageError
from .models import prepare_for_inference
from .ops.bf16 import bf16_is_emulated

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: "str | torch.device | None" = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; anything else must be available."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: Apple MPS is not available here; use --device auto or cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {device!r} is not a device name (auto, cpu, cuda, cuda:N, mps)") from err


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp32 everywhere; bf16 on CPU/CUDA; fp16 on GPUs only (it is ~100x slower than fp32 on CPU)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("--precision fp16 is extremely slow on CPU; use --precision bf16 (or fp32)")
    return PRECISIONS[precision]


def fastest_precision(device: torch.device) -> str:
    """bf16 where the device has bf16 kernels for the convolutions (a CPU with AVX512-BF16 or AMX, a CUDA GPU that
    supports bf16), else fp32: bf16 elsewhere runs on slow reference code (docs/speed.md)."""
    if device.type == "cpu":
        return "fp32" if bf16_is_emulated(device) else "bf16"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def warn_if_bf16_is_emulated(precision: str, device: torch.device) -> None:
    """One line on stderr when bf16 was asked for on a CPU without bf16 kernels (it works, but slowly)."""
    if precision == "bf16" and bf16_is_emulated(device):
        print(
            "warning: --precision bf16: this CPU has no bf16 kernels for PyTorch's convolutions (no AVX512-BF16 "
            "or AMX), so they run on slow reference code; use fp32 here (docs/speed.md)",
            file=sys.stderr,
        )


def place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move a model to the device/dtype in place, freeze it and derive the fast path's buffers."""
    model = model.to(device=device, dtype=dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return prepare_for_inference(model)


def compile_generator(generator: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """torch.compile (inductor) of a prepared generator; on CPU inductor builds C++ kernels, so a missing
    compiler is a UsageError now rather than a traceback at the first image."""
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise UsageError(
            "--compile: torch.compile needs a C++ compiler on CPU and none was found (g++, c++, "
            "clang++); install one (e.g. apt install g++) or leave out --compile"
        )
    return torch.compile(generator)
