"""Second speed benchmark: Winograd 3x3 convolutions, and bf16 image quality (uses bench.py's machinery).

    python benchmarks/speed2.py                       # everything (~10 min on 2 quiet cores)
    python benchmarks/speed2.py --sections layers     # only the per-layer Winograd vs direct table

Sections (all in one process, variants alternated run by run, medians of wall-clock and CPU time):
- layers: every 3x3 stride-1 layer shape of the 1024 px generator at batch 1, fp32: oneDNN's direct
  convolution against Winograd F(2x2, 3x3) and F(4x4, 3x3), with their errors against float64;
- upsample: the upsampling layers (stride-2 transposed 3x3 + 4x4 blur) as now, against a polyphase
  form with the blur folded in (four exact 3x3 phase kernels on the un-upsampled input, one conv with
  4x the output channels + pixel shuffle), direct and with Winograd F(4x4);
- generator: the 1024 px generator with a style, batch 1: reference fp32, fast fp32 with Winograd off
  (the previous fast path) and on (the default), fast bf16; per-size errors from 64 to 1024 px;
- profile: where the fp32 time goes now, per kind of op;
- quality: bf16 images against fp32 images (uint8 through the original conversion): PSNR, share of
  pixels off by more than 2 grey levels, and the cost of keeping some layers in float32.

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
import bench  # noqa: E402  (the shared machinery: timing alternation, models, report)

SECTIONS = ("layers", "upsample", "generator", "profile", "quality")


def add_arguments(parser):
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant after one warm-up (default 3)")
    parser.add_argument("--sizes", default="64,128,256,512", help="generator sizes for the error sweep")
    parser.add_argument("--conformance", type=Path, default=None, help="conformance folder with the recipe")
    parser.add_argument("--random-weights", action="store_true", help="do not use the recipe even if present")
    parser.add_argument("--out", type=Path, default=bench.RESULTS / "speed2_cpu.md", help="Markdown output")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="a line to add under the title (e.g. machine load)")


def generator_sd(args):
    """float32 generator_1024 weights (recipe or random) with the style matrix left unallocated."""
    torch = bench.torch
    cc = None if args.random_weights else bench.conformance_module(args.conformance or bench.DEFAULT_CONFORMANCE)
    if cc is None:
        torch.manual_seed(0)
        return dict(bench.Generator(bench.SIZE).state_dict()), "RANDOM initialisation (recipe not found)"
    sd = {}
    for key, shape, dtype in cc.load_keys(f"generator_{bench.SIZE}"):
        if key == bench.STYLE_MATRIX:
            sd[key] = torch.empty(shape)  # never touched: z_embed is given
        else:
            v = cc.recipe_tensor(key, shape, bench.SEED_G)
            sd[key] = v if "int" in dtype else v.float()
    return sd, f"conformance recipe (seed {bench.SEED_G}, float32)"


def medians(res, name):
    return res[name][0], bench.CPU_TIMES[name]


# ------------------------------------------------------------------------------------------ layers

def section_layers(rep, runs):
    torch = bench.torch
    import torch.nn.functional as F

    from blendgan.ops import winograd

    rep.add("## 3x3 stride-1 layers of the 1024 px generator, batch 1, fp32 (style and demodulation included)")
    rep.add()
    rows = []
    shapes = [(512, 4), (512, 8), (512, 16), (512, 32), (512, 64), (256, 128), (128, 256), (64, 512), (32, 1024)]
    for c, h in shapes:
        g = torch.Generator().manual_seed(c + h)
        x = torch.randn(1, c, h, h, generator=g).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 3, 3, generator=g) / math.sqrt(9 * c)
        s_in, s_out = 1 + 0.2 * torch.rand(1, c, generator=g), 1 + 0.2 * torch.rand(1, c, generator=g)
        bias = torch.randn(c, generator=g)
        u2, u4 = winograd.weight_transform(w, 2), winograd.weight_transform(w, 4)

        def direct():  # the fast path's direct form: per-sample weight at high resolution, else scaled input
            wb = (w * s_in[0][None, :, None, None] * s_out[0][:, None, None, None])
            return F.conv2d(x, wb, bias, padding=1)

        variants = {"direct": direct,
                    "F2": lambda: winograd.winograd_conv3x3(x, u2, 2, in_scale=s_in, out_scale=s_out, bias=bias),
                    "F4": lambda: winograd.winograd_conv3x3(x, u4, 4, in_scale=s_in, out_scale=s_out, bias=bias)}
        res = bench.alternate(variants, torch.device("cpu"), runs, memory=False)
        cpu = dict(bench.CPU_TIMES)
        ref = (F.conv2d(x.double() * s_in.double()[:, :, None, None], w.double(), padding=1)
               * s_out.double()[:, :, None, None] + bias.double()[:, None, None])
        gflop = 2 * 9 * c * c * h * h / 1e9
        picked = winograd.choose_tile(x, w[None])
        row = [f"{c} @ {h}x{h}", f"{gflop:.2f}"]
        for name in variants:
            row += [f"{res[name][0] * 1e3:.1f}", f"{cpu[name] * 1e3:.1f}", f"{bench.rel_err(res[name][2], ref):.1e}"]
        row += [f"{cpu['direct'] / cpu['F4']:.2f}", f"F{picked}" if picked else "direct"]
        rows.append(row)
    rep.table(["channels @ size", "direct GFLOP", "direct ms", "CPU ms", "error", "F(2x2) ms", "CPU ms", "error",
               "F(4x4) ms", "CPU ms", "error", "F(4x4) CPU-time gain", "fast path uses"], rows)
    rep.add("Errors: max |out - float64 direct| / max |float64 direct|. The fast path's rule "
            f"(blendgan.ops.winograd.choose_tile): F(4x4) for >= {winograd.MIN_CHANNELS} channels from "
            f"{winograd.MIN_SIZE} px, fp32 on CPU; direct convolution elsewhere.")
    rep.add()


# ------------------------------------------------------------------------------------------ upsample

def polyphase_kernel(weight, fir):
    """Stride-2 transposed conv with weight [out, in, 3, 3] followed by the true 2-D convolution with
    the 4x4 FIR `fir` (pads 1, 1) = four 3x3 correlations (padding 1) of the input, one per output
    phase (a, b): returns them as [out * 4, in, 3, 3] in pixel_shuffle's channel order (o, a, b).
    Per axis, output 2j + a takes input j + d (d = -1, 0, 1) through tap p of the weight and tap k of
    the flipped FIR exactly when a + k - 1 - p = 2d."""
    torch = bench.torch
    t = torch.zeros(2, 3, 4, 3, dtype=torch.float64)
    for a in range(2):
        for d in range(3):
            for k in range(4):
                for p in range(3):
                    t[a, d, k, p] = float(a + k - 1 - p == 2 * (d - 1))
    f = torch.flip(fir.double(), [0, 1])
    kern = torch.einsum("aykp,bxlq,kl,oipq->oabiyx", t, t, f, weight.double())
    return kern.reshape(-1, *weight.shape[1:]).to(weight.dtype)


def section_upsample(rep, runs):
    torch = bench.torch
    import torch.nn.functional as F

    from blendgan.ops import make_kernel, upfirdn2d_fast, upfirdn2d_reference, winograd

    rep.add("## Upsampling layers (transposed 3x3 stride 2 + 4x4 blur), batch 1, fp32")
    rep.add()
    fir = make_kernel([1, 3, 3, 1], scale=4)
    rows = []
    for cin, cout, h in [(512, 512, 16), (512, 512, 32), (512, 256, 64), (256, 128, 128), (128, 64, 256)]:
        g = torch.Generator().manual_seed(cin + h)
        x = torch.randn(1, cin, h, h, generator=g).contiguous(memory_format=torch.channels_last)
        w = torch.randn(cout, cin, 3, 3, generator=g) / math.sqrt(9 * cin)
        wt = w.transpose(0, 1).contiguous()
        kp = polyphase_kernel(w, fir)
        u = winograd.weight_transform(kp, 4)

        def now():
            return upfirdn2d_fast(F.conv_transpose2d(x, wt, stride=2), fir, pad=(1, 1))

        variants = {"now": now,
                    "polyphase": lambda: F.pixel_shuffle(F.conv2d(x, kp, padding=1), 2),
                    "polyphase F4": lambda: F.pixel_shuffle(winograd.winograd_conv3x3(x, u, 4), 2)}
        res = bench.alternate(variants, torch.device("cpu"), runs, memory=False)
        cpu = dict(bench.CPU_TIMES)
        ref = upfirdn2d_reference(F.conv_transpose2d(x.double(), wt.double(), stride=2), fir.double(), pad=(1, 1))
        row = [f"{cin} -> {cout} @ {h} -> {2 * h}"]
        for name in variants:
            row += [f"{res[name][0] * 1e3:.1f}", f"{cpu[name] * 1e3:.1f}", f"{bench.rel_err(res[name][2], ref):.1e}"]
        rows.append(row)
    rep.table(["layer", "now ms", "CPU ms", "error", "polyphase ms", "CPU ms", "error", "polyphase + F(4x4) ms",
               "CPU ms", "error"], rows)
    rep.add("The polyphase form is exact (errors are fp32 rounding against float64) but does 4x the "
            "transposed conv's multiplications (36 instead of 9 per input pixel and channel pair); Winograd "
            "F(4x4) brings that back to 9, the same as now, plus its transforms. The fast path keeps its "
            "transposed conv + depthwise blur.")
    rep.add()


# ------------------------------------------------------------------------------------------ generator

def _fast_model(gsd, size, dtype=None):
    return bench.prepare_for_inference(bench.generator(gsd, size, bench.torch.device("cpu"), dtype))


def section_generator(rep, gsd, runs, sizes):
    torch = bench.torch
    from blendgan.ops import winograd

    cpu = torch.device("cpu")
    size = bench.SIZE
    rep.add(f"## Generator {size} px with a style, batch 1 (z_embed given, add_weight_index=6, stored noise)")
    rep.add()
    g = _fast_model(gsd, size)
    glow = _fast_model(gsd, size, torch.bfloat16)
    z, ze = bench.gen_inputs(1, cpu, torch.float32)
    call = dict(z_embed=ze, add_weight_index=6, randomize_noise=False)

    def fast(on):
        def f():
            old = winograd.set_enabled(on)
            try:
                return bench.use_reference_ops(g, False)([z], **call)[0]
            finally:
                winograd.set_enabled(old)
        return f

    variants = {"reference fp32": lambda: bench.use_reference_ops(g, True)([z], **call)[0],
                "fast fp32, direct conv only (previous)": fast(False),
                "fast fp32, Winograd (default)": fast(True),
                "fast bf16": lambda: glow([z.bfloat16()], z_embed=ze.bfloat16(), add_weight_index=6,
                                          randomize_noise=False)[0]}
    res = bench.alternate(variants, cpu, runs)
    flops = bench.count_flops(fast(False))
    t_ref, c_ref = medians(res, "reference fp32")
    out_ref, out_fast = res["reference fp32"][2], res["fast fp32, Winograd (default)"][2]
    rows = []
    for name in variants:
        t, c = medians(res, name)
        base = out_fast if name == "fast bf16" else out_ref
        err = "-" if name == "reference fp32" else \
            f"{bench.rel_err(res[name][2], base):.1e} vs {'fast fp32' if name == 'fast bf16' else 'reference'}"
        rows.append([name, bench.fmt_s(t), f"{t_ref / t:.2f}", bench.fmt_s(c), f"{c_ref / c:.2f}",
                     f"{flops / t / 1e9:.0f}", f"{res[name][3]:.0f}", err])
    rep.table(["path", "s / image", "speed-up", "CPU s", "CPU-time ratio", "effective GFLOP/s (direct FLOPs)",
               "peak RSS MB", "max rel. error"], rows)
    off, on = "fast fp32, direct conv only (previous)", "fast fp32, Winograd (default)"
    row1024 = [size, bench.fmt_s(t_ref), bench.fmt_s(res[off][0]), bench.fmt_s(res[on][0]),
               f"{bench.CPU_TIMES[off] / bench.CPU_TIMES[on]:.2f}", f"{c_ref / bench.CPU_TIMES[on]:.2f}",
               f"{bench.rel_err(res[off][2], out_ref):.1e}", f"{bench.rel_err(out_fast, out_ref):.1e}"]
    del res, glow, out_ref, out_fast
    bench.release_freed_memory()
    rep.add("### Per size: Winograd on vs off (batch 1)")
    rep.add()
    rows = []
    for s in sizes:
        gs = _fast_model(gsd, s)
        zz, zze = bench.gen_inputs(1, cpu, torch.float32, seed=s)
        kw = dict(z_embed=zze, add_weight_index=6, randomize_noise=False)

        def run_s(on, ref=False):
            def f():
                old = winograd.set_enabled(on)
                try:
                    return bench.use_reference_ops(gs, ref)([zz], **kw)[0]
                finally:
                    winograd.set_enabled(old)
            return f

        r = bench.alternate({"ref": run_s(False, True), "off": run_s(False), "on": run_s(True)}, cpu, runs,
                            memory=False)
        cpus = dict(bench.CPU_TIMES)
        rows.append([s, bench.fmt_s(r["ref"][0]), bench.fmt_s(r["off"][0]), bench.fmt_s(r["on"][0]),
                     f"{cpus['off'] / cpus['on']:.2f}", f"{cpus['ref'] / cpus['on']:.2f}",
                     f"{bench.rel_err(r['off'][2], r['ref'][2]):.1e}", f"{bench.rel_err(r['on'][2], r['ref'][2]):.1e}"])
        del gs, r
    rows.append(row1024)
    rep.table(["size", "reference s", "Winograd off s", "Winograd on s", "on/off CPU-time gain",
               "CPU-time ratio vs reference", "error off vs reference", "error on vs reference"], rows)
    return g


# ------------------------------------------------------------------------------------------ profile

def section_profile(rep, g):
    torch = bench.torch
    from torch.profiler import profile

    rep.add(f"## Where the fp32 time goes now (generator {bench.SIZE} px, batch 1, torch.profiler self time)")
    rep.add()
    z, ze = bench.gen_inputs(1, torch.device("cpu"), torch.float32)
    bench.use_reference_ops(g, False)
    with torch.inference_mode():
        g([z], z_embed=ze, add_weight_index=6, randomize_noise=False)
        with profile(record_shapes=True) as prof:
            g([z], z_embed=ze, add_weight_index=6, randomize_noise=False)
    events = [e for e in prof.key_averages(group_by_input_shape=True) if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    kinds = {}
    for e in events:
        if e.key == "aten::bmm":
            k = "Winograd GEMMs (bmm)"
        elif e.key in ("aten::add", "aten::add_", "aten::mul", "aten::mul_") and \
                len((e.input_shapes or [[]])[0]) in (3, 5):  # the transforms work on 3-D / 5-D views
            k = "Winograd transforms + epilogue (elementwise)"
        else:
            k = bench.classify(e)
        kinds[k] = kinds.get(k, 0) + e.self_cpu_time_total
    rep.add(f"{total / 1e3:.0f} ms of CPU op time (summed over the ops' spans, not wall time).")
    rep.add()
    rep.table(["kind", "ms", "%"], [[k, f"{v / 1e3:.0f}", f"{100 * v / total:.1f}"]
                                    for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])])
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:14]
    rep.table(["op", "input shapes", "calls", "ms", "%"],
              [[e.key, bench.short_shapes(e.input_shapes), e.count, f"{e.self_cpu_time_total / 1e3:.1f}",
                f"{100 * e.self_cpu_time_total / total:.1f}"] for e in top])


# ------------------------------------------------------------------------------------------ quality

def psnr_and_off(a, b):
    import numpy as np

    a, b = np.stack(a).astype(np.float64), np.stack(b).astype(np.float64)
    mse = float(((a - b) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)
    return psnr, float((np.abs(a - b) > 2).mean()), float(np.abs(a - b).max())


def section_quality(rep, gsd, runs, n_images=4):
    torch = bench.torch
    from blendgan import images
    from blendgan.models.mixed_precision import keep_float32

    cpu = torch.device("cpu")
    rep.add(f"## bf16 image quality against fp32 ({bench.SIZE} px, {n_images} images, uint8 through ten2cv)")
    rep.add()
    g32 = _fast_model(gsd, bench.SIZE)
    z, ze = bench.gen_inputs(n_images, cpu, torch.float32, seed=11)
    kw = dict(add_weight_index=6, randomize_noise=False)
    with torch.inference_mode():
        ref = [images.tensor_to_bgr(g32([z[i:i + 1]], z_embed=ze[i:i + 1], **kw)[0]) for i in range(n_images)]
    del g32
    bench.release_freed_memory()
    configs = [("bf16 (demodulation already accumulated in fp32)", {}),
               ("bf16 + fp32 ToRGB", dict(to_rgb=True)),
               ("bf16 + fp32 last resolution (its two convs + ToRGB)", dict(to_rgb=True, last_resolutions=1)),
               ("bf16 + fp32 last two resolutions", dict(to_rgb=True, last_resolutions=2))]
    rows = []
    timings = {}
    models = {}
    for name, cfg in configs:
        m = _fast_model(gsd, bench.SIZE, torch.bfloat16)
        if cfg:
            keep_float32(m, **cfg)
            bench.prepare_for_inference(m)
        models[name] = m
        with torch.inference_mode():
            outs = [images.tensor_to_bgr(m([z[i:i + 1].bfloat16()], z_embed=ze[i:i + 1].bfloat16(), **kw)[0])
                    for i in range(n_images)]
        rows.append([name, *psnr_and_off(outs, ref)])
        if len(models) == 2 or name == configs[-1][0]:  # time two models at a time (memory)
            zz, zze = z[:1].bfloat16(), ze[:1].bfloat16()
            res = bench.alternate({n: (lambda mm=mm: mm([zz], z_embed=zze, **kw)[0]) for n, mm in models.items()},
                                  cpu, runs, memory=False)
            timings.update({n: (res[n][0], bench.CPU_TIMES[n]) for n in models})
            models.clear()
            bench.release_freed_memory()
    base = timings[configs[0][0]]
    rep.table(["variant", "PSNR dB", "pixels off by > 2 levels", "max abs diff (levels)", "s / image",
               "CPU s", "CPU time vs plain bf16"],
              [[n, f"{p:.2f}", f"{100 * o:.2f} %", f"{mx:.0f}", bench.fmt_s(timings[n][0]), bench.fmt_s(timings[n][1]),
                f"{timings[n][1] / base[1]:.2f}"] for n, p, o, mx in rows])


# ------------------------------------------------------------------------------------------ main

def run(args):
    bench._import_torch()
    torch = bench.torch
    from blendgan.ops import reuse_freed_memory

    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--sections: unknown {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    rep = bench.Report()
    started = time.time()
    rep.add("# Speed, round two: Winograd 3x3 convolutions and bf16 quality (cpu)")
    rep.add()
    rep.add("Command: `python benchmarks/speed2.py " + " ".join(sys.argv[1:]) + "`")
    rep.add()
    if args.note:
        rep.add(args.note)
        rep.add()
    rep.table(["", ""], [[k, v] for k, v in bench.machine_info(torch.device("cpu"), True).items()] +
              [["load average at start", bench.os.getloadavg()]])
    ceil = bench.ceiling(torch.device("cpu"), [("fp32", torch.float32)])
    rep.add(f"Machine ceiling at start: fp32 matmul {ceil[0][1]:.0f} / 512-ch 3x3 conv {ceil[0][2]:.0f} GFLOP/s.")
    rep.add()
    reuse_freed_memory()
    if "layers" in sections:
        section_layers(rep, args.runs)
    if "upsample" in sections:
        section_upsample(rep, args.runs)
    gsd = None
    if {"generator", "profile", "quality"} & set(sections):
        t0 = time.time()
        gsd, desc = generator_sd(args)
        rep.add(f"Weights: {desc}, built in {time.time() - t0:.0f} s.")
        rep.add()
    g = None
    if "generator" in sections:
        g = section_generator(rep, gsd, args.runs, [int(s) for s in args.sizes.split(",") if s])
    if "profile" in sections:
        section_profile(rep, g or _fast_model(gsd, bench.SIZE))
    del g
    bench.release_freed_memory()
    if "quality" in sections:
        section_quality(rep, gsd, args.runs)
    ceil = bench.ceiling(torch.device("cpu"), [("fp32", torch.float32)])
    rep.add(f"Machine ceiling at the end: fp32 matmul {ceil[0][1]:.0f} / conv {ceil[0][2]:.0f} GFLOP/s; load average "
            f"{bench.os.getloadavg()}; total {time.time() - started:.0f} s. Compare CPU-time ratios of alternated "
            "variants rather than absolute seconds on a shared machine.")
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text("\n".join(rep.lines) + "\n")
        tmp.replace(args.out)
        print(f"wrote {args.out}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
