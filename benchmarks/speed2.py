"""Second speed benchmark: where the 1024 px time goes, and bf16 image quality (uses bench.py's machinery).

    python benchmarks/speed2.py                       # everything
    python benchmarks/speed2.py --sections breakdown  # only the per-resolution table

Sections (all in one process, variants alternated run by run, medians of wall-clock and CPU time):
- generator: the 1024 px generator with a style, batch 1: reference fp32, fast fp32, fast bf16; per-size
  errors from 64 to 1024 px;
- breakdown: per resolution x kind of op (3x3 conv, transposed conv, blur, ToRGB, noise/bias/lrelu,
  modulation/demodulation), process CPU time of each layer split by profiler self time, for the
  reference path and the fast path;
- quality: bf16 images against fp32 images on range-matched generators (the ToRGB layers scaled so the
  images sit inside [-1, 1]; recipe weights and StyleGAN2 initialisation): PSNR and share of pixels off
  by more than 2 grey levels (uint8 and float), and the cost of keeping some layers in float32.

The Winograd and polyphase experiments this script also ran are described in benchmarks/README.md (their
code was removed from the package: no end-to-end gain).

Weights: the conformance recipe (float32) or, without it, random initialisation (said so); the style
encoder's 610304 x 512 matrix is left unallocated (the generator runs get z_embed directly).
"""

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (models and inputs; bench._import_torch() loads measure.py's machinery into it)

measure = None  # benchmarks/measure.py, imported by run()
SECTIONS = ("generator", "breakdown", "quality")


def add_arguments(parser):
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant after one warm-up (default 3)")
    parser.add_argument("--sizes", default="64,128,256,512", help="generator sizes for the error sweep")
    parser.add_argument("--random-weights", action="store_true", help="do not use the recipe even if present")
    parser.add_argument("--out", type=Path, default=bench.RESULTS / "speed2_cpu.md", help="Markdown output")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="a line to add under the title (e.g. machine load)")


STYLE_MATRIX = "embedder.embedder_mlp.0.weight"  # the style encoder's 610304 x 512 matrix


def generator_sd(args):
    """float32 generator_1024 weights (recipe or random) with the style matrix left unallocated."""
    torch = bench.torch
    if args.random_weights:
        torch.manual_seed(0)
        return dict(bench.Generator(bench.SIZE).state_dict()), "RANDOM initialisation"
    import helpers  # the tests' recipe weights (the conformance fixture's recipe, made from the keys)

    shape = dict((k, s) for k, s, _ in helpers.model_keys("generator", bench.SIZE))[STYLE_MATRIX]
    sd = dict(helpers.generator_state_dict(bench.SIZE, bench.SEED_G, embedder={STYLE_MATRIX: torch.empty(shape)}))
    return sd, f"conformance recipe (seed {bench.SEED_G}, float32)"


def medians(res, name):
    return res[name][0], bench.CPU_TIMES[name]


# ------------------------------------------------------------------------------------------ layers


def _fast_model(gsd, size, dtype=None):
    return bench.prepare_for_inference(bench.generator(gsd, size, bench.torch.device("cpu"), dtype))


def section_generator(rep, gsd, runs, sizes):
    torch = bench.torch
    cpu = torch.device("cpu")
    size = bench.SIZE
    rep.add(f"## Generator {size} px with a style, batch 1 (z_embed given, add_weight_index=6, stored noise)")
    rep.add()
    g = _fast_model(gsd, size)
    glow = _fast_model(gsd, size, torch.bfloat16)
    z, ze = bench.gen_inputs(1, cpu, torch.float32)
    call = dict(z_embed=ze, add_weight_index=6, randomize_noise=False)
    variants = {
        "reference fp32": lambda: bench.use_reference_ops(g, True)([z], **call)[0],
        "fast fp32": lambda: bench.use_reference_ops(g, False)([z], **call)[0],
        "fast bf16": lambda: glow([z.bfloat16()], z_embed=ze.bfloat16(), add_weight_index=6, randomize_noise=False)[0],
    }
    res = bench.alternate(variants, cpu, runs)
    flops = bench.count_flops(variants["fast fp32"])
    t_ref, c_ref = medians(res, "reference fp32")
    out_ref, out_fast = res["reference fp32"][2], res["fast fp32"][2]
    rows = []
    for name in variants:
        t, c = medians(res, name)
        base = out_fast if name == "fast bf16" else out_ref
        err = (
            "-"
            if name == "reference fp32"
            else f"{bench.rel_err(res[name][2], base):.1e} vs {'fast fp32' if name == 'fast bf16' else 'reference'}"
        )
        rows.append(
            [
                name,
                bench.fmt_s(t),
                f"{t_ref / t:.2f}",
                bench.fmt_s(c),
                f"{c_ref / c:.2f}",
                f"{flops / t / 1e9:.0f}",
                f"{res[name][3]:.0f}",
                err,
            ]
        )
    rep.table(
        [
            "path",
            "s / image",
            "speed-up",
            "CPU s",
            "CPU-time ratio",
            "effective GFLOP/s (direct FLOPs)",
            "peak RSS MB",
            "max rel. error",
        ],
        rows,
    )
    del res, out_ref, out_fast
    glow = None  # free the bf16 copy (the variants' closures are not called again)
    bench.release_freed_memory()
    rep.add("### Per size (batch 1)")
    rep.add()
    rows = []
    for s in sizes:
        gs = _fast_model(gsd, s)
        zz, zze = bench.gen_inputs(1, cpu, torch.float32, seed=s)
        kw = dict(z_embed=zze, add_weight_index=6, randomize_noise=False)
        r = bench.alternate(
            {
                "ref": lambda: bench.use_reference_ops(gs, True)([zz], **kw)[0],
                "fast": lambda: bench.use_reference_ops(gs, False)([zz], **kw)[0],
            },
            cpu,
            runs,
            memory=False,
        )
        cpus = dict(bench.CPU_TIMES)
        rows.append(
            [
                s,
                bench.fmt_s(r["ref"][0]),
                bench.fmt_s(r["fast"][0]),
                f"{cpus['ref'] / cpus['fast']:.2f}",
                f"{bench.rel_err(r['fast'][2], r['ref'][2]):.1e}",
            ]
        )
        gs = r = None
    rep.table(["size", "reference s", "fast s", "CPU-time ratio vs reference", "error vs reference"], rows)
    return g


# ------------------------------------------------------------------------------------------ breakdown

BREAKDOWN_KINDS = (
    "3x3 conv",
    "transposed 3x3 conv",
    "blur after upsampling",
    "ToRGB (1x1 + skip upsampling)",
    "noise / bias / lrelu",
    "modulation / demodulation",
    "other",
)


def _label_layers(g, clock=None):
    """Forward hooks on each synthesis layer (and its modulation linear, and the ToRGB skip upsampling),
    labelled 'L|<kind>|<resolution>|<part>': with `clock` (a dict) they add each call's process CPU
    seconds to clock[label]; without, they wrap the call in a torch.profiler.record_function range."""
    torch = bench.torch
    handles = []

    def wrap(module, label):
        def pre(mod, args):
            if clock is None:
                mod._bench_rf = torch.profiler.record_function(label)
                mod._bench_rf.__enter__()
            else:
                mod._bench_t0 = time.process_time()

        def post(mod, args, out):
            if clock is None:
                mod._bench_rf.__exit__(None, None, None)
            else:
                clock[label] = clock.get(label, 0.0) + time.process_time() - mod._bench_t0

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))

    layers = [("3x3", 4, g.conv1), ("torgb", 4, g.to_rgb1)]
    for j, rgb in enumerate(g.to_rgbs):
        r = 2 ** (j + 3)
        layers += [("up", r, g.convs[2 * j]), ("3x3", r, g.convs[2 * j + 1]), ("torgb", r, rgb)]
    for kind, r, m in layers:
        wrap(m, f"L|{kind}|{r}|layer")
        wrap(m.conv.modulation, f"L|{kind}|{r}|modulation")
        if kind == "torgb" and hasattr(m, "upsample"):
            wrap(m.upsample, f"L|{kind}|{r}|skip")
    return handles


def _op_kind(layer, part, e):
    """Breakdown kind of one profiled op inside a labelled layer (see BREAKDOWN_KINDS)."""
    name, shapes = e.name, [s for s in (e.input_shapes or []) if isinstance(s, list)]
    if part == "modulation":
        return "modulation / demodulation"
    if layer == "torgb":
        return (
            "ToRGB (1x1 + skip upsampling)"
            if part == "skip" or "mm" in name or "conv" in name or name in ("aten::add", "aten::add_")
            else "other"
        )
    nd = len(shapes[0]) if shapes else 0
    if "conv" in name:
        w = shapes[1] if len(shapes) > 1 else []
        if len(w) == 4 and w[1] == 1 and w[2] == 4:
            return "blur after upsampling"
        return "transposed 3x3 conv" if layer == "up" else "3x3 conv"
    if (
        name
        in (
            "aten::add_",
            "aten::add",
            "aten::leaky_relu_",
            "aten::leaky_relu",
            "aten::addcmul",
            "aten::where",
            "aten::gt",
            "aten::mul_",
        )
        and nd == 4
    ):
        return "noise / bias / lrelu"
    if name in (
        "aten::mm",
        "aten::matmul",
        "aten::addmm",
        "aten::rsqrt",
        "aten::cat",
        "aten::square",
        "aten::sum",
        "aten::pow",
        "aten::mul",
        "aten::add",
    ) and nd in (1, 2, 5):
        return "modulation / demodulation"
    return "other"


def layer_breakdown(g, z, ze, reference=False, runs=3):
    """Process CPU ms of one generator call split by resolution x BREAKDOWN_KINDS, and its total.

    Each layer's CPU time (its own, without its labelled sub-ranges) is the median over `runs` timed
    calls (hooks around the layers, no profiler); it is split over that layer's ops in proportion to
    their self CPU time in one profiled call. CPU time, unlike wall time, moves little with other load on a shared
    machine."""
    torch = bench.torch
    from torch.profiler import profile

    bench.use_reference_ops(g, reference)
    kw = dict(z_embed=ze, add_weight_index=6, randomize_noise=False)
    clocks, totals = [], []
    with torch.inference_mode():
        g([z], **kw)
        for _ in range(runs):
            clock = {}
            handles = _label_layers(g, clock)
            c0 = time.process_time()
            g([z], **kw)
            totals.append(time.process_time() - c0)
            for h in handles:
                h.remove()
            clocks.append(clock)
        handles = _label_layers(g)
        with profile(record_shapes=True) as prof:
            g([z], **kw)
        for h in handles:
            h.remove()
    cpu = {k: statistics.median(c[k] for c in clocks) for k in clocks[0]}
    own = dict(cpu)
    for k, v in cpu.items():  # a layer's own time: without its modulation / skip sub-ranges
        if not k.endswith("|layer"):
            parent = k.rsplit("|", 1)[0] + "|layer"
            own[parent] -= v
    events = list(prof.events())
    labels = [e for e in events if e.name.startswith("L|")]
    ops = [e for e in events if not e.name.startswith("L|") and e.self_cpu_time_total > 0]

    def innermost(e):
        best = None
        for lab in labels:
            if lab.time_range.start <= e.time_range.start and e.time_range.end <= lab.time_range.end:
                if best is None or lab.time_range.elapsed_us() < best.time_range.elapsed_us():
                    best = lab
        return best

    shares = {}  # label -> {kind: self us}
    for e in ops:
        lab = innermost(e)
        if lab is None:
            continue
        _, layer, _, part = lab.name.split("|")
        kind = _op_kind(layer, part, e)
        d = shares.setdefault(lab.name, {})
        d[kind] = d.get(kind, 0.0) + e.self_cpu_time_total
    table = {}  # resolution -> kind -> ms
    for label, sec in own.items():
        _, layer, res, part = label.split("|")
        sh = shares.get(label) or {"other": 1.0}
        total_self = sum(sh.values())
        row = table.setdefault(int(res), {})
        for kind, us in sh.items():
            row[kind] = row.get(kind, 0.0) + max(sec, 0.0) * 1e3 * us / total_self
    return statistics.median(totals) * 1e3, table


def section_breakdown(rep, gsd):
    torch = bench.torch
    rep.add(f"## Per resolution and kind of op: generator {bench.SIZE} px with a style, fp32, batch 1 (torch.profiler)")
    rep.add()
    rep.add(
        "Process CPU ms (summed over threads; moves little with other load, unlike wall time): each "
        "layer's CPU time is the median of 3 timed calls (hooks around the layers), split over its ops in "
        "proportion to their self time in one torch.profiler call. 'outside' = mapping, style embedding "
        "and blend, noise maps. Reference = the straightforward math (the original's way: grouped "
        "per-sample conv, pad-and-convolve FIR), same weights, same process."
    )
    rep.add()
    g = _fast_model(gsd, bench.SIZE)
    z, ze = bench.gen_inputs(1, torch.device("cpu"), torch.float32)
    variants = [("reference", True), ("fast", False)]
    results = {}
    for name, ref in variants:
        results[name] = layer_breakdown(g, z, ze, reference=ref)
        bench.release_freed_memory()
    res_list = sorted(results[variants[0][0]][1])
    for name, _ in variants:
        total, table = results[name]
        rows = []
        totals = dict.fromkeys(BREAKDOWN_KINDS, 0.0)
        for r in res_list:
            row = table.get(r, {})
            rows.append([r] + [f"{row.get(k, 0.0):.0f}" for k in BREAKDOWN_KINDS] + [f"{sum(row.values()):.0f}"])
            for k in BREAKDOWN_KINDS:
                totals[k] += row.get(k, 0.0)
        rows.append(["all"] + [f"{totals[k]:.0f}" for k in BREAKDOWN_KINDS] + [f"{sum(totals.values()):.0f}"])
        layers = sum(totals.values())
        rep.add(f"### {name}: {total:.0f} CPU ms per call, {total - layers:.0f} outside the layers")
        rep.add()
        rep.table(["resolution"] + [f"{k} ms" for k in BREAKDOWN_KINDS] + ["layers ms"], rows)
    return results


# ------------------------------------------------------------------------------------------ quality


def psnr_and_off(a, b):
    """(PSNR dB, share of pixels off by > 2 levels, max abs diff) of uint8 images a against b."""
    import numpy as np

    a, b = np.stack(a).astype(np.float64), np.stack(b).astype(np.float64)
    mse = float(((a - b) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)
    return psnr, float((np.abs(a - b) > 2).mean()), float(np.abs(a - b).max())


def scale_to_rgb(g, factor):
    """Multiply every ToRGB layer's weight and bias by `factor`: the image (the sum of the ToRGB
    outputs, each linear in its weight and bias, upsampled) is then exactly `factor` times as large."""
    torch = bench.torch
    with torch.no_grad():  # new tensors: the parameters may share memory with the state dict
        for rgb in [g.to_rgb1, *g.to_rgbs]:
            rgb.conv.weight.data = rgb.conv.weight.data * factor
            rgb.bias.data = rgb.bias.data * factor
    return bench.prepare_for_inference(g)


def section_quality(rep, gsd, runs, n_images=2, weights="recipe"):
    torch = bench.torch
    import numpy as np

    from blendgan.io import images
    from blendgan.models.mixed_precision import keep_float32

    cpu = torch.device("cpu")
    size = bench.SIZE
    kw = dict(add_weight_index=6, randomize_noise=False)
    z, ze = bench.gen_inputs(n_images, cpu, torch.float32, seed=11)

    def images_of(m, dtype):
        with torch.inference_mode():
            return [
                m([z[i : i + 1].to(dtype)], z_embed=ze[i : i + 1].to(dtype), **kw)[0].float() for i in range(n_images)
            ]

    g32 = _fast_model(gsd, size)
    raw = images_of(g32, torch.float32)
    peak = max(float(t.abs().max()) for t in raw)
    clipped_raw = float(np.mean([float((t.abs() > 1).float().mean()) for t in raw]))
    # range-matched proxy: a trained generator's images sit inside [-1, 1]; the recipe weights' do not
    # (they saturate). One factor for all images maps the largest |value| to 0.95.
    factor = 0.95 / peak
    scale_to_rgb(g32, factor)
    ref = images_of(g32, torch.float32)
    ref_u8 = [images.tensor_to_bgr(t) for t in ref]
    del g32
    bench.release_freed_memory()
    rep.add(f"## bf16 image quality against fp32 ({size} px, {n_images} images, range-matched {weights} generator)")
    rep.add()
    rep.add(
        f"Proxy for generated faces: the {weights} weights' raw images saturate ({100 * clipped_raw:.0f} % of "
        f"values outside [-1, 1], largest |value| {peak:.1f}), so the uint8 conversion hides most "
        f"differences. Every ToRGB weight and bias is multiplied by {factor:.3g} (the same factor in "
        "fp32 and bf16), which scales the image exactly (ToRGB and the skip sum are linear) and puts it "
        "inside [-1, 1] like a trained generator's; the synthesis layers are unchanged. Columns: PSNR "
        "and pixels off by > 2 grey levels of the uint8 images (the original ten2cv conversion), and "
        "the same on the float images over their own range (max - min of fp32, no clipping). bf16 "
        "already accumulates the modulation and demodulation factors in fp32 (blendgan.ops: "
        "_compute_dtype); 'fp32 demodulation' is therefore the plain bf16 row."
    )
    rep.add()
    configs = [
        ("bf16 (modulation / demodulation factors in fp32)", {}),
        ("bf16 + fp32 latent MLPs (mapping, style embedding)", dict(to_rgb=False, latents=True)),
        ("bf16 + fp32 ToRGB", dict(to_rgb=True)),
        ("bf16 + fp32 latent MLPs + ToRGB", dict(to_rgb=True, latents=True)),
        ("bf16 + fp32 last resolution (its two convs + ToRGB)", dict(to_rgb=True, last_resolutions=1)),
        ("bf16 + fp32 latent MLPs + last resolution", dict(to_rgb=True, last_resolutions=1, latents=True)),
    ]
    rng = max(float(t.max()) for t in ref) - min(float(t.min()) for t in ref)
    rows, timings, models = [], {}, {}
    for name, cfg in configs:
        m = _fast_model(gsd, size, torch.bfloat16)
        if cfg:
            keep_float32(m, **cfg)
        scale_to_rgb(m, factor)
        models[name] = m
        outs = images_of(m, torch.bfloat16)
        p, off, mx = psnr_and_off([images.tensor_to_bgr(t) for t in outs], ref_u8)
        err = torch.stack(outs) - torch.stack(ref)
        fpsnr = 20 * math.log10(rng / float(err.double().square().mean().sqrt()))
        foff = float((err.abs() * 255 / rng > 2).float().mean())
        rows.append([name, p, off, mx, fpsnr, foff])
        if len(models) == 2 or name == configs[-1][0]:  # time two models at a time (memory)
            zz, zze = z[:1].bfloat16(), ze[:1].bfloat16()
            res = bench.alternate(
                {n: (lambda mm=mm: mm([zz], z_embed=zze, **kw)[0]) for n, mm in models.items()}, cpu, runs, memory=False
            )
            timings.update({n: (res[n][0], bench.CPU_TIMES[n]) for n in models})
            models.clear()
            bench.release_freed_memory()
    base = timings[configs[0][0]]
    rep.table(
        [
            "variant",
            "PSNR dB (uint8)",
            "pixels off > 2 levels",
            "max abs diff (levels)",
            "PSNR dB (float, fp32 range)",
            "off > 2 levels (float)",
            "s / image",
            "CPU s",
            "CPU time vs plain bf16",
        ],
        [
            [
                n,
                f"{p:.2f}",
                f"{100 * o:.2f} %",
                f"{mx:.0f}",
                f"{fp:.2f}",
                f"{100 * fo:.2f} %",
                bench.fmt_s(timings[n][0]),
                bench.fmt_s(timings[n][1]),
                f"{timings[n][1] / base[1]:.2f}",
            ]
            for n, p, o, mx, fp, fo in rows
        ],
    )
    outside = 100 * float(np.mean([float((t.abs() > 1).float().mean()) for t in ref]))
    rep.add(f"fp32 images of the range-matched generator: {outside:.2f} % of values outside [-1, 1].")
    rep.add()


# ------------------------------------------------------------------------------------------ main


def run(args):
    global measure
    bench._import_torch()
    import measure  # after _import_torch, which sets the huge-page allocation before torch loads

    torch = bench.torch
    from blendgan.allocator import reuse_freed_memory

    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--sections: unknown {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    rep = bench.Report()
    started = time.time()
    rep.add("# Speed, round two: per-resolution breakdown and bf16 quality (cpu)")
    rep.add()
    rep.add("Command: `python benchmarks/speed2.py " + " ".join(sys.argv[1:]) + "`")
    rep.add()
    if args.note:
        rep.add(args.note)
        rep.add()
    rep.table(
        ["", ""],
        [[k, v] for k, v in bench.machine_info(torch.device("cpu"), True).items()]
        + [["load average at start", bench.os.getloadavg()]],
    )
    ceil = bench.ceiling(torch.device("cpu"), [("fp32", torch.float32)])
    rep.add(f"Machine ceiling at start: fp32 matmul {ceil[0][1]:.0f} / 512-ch 3x3 conv {ceil[0][2]:.0f} GFLOP/s.")
    rep.add()
    reuse_freed_memory()
    gsd = None
    if {"generator", "breakdown", "quality"} & set(sections):
        t0 = time.time()
        gsd, desc = generator_sd(args)
        rep.add(f"Weights: {desc}, built in {time.time() - t0:.0f} s.")
        rep.add()
    if "generator" in sections:
        section_generator(rep, gsd, args.runs, [int(s) for s in args.sizes.split(",") if s])
    bench.release_freed_memory()
    if "breakdown" in sections:
        section_breakdown(rep, gsd)
        bench.release_freed_memory()
    if "quality" in sections:
        section_quality(rep, gsd, args.runs, weights="recipe")
        del gsd
        bench.release_freed_memory()
        # StyleGAN2's initialisation: demodulated layers keep unit-scale activations, as a trained
        # generator's do (the recipe's are not so conditioned); the style matrix is never used
        torch.manual_seed(0)
        gsd = dict(bench.Generator(bench.SIZE).state_dict())
        gsd[STYLE_MATRIX] = torch.empty(gsd[STYLE_MATRIX].shape)
        section_quality(rep, gsd, args.runs, weights="randomly initialised (StyleGAN2 init)")
    ceil = bench.ceiling(torch.device("cpu"), [("fp32", torch.float32)])
    rep.add(
        f"Machine ceiling at the end: fp32 matmul {ceil[0][1]:.0f} / conv {ceil[0][2]:.0f} GFLOP/s; load average "
        f"{bench.os.getloadavg()}; total {time.time() - started:.0f} s. Compare CPU-time ratios of alternated "
        "variants rather than absolute seconds on a shared machine."
    )
    if not args.no_write:
        rep.write(args.out)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
