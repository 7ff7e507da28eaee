"""Batching across frames in the video job: seconds per face of the pSp encoder and of the generator at batch
1, 2, 4 and 8, at the tests' narrow width and at the published width, 256 px generator.

    python benchmarks/video_batch.py                 # both widths, batches 1 2 4 8
    python benchmarks/video_batch.py --quick         # narrow width, batches 1 2, nothing written: that it runs

The encoder gets a batch of aligned 256 px crops (as the video job's pass 2a would give it the faces of
consecutive frames), the generator a batch of codes with one style code (pass 2b), through the pipeline
(`BlendGAN.stylize`, chunked by its `batch_size`). The batches alternate in one run (`harness.alternate`), so
a change of load hits them alike. Random weights of the real shapes: timing does not depend on their values.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--widths", nargs="+", default=["narrow", "published"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video_batch_cpu.md"))
    parser.add_argument("--quick", action="store_true", help="narrow width, batches 1 2, one run, nothing written")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.widths, args.runs, args.out = [1, 2], ["narrow"], 1, None

    import numpy as np
    import torch

    from blendgan.io import images
    from blendgan.pipeline import BlendGAN

    import harness
    from helpers import model_factory

    if args.threads:
        torch.set_num_threads(args.threads)
    rep = harness.Report()
    rep.add("## Batching across frames: seconds per face, 256 px generator (`blendgan stylize VIDEO`, pass 2)")
    rep.add()
    rep.add(
        f"Command: `python benchmarks/video_batch.py {' '.join(sys.argv[1:])}`; torch threads {torch.get_num_threads()}"
    )
    rep.add()
    rep.add(harness.machine_line())
    rep.add()
    rows = []
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(max(args.batches))]
    for width in args.widths:
        torch.manual_seed(0)
        tiny = width == "narrow"
        g, psp = model_factory("generator", 256, tiny)(), model_factory("psp_encoder", 256, tiny)()
        bg = BlendGAN(g, psp, device="cpu", batch_size=max(args.batches))
        z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
        codes = torch.randn(max(args.batches), bg.n_latent, 512, generator=torch.Generator().manual_seed(1))

        def encode(n):
            x = torch.cat([images.bgr_to_tensor(c) for c in crops[:n]]).to(bg.device, bg.dtype)
            return bg.psp_encoder(x)

        def generate(n):
            bg.batch_size = n
            return bg.stylize(codes[:n], z)

        for name, fn in (("pSp encoder", encode), ("generator", generate)):
            res = harness.alternate(
                {n: (lambda n=n: fn(n)) for n in args.batches}, torch.device("cpu"), runs=args.runs, memory=False
            )
            base = res[args.batches[0]][0] / args.batches[0]
            for n in args.batches:
                per_face = res[n][0] / n
                rows.append([width, name, n, f"{per_face:.3f}", f"{base / per_face:.2f}x"])
            print(rows[-len(args.batches) :], file=sys.stderr, flush=True)
    rep.table(["width", "network", "batch", "s per face (median)", "faces/s vs batch 1"], rows)
    rep.add(harness.finish_line())
    if args.out:
        rep.write(args.out)


if __name__ == "__main__":
    main()
