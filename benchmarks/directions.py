"""`blendgan directions --method labels` and `--edit`: seconds per face sampled and labelled, and the cost of
an edit next to the generator.

    python benchmarks/directions.py              # 256 px, 20 faces, fp32, one thread
    python benchmarks/directions.py --quick      # 64 px, 4 faces: a check that it runs

The generator is random-initialised with the real shapes (channel_multiplier 2): sampling a face (mapping +
the face path at 256 px, stored noise) does not depend on the weights' values. dlib's detector does find no
face in a random generator's pictures, so labelling is timed twice: on the sampled pictures (the detector's
cost on a miss) and on the bundled photo test_imgs/face_imgs/grace_hopper.jpg at the same size (detector +
68 landmarks + PnP + measures on a found face). The edit is `Edits(codes)` on one face's W+ codes, against
`BlendGAN.stylize` of that face at the same size. Prints the harness's machine line, one Markdown row and its
closing line (load, peak RSS).
"""

import argparse
import sys
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--faces", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="64 px, 4 faces: a check that it runs")
    args = parser.parse_args()
    if args.quick:
        args.size, args.faces = 64, 4
    print(harness.machine_line(), flush=True)

    import cv2
    import torch

    sys.path.insert(0, str(ROOT))

    torch.set_num_threads(args.threads)
    from blendgan.editing.apply import Edits
    from blendgan.editing.directions_file import Direction, DirectionSet
    from blendgan.editing.labels import DlibLabeller
    from blendgan.jobs.directions import _faces_rgb, sample_codes
    from blendgan.models import Generator
    from blendgan.pipeline import BlendGAN

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
    found_s = harness.timed(lambda: labeller([photo]), 1, 9)[0]

    v = torch.nn.functional.normalize(torch.randn(512), dim=0)
    directions = DirectionSet({"a": Direction("a", v, tuple(range(6)), 1.0)}, "bench", "bench")
    edit = Edits(directions, {"a": 1.0})
    codes = w[:1].unsqueeze(1).repeat(1, bg.n_latent, 1)
    z = torch.randn(1, 512)
    edit_s = harness.timed(lambda: edit(codes), 1, 101)[0]
    stylize_s = harness.timed(lambda: bg.stylize(codes, z), 1, 5)[0]
    header = ["size", "faces", "sample s/face", "label s/face (miss)", "label s/face (found)"]
    header += ["sampled+labelled s/face", "edit ms", "stylize ms", "edit / stylize", "threads"]
    row = [args.size, args.faces, f"{sample_s:.3f}", f"{miss_s:.3f}", f"{found_s:.3f}", f"{sample_s + found_s:.3f}"]
    row += [f"{edit_s * 1e3:.3f}", f"{stylize_s * 1e3:.0f}", f"{edit_s / stylize_s:.1e}", args.threads]
    print("\n".join(harness.markdown_table(header, [row])))
    print(harness.finish_line())


if __name__ == "__main__":
    main()
