"""Benchmark of the fast inference path against the plain reference path.

    python benchmarks/bench.py                 # everything on CPU (fp32 + bf16), ~10 min on 2 cores
    python benchmarks/bench.py --quick         # generator batch 1, size sweep and encoders only
    python benchmarks/bench.py --device cuda   # fp32 + fp16, batch 1 and 8

In one process it times (warm-up, then the median of several alternating runs) the fast path and the
reference path (the math done the straightforward way: pad-and-convolve FIR, one grouped modulated
convolution) for the 1024 px generator with a style at batch 1 and 4 (CUDA: 1 and 8), the generator at
64...512 px, the style encoder and the pSp encoder on a 1024x1024 image, and end-to-end folder style
transfer of 4 faces x 8 styles at 1024 (the original re-encodes face and style for every pair, batch 1,
reference ops; the fast path encodes each image once through `blendgan.pipeline.BlendGAN`). It reports
seconds, the ratio, achieved GFLOP/s (FLOPs counted with torch.utils.flop_counter on the same call),
the machine ceiling measured in the same run (a large matmul, a 512-channel 3x3 convolution), peak RSS
per section, errors (max |fast - reference| / max |reference|; reduced precision against fp32 on the
same inputs) and a profiler breakdown, and writes a Markdown table to benchmarks/results/.

Weights: the conformance fixture's recipe weights in float32, made from the model's keys (tests/helpers.py);
with --random-weights, randomly initialised models of the same shapes (said so in the output).

The measurement machinery (alternating runs, peak memory, FLOPs, ceiling, profiler, report) is in
harness.py; each benchmark below is a function that builds its variants and reports a table.

Memory: the reference FIR (pad-and-convolve on [N*C, 1, H, W] planes, im2col) needs ~4 GB per 1024 px
image, so by default (--max-reference-gb 6) a batched reference that needs more (batch 4: ~16 GB) runs
its images one at a time instead, in the same alternation as the fast path.
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
torch = None  # imported by _import_torch(), so that reading this module (for its flags) stays cheap


def _import_torch():
    """Import torch and the models. Large tensors go on transparent huge pages (fewer page faults for
    fresh 100+ MB activations); PyTorch reads that setting at its first allocation, so it is set first
    (it has no effect if torch was already in use)."""
    global torch, Generator, PSPEncoder, use_reference_ops, set_style_matrix_dtype, from_state_dict
    global prepare_for_inference, release_freed_memory, reuse_freed_memory
    global CPU_TIMES, Report, alternate, ceiling, count_flops, finish_line, fmt_s, machine_info, mem_available_mb
    global memory_allows, profile_self_time, rel_err, rss_mb, sync
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    for folder in (ROOT, ROOT / "benchmarks", ROOT / "tests"):  # blendgan, harness.py, the recipe weights
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    import torch

    from blendgan import Generator, PSPEncoder
    from blendgan.allocator import release_freed_memory, reuse_freed_memory
    from blendgan.models import prepare_for_inference, use_reference_ops
    from blendgan.models.layers import set_style_matrix_dtype
    from blendgan.models.loading import from_state_dict

    from harness import (  # noqa: F401
        CPU_TIMES,
        Report,
        alternate,
        ceiling,
        count_flops,
        finish_line,
        fmt_s,
        machine_info,
        mem_available_mb,
        memory_allows,
        profile_self_time,
        rel_err,
        rss_mb,
        sync,
    )


RESULTS = ROOT / "benchmarks" / "results"
SEED_G, SEED_P = 1234, 5678
SIZE = 1024
REDUCED = {"cpu": ("bf16", "bfloat16"), "cuda": ("fp16", "float16")}  # dtype names: torch is imported late


# ------------------------------------------------------------------------------------------ utilities


def add_arguments(parser):
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip the batch>1 generator runs, the storage variants and the end-to-end run",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant after one warm-up (default 3)")
    parser.add_argument(
        "--e2e-runs", type=int, default=2, help="timed end-to-end runs per variant, alternating (default 2)"
    )
    parser.add_argument("--batches", default=None, help="generator batch sizes, e.g. 1,4 (default: cpu 1,4; cuda 1,8)")
    parser.add_argument("--sizes", default="64,128,256,512", help="generator sizes for the batch-1 sweep")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--random-weights", action="store_true", help="use random weights even if the recipe is present"
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write (default: results/...)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--max-reference-gb",
        type=float,
        default=6.0,
        help="a batched reference run needing more than this runs its images one at a time "
        "(the reference FIR needs ~4 GB per 1024 px image; default 6)",
    )
    parser.add_argument(
        "--return-freed-memory",
        action="store_true",
        help="leave glibc's default of returning large freed blocks to the OS (slower)",
    )


REFERENCE_MB_PER_IMAGE = 4000  # measured ~3.0 GB working set per 1024 px image on the reference path
SKIPPED = []  # notes on reference runs skipped for their memory needs
MAX_REFERENCE_MB = [6 * 1024]  # set from --max-reference-gb


# ------------------------------------------------------------------------------------------ models


def build_models(args):
    """(generator state dict (float32), psp wrapper state dict (float32), description)."""
    n_styles = 2 * (SIZE.bit_length() - 1) - 2
    if not args.random_weights:
        import helpers  # the tests' recipe weights (the conformance fixture's recipe, made from the keys)

        gsd = dict(helpers.generator_state_dict(SIZE, SEED_G))
        inner, latent_avg = helpers.psp_state_dict(SIZE, SEED_P)
        psd = {**{f"encoder.{k}": v for k, v in inner.items()}, "latent_avg": latent_avg}
        return gsd, psd, f"conformance recipe (seeds {SEED_G}/{SEED_P}, float32)"
    torch.manual_seed(0)
    gsd = dict(Generator(SIZE).state_dict())
    psd = dict(PSPEncoder(n_styles).state_dict())
    return gsd, psd, "RANDOM initialisation: same shapes, not real weights"


def sub_generator_sd(gsd, size, dtype=None, keep_embedder=True):
    """State dict of Generator(size) taken from the 1024 one (same names and shapes up to `size`)."""
    with torch.device("meta"):
        keys = Generator(size).state_dict()
    out = {}
    for k, meta in keys.items():
        t = gsd[k]
        if k == "add_weight":
            t = t[:, : meta.shape[1]]
        if dtype is not None and t.is_floating_point() and not (keep_embedder and k.startswith("embedder.")):
            t = t.to(dtype)
        out[k] = t
    return out


def generator(gsd, size, device, dtype=None):
    """Generator(size) on `device`; synthesis/mapping weights in `dtype` (default: as stored, float32),
    the style encoder kept as is
    (shared with `gsd`, never copied: the generator benchmarks pass z_embed)."""
    sd = sub_generator_sd(gsd, size, dtype)
    g = from_state_dict(lambda: Generator(size), sd)
    if device.type != "cpu":
        for name, child in g.named_children():
            if name != "embedder":
                child.to(device)
        g.add_weight.data = g.add_weight.data.to(device)
    return g


# ------------------------------------------------------------------------------------------ sections


def gen_inputs(batch, device, dtype, seed=7):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 512, generator=g)
    ze = torch.randn(batch, 512, generator=g)
    return z.to(device, dtype), ze.to(device, dtype)


def bench_generator(rep, gsd, device, batches, runs, reduced):
    label, rdtype = reduced
    rep.add(f"## Generator {SIZE} px with a style (z_embed given, add_weight_index=6, stored noise)")
    rep.add()
    g32 = generator(gsd, SIZE, device)
    prepare_for_inference(g32)
    glow = prepare_for_inference(generator(gsd, SIZE, device, rdtype))
    flops1 = None
    rows = []
    for batch in batches:
        z, ze = gen_inputs(batch, device, torch.float32)

        def fast():
            return use_reference_ops(g32, False)([z], z_embed=ze, add_weight_index=6, randomize_noise=False)[0]

        def ref():
            return use_reference_ops(g32, True)([z], z_embed=ze, add_weight_index=6, randomize_noise=False)[0]

        def low():
            return glow([z.to(rdtype)], z_embed=ze.to(rdtype), add_weight_index=6, randomize_noise=False)[0]

        def ref_singles():  # the reference one image at a time, when a batched reference does not fit
            use_reference_ops(g32, True)
            return torch.cat(
                [
                    g32([z[i : i + 1]], z_embed=ze[i : i + 1], add_weight_index=6, randomize_noise=False)[0]
                    for i in range(batch)
                ]
            )

        if flops1 is None:
            zz, zze = z[:1], ze[:1]
            flops1 = count_flops(
                lambda: use_reference_ops(g32, False)([zz], z_embed=zze, add_weight_index=6, randomize_noise=False)
            )
        variants = {"reference fp32": ref, "fast fp32": fast, f"fast {label}": low}
        need = REFERENCE_MB_PER_IMAGE * batch
        why = None
        if need > MAX_REFERENCE_MB[0]:
            why = f"over --max-reference-gb {MAX_REFERENCE_MB[0] / 1024:g}"
        elif not memory_allows(device, need):
            why = f"{mem_available_mb() / 1024:.1f} GB available"
        if why:
            # the reference FIR (planes + im2col) needs ~4 GB per 1024 px image; never risk the OOM killer on
            # a shared machine: the reference runs the same images one at a time, in the same alternation
            if batch == batches[0] or not memory_allows(device, REFERENCE_MB_PER_IMAGE):
                raise SystemExit(f"the reference path does not fit in memory ({why}): nothing to compare with")
            variants["reference fp32"] = ref_singles
            SKIPPED.append(
                f"batched reference at batch {batch} (needs ~{need / 1024:.0f} GB, {why}): the "
                f"reference row runs the {batch} images one at a time"
            )
        res = alternate(variants, device, runs)
        release_freed_memory()
        t_fast, _, out_fast, pk_fast = res["fast fp32"]
        t_low, _, out_low, pk_low = res[f"fast {label}"]
        c_fast, c_low = CPU_TIMES["fast fp32"], CPU_TIMES[f"fast {label}"]
        fl = flops1 * batch
        t_ref, _, out_ref, pk_ref = res["reference fp32"]
        c_ref = CPU_TIMES["reference fp32"]
        ref_name = "reference fp32" + (" (one image at a time)" if variants["reference fp32"] is ref_singles else "")
        rows.append(
            [
                batch,
                ref_name,
                fmt_s(t_ref),
                fmt_s(t_ref / batch),
                "1.00",
                fmt_s(c_ref),
                "1.00",
                f"{fl / t_ref / 1e9:.0f}",
                f"{pk_ref:.0f}",
                "-",
            ]
        )
        rows.append(
            [
                batch,
                "fast fp32",
                fmt_s(t_fast),
                fmt_s(t_fast / batch),
                f"{t_ref / t_fast:.2f}",
                fmt_s(c_fast),
                f"{c_ref / c_fast:.2f}",
                f"{fl / t_fast / 1e9:.0f}",
                f"{pk_fast:.0f}",
                f"{rel_err(out_fast, out_ref):.1e} vs reference",
            ]
        )
        rows.append(
            [
                batch,
                f"fast {label}",
                fmt_s(t_low),
                fmt_s(t_low / batch),
                f"{t_ref / t_low:.2f}",
                fmt_s(c_low),
                f"{c_ref / c_low:.2f}",
                f"{fl / t_low / 1e9:.0f}",
                f"{pk_low:.0f}",
                f"{rel_err(out_low, out_fast):.1e} vs fast fp32",
            ]
        )
        del res, out_fast, out_low, out_ref
    rep.add(f"FLOPs per image: {flops1 / 1e9:.1f} GFLOP ({flops1 / 2e9:.1f} GMAC), torch.utils.flop_counter.")
    rep.add()
    rep.add(
        "Wall-clock seconds (median); CPU s = process CPU time summed over threads (less sensitive to other "
        "load on a shared machine; its ratio is a second estimate of the speed-up)."
    )
    rep.add()
    rep.table(
        [
            "batch",
            "path",
            "s / call",
            "s / image",
            "speed-up vs reference",
            "CPU s / call",
            "CPU-time ratio",
            "GFLOP/s",
            "peak RSS MB",
            "max rel. error",
        ],
        rows,
    )
    return g32, glow


def bench_sizes(rep, gsd, device, sizes, runs, reduced):
    label, rdtype = reduced
    rep.add("## Generator at other sizes (batch 1, z_embed given)")
    rep.add()
    rows = []
    for size in sizes:
        g = prepare_for_inference(generator(gsd, size, device))
        gl = prepare_for_inference(generator(gsd, size, device, rdtype))
        z, ze = gen_inputs(1, device, torch.float32, seed=size)
        call = dict(add_weight_index=6, randomize_noise=False)
        res = alternate(
            {
                "ref": lambda: use_reference_ops(g, True)([z], z_embed=ze, **call)[0],
                "fast": lambda: use_reference_ops(g, False)([z], z_embed=ze, **call)[0],
                "low": lambda: gl([z.to(rdtype)], z_embed=ze.to(rdtype), **call)[0],
            },
            device,
            runs,
        )
        (tr, _, o_r, _), (tf, _, o_f, _), (tl, _, o_l, _) = res["ref"], res["fast"], res["low"]
        rows.append(
            [
                size,
                fmt_s(tr),
                fmt_s(tf),
                f"{tr / tf:.2f}",
                fmt_s(tl),
                f"{tr / tl:.2f}",
                f"{rel_err(o_f, o_r):.1e}",
                f"{rel_err(o_l, o_f):.1e}",
            ]
        )
        del g, gl, res
        release_freed_memory()
    rep.table(
        [
            "size",
            "reference fp32 s",
            "fast fp32 s",
            "speed-up",
            f"fast {label} s",
            f"{label} speed-up",
            "fp32 error vs reference",
            f"{label} error vs fp32",
        ],
        rows,
    )


def test_image(device, seed, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    # smooth random image (a sum of a few random low-frequency patterns), like a photo more than noise
    low = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(-1, 1).to(device)


def bench_encoders(rep, gsd, psd, device, runs, reduced, quick):
    label, rdtype = reduced
    rep.add(f"## Encoders on a {SIZE}x{SIZE} image (batch 1)")
    rep.add()
    from blendgan.models.style_encoder import StyleEncoder

    emb_sd = {k[len("embedder.") :]: v for k, v in gsd.items() if k.startswith("embedder.")}
    se = from_state_dict(StyleEncoder, emb_sd).to(device)
    se_low = from_state_dict(StyleEncoder, {k: v.to(rdtype) for k, v in emb_sd.items()}).to(device)
    n_styles = psd["latent_avg"].shape[0]
    pe = from_state_dict(lambda: PSPEncoder(n_styles), psd).to(device)
    pe_low = from_state_dict(
        lambda: PSPEncoder(n_styles), {k: (v.to(rdtype) if v.is_floating_point() else v) for k, v in psd.items()}
    ).to(device)
    img = test_image(device, 3)
    rows = []
    for name, m, ml in [("style encoder (z_embed)", se, se_low), ("pSp encoder (codes)", pe, pe_low)]:
        flops = count_flops(lambda: m(img))
        res = alternate(
            {
                "ref": lambda: use_reference_ops(m, True)(img),
                "fast": lambda: use_reference_ops(m, False)(img),
                "low": lambda: ml(img.to(rdtype)),
            },
            device,
            runs,
        )
        (tr, _, o_r, _), (tf, _, o_f, pf), (tl, _, o_l, _) = res["ref"], res["fast"], res["low"]
        rows.append(
            [
                name,
                fmt_s(tr),
                fmt_s(tf),
                f"{tr / tf:.2f}",
                f"{flops / tf / 1e9:.0f}",
                fmt_s(tl),
                f"{tr / tl:.2f}",
                f"{flops / 1e9:.1f}",
                f"{pf:.0f}",
                f"{rel_err(o_f, o_r):.1e}",
                f"{rel_err(o_l, o_f):.1e}",
            ]
        )
    rep.table(
        [
            "model",
            "reference fp32 s",
            "fast fp32 s",
            "speed-up",
            "GFLOP/s",
            f"fast {label} s",
            f"{label} speed-up",
            "GFLOP",
            "peak RSS MB",
            "fp32 error vs reference",
            f"{label} error vs fp32",
        ],
        rows,
    )
    del se_low, pe_low
    if quick:
        return se, pe
    rep.add("### Style matrix (610304 x 512) stored in reduced precision, computed in fp32")
    rep.add()
    rows = []
    with torch.inference_mode():
        z_ref = se(img)
    for sdtype in (torch.float16, torch.bfloat16):
        m = from_state_dict(StyleEncoder, dict(emb_sd)).to(device)
        saved = set_style_matrix_dtype(m, sdtype)
        res = alternate({"fp32 storage": lambda: se(img), "reduced": lambda: m(img)}, device, runs)
        rows.append(
            [
                str(sdtype).replace("torch.", ""),
                f"{saved / 2**20:.0f}",
                fmt_s(res["fp32 storage"][0]),
                fmt_s(res["reduced"][0]),
                f"{rel_err(res['reduced'][2], z_ref):.1e}",
            ]
        )
        del m
    rep.table(["storage", "memory saved MB", "fp32-storage s", "reduced-storage s", "z_embed max rel. error"], rows)
    return se, pe


def folder_images(device, n_faces=4, n_styles=8):
    """4 face and 8 style images (uint8 BGR, 1024x1024): the bundled test images and flipped copies."""
    import cv2
    import numpy as np

    def load(folder, n, seed):
        paths = sorted((ROOT / "test_imgs" / folder).glob("*.jpg"))
        imgs = [cv2.imread(str(p)) for p in paths]
        imgs = [cv2.resize(im, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for im in imgs if im is not None]
        variants = imgs + [im[:, ::-1].copy() for im in imgs] + [im[::-1].copy() for im in imgs]
        rng = np.random.default_rng(seed)
        while len(variants) < n:
            variants.append(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        return variants[:n]

    return load("face_imgs", n_faces, 1), load("style_imgs", n_styles, 2)


def bench_end_to_end(rep, gsd, psd, g32, pe, device, runs, reduced):
    label, rdtype = reduced
    rep.add(f"## Folder style transfer, 4 faces x 8 styles at {SIZE}")
    rep.add()
    from blendgan.io import images

    faces, styles = folder_images(device)

    def original():
        # style_transfer_folder: for every (face, style) pair, encode both again; batch 1; reference ops
        use_reference_ops(g32, True)
        use_reference_ops(pe, True)
        out = []
        for f in faces:
            for s in styles:
                codes = pe(images.bgr_to_tensor(f).to(device))
                z = g32.embedder(images.bgr_to_tensor(s).to(device))
                out.append(g32([codes], input_is_latent=True, z_embed=z, add_weight_index=6, randomize_noise=False)[0])
        return torch.cat(out)

    from blendgan.pipeline import BlendGAN

    how = "blendgan.pipeline.BlendGAN (each face and style encoded once, generator batches of 4)"

    def fast_with(g, p, precision):
        def fast():
            use_reference_ops(g, False)
            use_reference_ops(p, False)
            bg = BlendGAN.from_models(g, p, device=str(device), precision=precision)
            codes = [bg.encode_face_bgr(f) for f in faces]
            zs = torch.cat([bg.embed_style_bgr(s) for s in styles])
            return torch.cat([bg.stylize(c, zs, add_weight_index=6) for c in codes])

        return fast

    # the reduced-precision pipeline gets its own models (the pipeline casts them in place)
    n_styles = psd["latent_avg"].shape[0]
    g_low = from_state_dict(lambda: Generator(SIZE), dict(gsd))
    p_low = from_state_dict(lambda: PSPEncoder(n_styles), dict(psd))
    variants = {
        "original": original,
        "fast fp32": fast_with(g32, pe, "fp32"),
        f"fast {label}": fast_with(g_low, p_low, label),
    }
    res = alternate(variants, device, runs, warmup=0, peak_in_runs=True)
    med = {n: r[0] for n, r in res.items()}
    cmed = {n: CPU_TIMES[n] for n in variants}
    outs = {n: r[2] for n, r in res.items()}
    peaks = {n: r[3] for n, r in res.items()}
    rep.add(
        f"Fast path: {how}. Median of {runs} alternating run(s) per variant; no separate warm-up (the "
        "sections above warmed up). Error: all 32 images against the original's."
    )
    rep.add()
    rows = []
    for name in variants:
        err = "-" if name == "original" else f"{rel_err(outs[name].float(), outs['original']):.1e}"
        desc = "original (re-encode per pair, reference ops, fp32, batch 1)" if name == "original" else name
        rows.append(
            [
                desc,
                fmt_s(med[name]),
                fmt_s(med[name] / 32),
                f"{med['original'] / med[name]:.2f}",
                fmt_s(cmed[name]),
                f"{cmed['original'] / cmed[name]:.2f}",
                f"{peaks[name]:.0f}",
                err,
            ]
        )
    rep.table(
        ["path", "s total", "s / image", "speed-up", "CPU s", "CPU-time ratio", "peak RSS MB", "max rel. error"], rows
    )
    del g_low, p_low, outs, res
    release_freed_memory()


def bench_profile(rep, g32, glow, device, reduced):
    label, rdtype = reduced
    rep.add(f"## Where the time goes: fast path, generator {SIZE} px, batch 1 (torch.profiler, self time)")
    rep.add()
    for name, g, dtype in [("fp32", g32, torch.float32), (label, glow, rdtype)]:
        z, ze = gen_inputs(1, device, dtype)
        use_reference_ops(g, False)
        total, by_kind, top = profile_self_time(
            lambda: g([z], z_embed=ze, add_weight_index=6, randomize_noise=False), device
        )
        rep.add(
            f"### {name}: {total / 1e3:.0f} ms of {'GPU' if device.type == 'cuda' else 'CPU'} op time "
            "(summed over threads' op spans, so not wall time)"
        )
        rep.add()
        rep.table(["kind", "ms", "%"], [[k, f"{v / 1e3:.0f}", f"{100 * v / total:.1f}"] for k, v in by_kind])
        rep.table(
            ["op", "input shapes", "calls", "ms", "%"],
            [[key, shapes, calls, f"{t / 1e3:.1f}", f"{100 * t / total:.1f}"] for key, shapes, calls, t in top],
        )


# ------------------------------------------------------------------------------------------ main


def run(args):
    _import_torch()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    if args.threads:
        torch.set_num_threads(args.threads)
    reuse = not args.return_freed_memory
    MAX_REFERENCE_MB[0] = args.max_reference_gb * 1024 if device.type == "cpu" else float("inf")
    label, dtype_name = REDUCED["cuda" if device.type == "cuda" else "cpu"]
    reduced = (label, getattr(torch, dtype_name))
    batches = [int(b) for b in (args.batches or ("1,8" if device.type == "cuda" else "1,4")).split(",")]
    if args.quick:
        batches = batches[:1]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rep = Report()
    started = time.time()
    rep.add(f"# Fast path vs reference path ({device.type}, {datetime.date.today().isoformat()})")
    rep.add()
    rep.add("Command: `python benchmarks/bench.py " + " ".join(sys.argv[1:]) + "`")
    rep.add()
    info = machine_info(device, reuse)
    rep.table(["", ""], [[k, v] for k, v in info.items()])

    rep.add("## Machine ceiling (same run)")
    rep.add()
    dts = [("fp32", torch.float32), reduced]
    rep.table(
        ["dtype", "matmul 4096^3 GFLOP/s", "conv 512->512 3x3 @64x64 GFLOP/s"],
        [[d, f"{m:.0f}", f"{c:.0f}"] for d, m, c in ceiling(device, dts)],
    )
    rep.add(
        "Wall-clock times on a shared machine move with other load; every comparison below alternates its "
        "variants run by run, and the CPU-time ratios are a second, load-robust estimate."
    )
    rep.add()

    t0 = time.time()
    gsd, psd, desc = build_models(args)
    if reuse:  # after the one-off weight building, whose temporaries should go back to the OS
        reuse_freed_memory()  # see blendgan/allocator.py
    rep.add(
        f"Weights: {desc}; built in {time.time() - t0:.0f} s. RSS after building: {rss_mb():.0f} MB "
        "(peak RSS columns below include these weights)."
    )
    rep.add()
    g32, glow = bench_generator(rep, gsd, device, batches, args.runs, reduced)
    bench_sizes(rep, gsd, device, sizes, args.runs, reduced)
    bench_profile(rep, g32, glow, device, reduced)
    del glow
    se, pe = bench_encoders(rep, gsd, psd, device, args.runs, reduced, args.quick)
    del se
    if not args.quick:
        need = REFERENCE_MB_PER_IMAGE + 1500  # the original's batch-1 working set + the bf16 model copies
        if memory_allows(device, need):
            bench_end_to_end(rep, gsd, psd, g32, pe, device, args.e2e_runs, reduced)
        else:
            SKIPPED.append(
                f"end-to-end folder transfer: needs ~{need / 1024:.0f} GB, {mem_available_mb() / 1024:.1f} GB available"
            )
    end_ceiling = ceiling(device, dts)
    rep.add(
        "Machine ceiling again at the end (a drop means other load on the machine during the run): "
        + ", ".join(f"{d} matmul {m:.0f} / conv {c:.0f} GFLOP/s" for d, m, c in end_ceiling)
        + "."
    )
    rep.add()
    if SKIPPED:
        rep.add("Skipped (memory): " + "; ".join(SKIPPED) + ".")
        rep.add()
    rep.add(
        f"Total benchmark time {time.time() - started:.0f} s. Times are wall clock; on a shared machine compare "
        "ratios (alternating runs) rather than absolute seconds."
    )
    rep.add()
    rep.add(finish_line())
    if not args.no_write:
        rep.write(args.out or RESULTS / f"{device.type}-{datetime.datetime.now().strftime('%Y%m%d-%H%M')}.md")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
