"""onnxruntime vs the PyTorch fast path on this machine's CPU, same inputs, one process.

    python benchmarks/bench_onnx.py                      # generator at 256 and 1024 + both encoders, fp32
    python benchmarks/bench_onnx.py --sizes 256 --runs 3 --no-encoders
    python benchmarks/bench_onnx.py --quick              # the 64 px generator, 1 run, nothing written

Models are randomly initialised (timing does not depend on the values). For each model: export with
`blendgan.export` (dynamo exporter, fp32), one warm-up call each, then `--runs` calls alternating
PyTorch / onnxruntime; the median seconds, the ratio and max |ort - torch| / max |torch| are reported
and written to benchmarks/results/onnx.md. PyTorch runs as the pipeline does (fast ops,
`prepare_for_inference`, inference mode); onnxruntime with its default CPU provider and thread count.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _median_alternating(fns, runs):
    times = [[] for _ in fns]
    outs = [fn() for fn in fns]  # warm-up (and the outputs compared)
    for _ in range(runs):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], outs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,1024", help="generator sizes (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per model and runtime (default: %(default)s)")
    parser.add_argument("--no-encoders", dest="encoders", action="store_false", help="skip pSp and style encoder")
    parser.add_argument("--out", default=str(RESULTS / "onnx.md"), help="Markdown result (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="the 64 px generator, 1 run, no file: that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.runs, args.encoders, args.out = "64", 1, False, None
    start = harness.machine_line()
    print(start, flush=True)

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import numpy as np
    import onnxruntime as ort
    import torch

    from blendgan.export import export_generator, export_psp_encoder, export_style_encoder
    from blendgan.models import Generator, PSPEncoder, n_latent_for_size, prepare_for_inference

    torch.manual_seed(0)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="blendgan-onnx-bench-"))

    def compare(name, model, export, feeds, torch_call):
        start = time.perf_counter()
        files = export(model, tmp / f"{name}.onnx")
        export_s = time.perf_counter() - start
        sess = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
        np_feeds = {k: v.numpy() for k, v in feeds.items()}
        prepare_for_inference(model)
        with torch.inference_mode():
            (t_torch, t_ort), (ref, out) = _median_alternating(
                [lambda: torch_call(feeds).numpy(), lambda: sess.run(None, np_feeds)[0]], args.runs
            )
        err = float(np.abs(out - ref).max() / np.abs(ref).max())
        rows.append((name, t_torch, t_ort, err, export_s))
        print(
            f"{name}: torch {t_torch:.3f}s  onnxruntime {t_ort:.3f}s  ort/torch {t_ort / t_torch:.2f}  "
            f"rel err {err:.1e}  (export {export_s:.0f}s)",
            flush=True,
        )
        for f in files:
            f.unlink()

    for size in [int(s) for s in args.sizes.split(",")]:
        g = Generator(size).eval().requires_grad_(False)
        n = n_latent_for_size(size)
        feeds = {"codes": torch.randn(1, n, 512), "z_embed": torch.randn(1, 512), "add_weight_index": torch.tensor([6])}
        compare(
            f"generator {size} px, batch 1",
            g,
            export_generator,
            feeds,
            lambda f, g=g: g(
                [f["codes"]], input_is_latent=True, randomize_noise=False, z_embed=f["z_embed"], add_weight_index=6
            )[0],
        )
        if args.encoders and size == max(int(s) for s in args.sizes.split(",")):
            image = {"image": torch.rand(1, 3, 256, 256) * 2 - 1}
            compare(
                "style encoder (256x256 input)",
                g.embedder,
                export_style_encoder,
                image,
                lambda f, g=g: g.embedder(f["image"]),
            )
            psp = PSPEncoder(n).eval().requires_grad_(False)
            compare("pSp encoder (256x256 input)", psp, export_psp_encoder, image, lambda f: psp(f["image"]))
            del psp
        del g

    lines = [
        "# onnxruntime vs PyTorch fast path (CPU, fp32)",
        "",
        start,
        "",
        f"torch {torch.__version__}, onnxruntime {ort.__version__}. {harness.finish_line()}.",
        f"Median of {args.runs} alternating runs after one warm-up; random weights; `python benchmarks/bench_onnx.py`.",
        "",
        "| model | PyTorch fast path (s) | onnxruntime (s) | ort / torch | max rel. diff | export (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f} | {e:.1e} | {x:.0f} |" for name, a, b, e, x in rows],
        "",
    ]
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines))
        print(f"wrote {out}")
    tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
