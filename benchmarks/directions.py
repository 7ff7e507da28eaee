"""`blendgan directions --method labels` and `--edit`: seconds per face sampled and labelled, and the cost of
an edit next to the generator.

    python benchmarks/directions.py                    # 256 px, 20 faces, fp32, one thread
    python benchmarks/directions.py --size 64 --faces 4   # a quick check that it runs

The generator is random-initialised with the real shapes (channel_multiplier 2): sampling a face (mapping +
the face path at 256 px, stored noise) does not depend on the weights' values. dlib's detector does find no
face in a random generator's pictures, so labelling is timed twice: on the sampled pictures (the detector's
cost on a miss) and on the bundled photo test_imgs/face_imgs/grace_hopper.jpg at the same size (detector +
68 landmarks + PnP + measures on a found face). The edit is `Edits(codes)` on one face's W+ codes, against
`BlendGAN.stylize` of that face at the same size. Prints one Markdown row with the CPU, its flags, the load
average and the peak RSS.
"""

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def cpu_line():
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return f"{model} ({', '.join(have) or 'no avx2'})"


def peak_rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--faces", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    from blendgan.editing.apply import Edits
    from blendgan.editing.directions_file import Direction, DirectionSet
    from blendgan.editing.labels import DlibLabeller
    from blendgan.jobs.directions import _faces_rgb, sample_codes
    from blendgan.models import Generator
    from blendgan.pipeline import BlendGAN

    load_before = os.getloadavg()
    torch.manual_seed(0)
    bg = BlendGAN.from_models(Generator(args.size), None, device="cpu", batch_size=4)
    labeller = DlibLabeller()
    centre = bg.mean_latent(1024, torch.Generator().manual_seed(0))
    indices = list(range(args.faces))
    sample_codes(bg, indices[:4], 0, 0.7, centre)  # warm-up

    start = time.perf_counter()
    w = sample_codes(bg, indices, 0, 0.7, centre)
    faces = _faces_rgb(bg, w, 256)
    sample_s = (time.perf_counter() - start) / args.faces
    start = time.perf_counter()
    labeller(faces, w.numpy())
    miss_s = (time.perf_counter() - start) / args.faces
    photo = cv2.imread(str(ROOT / "test_imgs" / "face_imgs" / "grace_hopper.jpg"))[:, :, ::-1]
    photo = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA).copy()
    found_s = median_seconds(lambda: labeller([photo]), 9)

    v = torch.nn.functional.normalize(torch.randn(512), dim=0)
    directions = DirectionSet({"a": Direction("a", v, tuple(range(6)), 1.0)}, "bench", "bench")
    edit = Edits(directions, {"a": 1.0})
    codes = w[:1].unsqueeze(1).repeat(1, bg.n_latent, 1)
    z = torch.randn(1, 512)
    edit_s = median_seconds(lambda: edit(codes), 101)
    stylize_s = median_seconds(lambda: bg.stylize(codes, z), 5)
    load_after = os.getloadavg()
    print(
        "| size | faces | sample s/face | label s/face (miss) | label s/face (found) | sampled+labelled s/face "
        "| edit ms | stylize ms | edit / stylize | threads | CPU | load avg before/after | peak RSS MB |"
    )
    print("|" + " --- |" * 13)
    print(
        f"| {args.size} | {args.faces} | {sample_s:.3f} | {miss_s:.3f} | {found_s:.3f} | {sample_s + found_s:.3f} "
        f"| {edit_s * 1e3:.3f} | {stylize_s * 1e3:.0f} | {edit_s / stylize_s:.1e} | {args.threads} | {cpu_line()} "
        f"| {load_before[0]:.2f} / {load_after[0]:.2f} | {peak_rss_mb():.0f} |"
    )


if __name__ == "__main__":
    main()
