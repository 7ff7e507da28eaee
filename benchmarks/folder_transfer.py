"""Folder style transfer at 1024 px, 8 faces x 30 styles: the pipeline against the original's way.

    python benchmarks/folder_transfer.py                      # 8 x 30, fp32, batch 1 and 4, 6 original pairs
    python benchmarks/folder_transfer.py --faces 2 --styles 3 --original-pairs 6   # every pair, quicker
    python benchmarks/folder_transfer.py --quick      # 1 face x 2 styles, batch 1, 1 original pair: that it runs

The fast path is the whole job through `blendgan.pipeline.BlendGAN`: every face and style encoded once,
then every (face, style) pair generated (batches of 4 styles per face). The original's way
(`style_transfer_folder`) encodes face and style again for every pair, batch 1, reference ops; it costs
the same for every pair, so it is timed on a sample of pairs spread over the grid (`--original-pairs`),
and its total is the per-pair median times the number of pairs. Both in one process, same recipe
weights; the sampled pairs' images are compared. The split of the fast path (face encoding, style
encoding, generation) is reported, which shows where a larger speed-up would have to come from.

Faces and styles: the bundled test images, their mirror images and, beyond those, random images of the
same size (timing does not depend on what a picture shows).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def run(args):
    bench._import_torch()
    import harness

    torch = bench.torch
    from blendgan.io import images
    from blendgan.pipeline import BlendGAN

    cpu = torch.device("cpu")
    rep = harness.Report()
    n_pairs = args.faces * args.styles
    rep.add(f"## Folder style transfer, {args.faces} faces x {args.styles} styles at {bench.SIZE}, fp32")
    rep.add()
    rep.add(
        f"Command: `python benchmarks/folder_transfer.py {' '.join(sys.argv[1:])}`; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    rep.add()
    rep.add(harness.machine_line())
    rep.add()
    gsd, psd, desc = bench.build_models(argparse.Namespace(random_weights=args.random_weights))
    bench.reuse_freed_memory()  # as the generating commands do (blendgan/allocator.py)
    g = bench.from_state_dict(lambda: bench.Generator(bench.SIZE), gsd)
    pe = bench.from_state_dict(lambda: bench.PSPEncoder(psd["latent_avg"].shape[0]), psd)
    faces, styles = bench.folder_images(cpu, args.faces, args.styles)
    step = max(1, n_pairs // args.original_pairs)
    sample = [(p // args.styles, p % args.styles) for p in range(0, n_pairs, step)][: args.original_pairs]

    # fast: the pipeline, as `blendgan transfer` runs it (a new pipeline per batch size: empty caches)
    bench.use_reference_ops(g, False)
    bench.use_reference_ops(pe, False)

    def fast_run(batch_size):
        bg = BlendGAN.from_models(g, pe, device="cpu", precision="fp32", batch_size=batch_size)
        t, kept = {}, {}
        with torch.inference_mode():
            t0 = time.perf_counter()
            codes = [bg.encode_face_bgr(f) for f in faces]
            t["faces"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            zs = torch.cat([bg.embed_style_bgr(s) for s in styles])
            t["styles"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i, c in enumerate(codes):
                out = bg.stylize(c, zs, add_weight_index=6)
                kept.update({(a, b): out[b : b + 1].clone() for a, b in sample if a == i})  # for the check
                del out
            t["generate"] = time.perf_counter() - t0
        return t, kept

    runs = {b: fast_run(b) for b in args.batch_sizes}

    # the original's way, on pairs spread over the grid
    bench.use_reference_ops(g, True)
    bench.use_reference_ops(pe, True)
    per_pair, errs = [], []
    with torch.inference_mode():
        for i, j in sample:
            t0 = time.perf_counter()
            code = pe(images.bgr_to_tensor(faces[i]))
            z = g.embedder(images.bgr_to_tensor(styles[j]))
            ref = g([code], input_is_latent=True, z_embed=z, add_weight_index=6, randomize_noise=False)[0]
            per_pair.append(time.perf_counter() - t0)
            errs.append(max(harness.rel_err(kept[(i, j)], ref) for _, kept in runs.values()))
    orig_pair = statistics.median(per_pair)
    orig_total = orig_pair * n_pairs

    rep.add(
        f"Weights: {desc}. Original: median of {len(sample)} sampled pairs "
        f"({', '.join(f'{s:.2f}' for s in per_pair)} s) x {n_pairs} pairs. Max relative difference of the "
        f"sampled pairs' images, fast vs original: {max(errs):.1e}."
    )
    rep.add()
    rows = [["original (re-encode per pair, reference ops, batch 1)", f"{orig_total:.1f}", f"{orig_pair:.3f}", "1.00"]]
    for b, (t, _) in runs.items():
        total = sum(t.values())
        rows.append(
            [
                f"fast fp32, generator batch {b} (each face and style once, pipeline)",
                f"{total:.1f}",
                f"{total / n_pairs:.3f}",
                f"{orig_total / total:.2f}",
            ]
        )
    rep.table(["path", "s total", "s / image", "speed-up"], rows)
    parts = []
    for b, (t, _) in runs.items():
        total = sum(t.values())
        parts += [
            [b, f"encode {args.faces} faces (pSp)", f"{t['faces']:.1f}", f"{t['faces'] / total:.0%}"],
            [b, f"encode {args.styles} styles", f"{t['styles']:.1f}", f"{t['styles'] / total:.0%}"],
            [
                b,
                f"generate {n_pairs} images ({t['generate'] / n_pairs:.3f} s each)",
                f"{t['generate']:.1f}",
                f"{t['generate'] / total:.0%}",
            ],
        ]
    rep.table(["batch", "fast path part", "s", "share"], parts)
    gen = min(t["generate"] for t, _ in runs.values()) / n_pairs
    rep.add(
        f"Even with free encoding the speed-up could not pass {orig_pair:.3f} / {gen:.3f} = {orig_pair / gen:.2f}x "
        "(the fastest generator above)."
    )
    rep.add()
    rep.add(harness.finish_line())
    if args.out:
        rep.write(args.out)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=8, help="number of faces (default 8)")
    parser.add_argument("--styles", type=int, default=30, help="number of styles (default 30)")
    parser.add_argument(
        "--batch-sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 4],
        help="generator batch sizes of the pipeline, each a separate run (default 1,4)",
    )
    parser.add_argument("--original-pairs", type=int, default=6, help="pairs timed the original's way (default 6)")
    parser.add_argument("--random-weights", action="store_true", help="random instead of recipe weights")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the tables to")
    parser.add_argument("--quick", action="store_true", help="1 face x 2 styles, batch 1, 1 original pair, random")
    args = parser.parse_args(argv)
    if args.quick:
        args.faces, args.styles, args.batch_sizes, args.original_pairs, args.random_weights = 1, 2, [1], 1, True
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
