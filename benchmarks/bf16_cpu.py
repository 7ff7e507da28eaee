"""Why bf16 is slow on some CPUs: the 256 px generator (the pipeline's real path) and one 3x3 convolution in fp32
and in bf16, in one run.

    python benchmarks/bf16_cpu.py          # writes results/bf16_cpu.md

On a CPU without AVX512-BF16 / AMX, oneDNN has no bf16 convolution, and PyTorch runs bf16 `conv2d` and
`conv_transpose2d` on its reference kernels (`aten::_slow_conv2d_forward`, `aten::slow_conv_transpose2d` in the
profiler), which is what makes every bf16 path (generator, pSp encoder, style encoder, refine, fit-style) slow
there. `blendgan` prints a one-line warning when bf16 is asked for on such a CPU.
"""

import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, runs=3):
    fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(out=ROOT / "benchmarks" / "results" / "bf16_cpu.md"):
    from blendgan.models import Generator
    from blendgan.pipeline import BlendGAN, bf16_is_emulated

    load = os.getloadavg()[0]
    rows = []
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).eval()
    x = torch.randn(1, 256, 64, 64)
    with torch.no_grad():
        c32 = timed(lambda: conv(x))
        conv16, x16 = conv.to(torch.bfloat16), x.to(torch.bfloat16)
        c16 = timed(lambda: conv16(x16))
    rows.append(("Conv2d 256 -> 256, 3x3, 64 x 64", c32, c16))
    import copy
    import importlib

    fir = importlib.import_module("blendgan.ops.upfirdn2d")  # the module (blendgan.ops.upfirdn2d is also the op)
    for size in (16, 256):
        torch.manual_seed(0)
        g = Generator(size)
        codes, z = torch.randn(1, g.n_latent, 512), torch.randn(1, 512)
        times = {}
        for precision in ("fp32", "bf16", "bf16 grouped FIR"):
            # "bf16 grouped FIR": the FIR blur as one grouped conv in bf16, as before the FIR learnt that an
            # emulated bf16 CPU loops over the groups (the per-plane conv it uses now is the "bf16" row)
            grouped = fir._grouped_is_fast
            if precision == "bf16 grouped FIR":
                fir._grouped_is_fast = lambda x: x.device.type != "cpu" or x.dtype in (torch.float32, torch.bfloat16)
            try:
                bg = BlendGAN(copy.deepcopy(g), device="cpu", precision=precision.split()[0])
                times[precision] = timed(lambda: bg.stylize(codes, z), runs=3 if precision == "fp32" else 1)
            finally:
                fir._grouped_is_fast = grouped
            del bg
        rows.append((f"pipeline stylize, {size} px generator", times["fp32"], times["bf16"]))
        rows.append(
            ("the same, FIR blur as a grouped conv (before 2026-12-06)", times["fp32"], times["bf16 grouped FIR"])
        )
    lines = [
        f"# bf16 on this CPU ({torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, oneDNN bf16: "
        f"{'no' if bf16_is_emulated(torch.device('cpu')) else 'yes'})",
        "",
        f"Load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; median seconds.",
        "",
        "| what | fp32 s | bf16 s | bf16 / fp32 |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {name} | {a:.3f} | {b:.3f} | {b / a:.1f}x |" for name, a, b in rows]
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
