"""`blendgan pairs --edit`: seconds per pair with an edit (mapping, truncation, move, then the face and the
stylized face from the W+ codes) against the unedited pairs (`BlendGAN.sample_pair` from z).

    python benchmarks/pairs_edit.py              # 256 px, 8 pairs a batch of 4, fp32, one thread
    python benchmarks/pairs_edit.py --quick      # 64 px: a check that it runs

The generator is random-initialised with the real shapes (channel_multiplier 2); the pixels do not matter for
the timing. The pairs are latent-guided with one style code, add_weight_index 6, truncation 0.7, the stored
noise (the settings an edit allows). Prints the harness's machine line, one Markdown row and its closing line
(load, peak RSS). The two are timed alternately, the median of each is shown.
"""

import argparse
import statistics
import sys
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="64 px: a check that it runs")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeats = 64, 1
    print(harness.machine_line(), flush=True)

    import torch

    sys.path.insert(0, str(ROOT))
    torch.set_num_threads(args.threads)
    from blendgan import pairset
    from blendgan.editing.apply import Edits
    from blendgan.editing.directions_file import Direction, DirectionSet
    from blendgan.jobs.pairs import _make_pairs
    from blendgan.models import Generator
    from blendgan.pipeline import BlendGAN

    torch.manual_seed(0)
    bg = BlendGAN.from_models(Generator(args.size), None, device="cpu", batch_size=4)
    centre = bg.mean_latent(1024, torch.Generator().manual_seed(0))
    recipe = pairset.PairRecipe(seed=0, truncation=0.7, add_weight_index=(6, 6), style=("latent", False))
    recs = [recipe.draws(i) for i in range(args.pairs)]
    style = pairset.style_code({"style_seed": pairset.derive_seed(0, "style")})
    v = torch.nn.functional.normalize(torch.randn(512), dim=0)
    edit = Edits(DirectionSet({"a": Direction("a", v, tuple(range(6)), 1.0)}, "bench", "bench"), {"a": 1.0})

    def run(e):
        return _make_pairs(bg, recs, None, {}, style, centre, 0.7, e)

    # alternated, one of each per round, so that a change of the shared machine's load hits both alike
    times = {None: [], edit: []}
    run(None), run(edit)  # warm-up
    for _ in range(args.repeats):
        for e in times:
            times[e].append(harness.timed(lambda e=e: run(e), 0, 1)[0])
    plain_s, edit_s = (statistics.median(times[e]) / args.pairs for e in (None, edit))
    header = ["size", "pairs", "unedited s/pair", "edited s/pair", "edited / unedited", "threads"]
    row = [args.size, args.pairs, f"{plain_s:.3f}", f"{edit_s:.3f}", f"{edit_s / plain_s:.3f}", args.threads]
    print("\n".join(harness.markdown_table(header, [row])))
    print(harness.finish_line())


if __name__ == "__main__":
    main()
