"""Timings on a lent GPU machine at 1024 px: every model per precision (fp32, bf16, fp16) and a training step.

    python benchmarks/gpu_timings.py                               # cuda, 1024 px (not yet run on a GPU)
    python benchmarks/gpu_timings.py --device cpu --size 64 --quick  # a dry run of the script on the CPU

Its parity half is tests/test_cuda.py (`pytest -m cuda tests/test_cuda.py`); docs/development.md gives the one
command for a GPU machine. Random weights of the real shapes (timing does not depend on the values). Seconds per
call, median of --runs after a warm-up, with the device synchronised around each call: the pipeline's stylize
(generator with a style), pSp encoding of a face (cache cleared each call), the style encoder, both
discriminators, and one generator training step (generator forward, projection discriminator, backward through
both, batch 2) with the trainer's autocast. Peak GPU memory per precision. Prints Markdown.
"""

import argparse
import os
import sys
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]


def model_rows(device, size, precision, runs):
    """[(what, seconds)] for one precision, and the peak GPU memory (GiB; nan on the CPU)."""
    import torch

    from blendgan.models import Generator, PSPEncoder, n_latent_for_size
    from blendgan.models.discriminator import Discriminator, ProjectionDiscriminator
    from blendgan.pipeline import BlendGAN

    dev = torch.device(device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(fn):
        def call():
            fn()
            sync()

        return harness.timed(call, warmup=1, repeats=runs)[0]

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(0)
    bg = BlendGAN(Generator(size), PSPEncoder(n_latent_for_size(size)), device=device, precision=precision)
    codes, z = torch.randn(1, bg.n_latent, 512), torch.randn(1, 512)
    face = (torch.rand(size, size, 3) * 255).byte().numpy()
    style = torch.rand(1, 3, 256, 256, device=dev, dtype=bg.dtype) * 2 - 1
    rows = [
        ("stylize (generator with a style), batch 1", timed(lambda: bg.stylize(codes, z))),
        ("pSp encode a face, batch 1", timed(lambda: (bg.clear_caches(), bg.encode_face_bgr(face)))),
    ]
    with torch.no_grad():
        rows.append(("style encoder, batch 1", timed(lambda: bg.style_encoder(style))))
    del bg
    autocast = torch.autocast(device_type=dev.type, dtype=dtype, enabled=precision != "fp32")
    image = torch.rand(2, 3, size, size, device=dev) * 2 - 1
    z_s = torch.randn(2, 512, device=dev)
    d = Discriminator(size).to(dev)
    pd = ProjectionDiscriminator(size).to(dev)
    with torch.no_grad(), autocast:
        rows.append(("discriminator, batch 2", timed(lambda: d(image))))
        rows.append(("projection discriminator, batch 2", timed(lambda: pd(image, z_s))))
    del d
    torch.manual_seed(1)
    g = Generator(size).to(dev).train()  # a fresh one: the pipeline's is prepared for inference only
    codes2 = torch.randn(2, n_latent_for_size(size), 512, device=dev)

    def train_step():
        with autocast:
            fake = g([codes2], input_is_latent=True, z_embed=z_s)[0]
            loss = torch.nn.functional.softplus(-pd(fake, z_s)).mean()
        loss.backward()
        g.zero_grad(set_to_none=True)
        pd.zero_grad(set_to_none=True)

    rows.append(("generator training step (G + D forward and backward), batch 2", timed(train_step)))
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    return rows, peak


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--runs", type=int, default=5, help="timed calls per figure after one warm-up (default 5)")
    p.add_argument("--quick", action="store_true", help="fp32 only, 1 run (a dry run of the script)")
    args = p.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device is visible to PyTorch: nothing to time (run this on a GPU machine)")
        return 0
    if args.quick:
        precisions, args.runs = ["fp32"], 1
    else:
        precisions = ["fp32", "bf16"] + (["fp16"] if args.device.startswith("cuda") else [])
    print(harness.machine_line())
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none"
    print(f"\nDevice {args.device} ({gpu}), torch {torch.__version__}, {args.size} px, median of {args.runs}\n")
    table, peaks = {}, {}
    for precision in precisions:
        rows, peaks[precision] = model_rows(args.device, args.size, precision, args.runs)
        for what, seconds in rows:
            table.setdefault(what, {})[precision] = seconds
    print(harness.markdown_row(["seconds per call", *precisions]))
    print(harness.markdown_row(["---"] * (len(precisions) + 1)))
    for what, by in table.items():
        print(harness.markdown_row([what, *(f"{by[p]:.4f}" for p in precisions)]))
    print(harness.markdown_row(["peak GPU memory (GiB)", *(f"{peaks[p]:.1f}" for p in precisions)]))
    print()
    print(harness.finish_line())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("BLENDGAN_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
