"""torch.compile (inductor) on the generator: compile time and steady-state gain against eager.

    python benchmarks/compile_gain.py --sizes 256,1024

For each size: the recipe generator (float32, z_embed given, batch 1) prepared as the pipeline does;
the first call of `torch.compile(generator)` is the compile time (inductor's cache emptied first); then eager and
compiled calls
alternate (measure.alternate: medians of wall-clock and process CPU time) and the outputs are compared.
Inductor needs a C++ compiler on CPU; an error is printed and recorded instead of a row.
"""

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def run(args):
    # a fresh inductor cache: the first call then measures a real compile, not a cache hit
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    bench._import_torch()
    import measure

    torch = bench.torch
    cpu = torch.device("cpu")
    rep = measure.Report()
    rep.add("## torch.compile (inductor) on the generator, fp32, batch 1, z_embed given")
    rep.add()
    rep.add(
        f"Command: `python benchmarks/compile_gain.py {' '.join(sys.argv[1:])}`; torch {torch.__version__}; "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    rep.add()
    gsd, _, desc = bench.build_models(argparse.Namespace(random_weights=args.random_weights))
    bench.reuse_freed_memory()  # as the generating commands do (blendgan/allocator.py)
    rows = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        g = bench.prepare_for_inference(bench.generator(gsd, size, cpu))
        z, ze = bench.gen_inputs(1, cpu, torch.float32, seed=size)
        kw = dict(z_embed=ze, add_weight_index=6, randomize_noise=False)
        compiled = torch.compile(g, mode=args.mode)
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            with torch.inference_mode():
                compiled([z], **kw)
            compile_s, compile_cpu = time.perf_counter() - t0, time.process_time() - c0
        except Exception as err:  # noqa: BLE001  (recorded in the table instead)
            traceback.print_exc()
            reason = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
            rows.append([size, "-", "-", "-", "-", "-", reason])
            continue
        res = measure.alternate(
            {"eager": lambda: g([z], **kw)[0], "compiled": lambda: compiled([z], **kw)[0]}, cpu, args.runs, memory=False
        )
        cpu_t = dict(measure.CPU_TIMES)
        rows.append(
            [
                size,
                f"{compile_s:.1f} ({compile_cpu:.1f} CPU)",
                measure.fmt_s(res["eager"][0]),
                measure.fmt_s(res["compiled"][0]),
                f"{res['eager'][0] / res['compiled'][0]:.2f}",
                f"{cpu_t['eager'] / cpu_t['compiled']:.2f}",
                f"{measure.rel_err(res['compiled'][2], res['eager'][2]):.1e}",
            ]
        )
        del g, compiled, res
        torch._dynamo.reset()
        bench.release_freed_memory()
    rep.table(
        [
            "size",
            "compile s (first call)",
            "eager s",
            "compiled s",
            "wall gain",
            "CPU-time gain",
            "max rel. diff vs eager",
        ],
        rows,
    )
    rep.add(f"Weights: {desc}. Load average at end {os.getloadavg()[0]:.1f}.")
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(rep.lines) + "\n\n")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,1024", help="generator sizes (default 256,1024)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant (default 3)")
    parser.add_argument("--mode", default=None, help="torch.compile mode (default: torch's default)")
    parser.add_argument("--random-weights", action="store_true", help="random instead of recipe weights")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to append the table to")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
