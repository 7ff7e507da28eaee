"""One command for a lent GPU machine: CUDA vs CPU parity of every model and of a training step, in fp32, bf16
and fp16, and timings at 1024 px. The CUDA path has no CI (no GPU there); run this whenever a machine is lent.

    python benchmarks/gpu_check.py                       # everything, on cuda (a few minutes)
    python benchmarks/gpu_check.py --device cpu --size 64 --quick   # a dry run of the script itself on the CPU

Parity: the same random weights and inputs on the CPU in float32 (the reference) and on the device; the figure is
max |device - cpu| / max |cpu| of each output. TF32 is switched off for the fp32 rows, so fp32 must agree to
~1e-5; bf16 and fp16 run through the pipeline's real mixed-precision path and are reported, with a loose bound.
Training: two steps of `blendgan train generator` (64 px, narrow) and two of `blendgan fit-style` (stage 1 then 2)
on both devices from the same seed; their logged losses are compared. Timings: the pipeline's stylize (and
encode) per image at --size on the device, median of 5 after a warm-up, per precision. Prints a Markdown report
(give it in the issue's note) and exits 1 when an fp32 parity fails.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FP32_BOUND = 1e-4
LOW_BOUND = {"bf16": 0.1, "fp16": 0.05}


def rel(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def models_parity(device, size, precisions, lines):
    import torch

    from blendgan.models import Generator, PSPEncoder, n_latent_for_size
    from blendgan.models.discriminator import Discriminator, ProjectionDiscriminator
    from blendgan.pipeline import BlendGAN

    torch.manual_seed(0)
    n_latent = n_latent_for_size(size)
    g, psp = Generator(size).eval(), PSPEncoder(n_latent).eval()
    face = torch.rand(1, 3, size, size) * 2 - 1
    style = torch.rand(1, 3, 256, 256) * 2 - 1
    codes = torch.randn(1, n_latent, 512)
    with torch.no_grad():
        ref = {
            "generator": g(
                [codes], input_is_latent=True, randomize_noise=False, z_embed=torch.randn(1, 512), add_weight_index=6
            )[0]
        }
    z_ref = torch.randn(1, 512)
    ok = True
    lines += [
        "",
        f"## Models: {device} vs cpu (fp32 reference), {size} px",
        "",
        "| model | " + " | ".join(precisions) + " |",
        "| --- |" + " --- |" * len(precisions),
    ]
    results = {}
    for precision in precisions:
        import copy

        cpu = BlendGAN(copy.deepcopy(g), copy.deepcopy(psp), device="cpu", precision="fp32")
        dev = BlendGAN(copy.deepcopy(g), copy.deepcopy(psp), device=device, precision=precision)
        pairs = {
            "generator (stylize)": (dev.stylize(codes, z_ref), cpu.stylize(codes, z_ref)),
            "pSp encoder": (dev.psp_encoder(dev._to_model(face)).float(), cpu.psp_encoder(face)),
            "style encoder": (dev.style_encoder(dev._to_model(style)).float(), cpu.style_encoder(style)),
        }
        for name, (a, b) in pairs.items():
            results.setdefault(name, {})[precision] = rel(a, b)
        del cpu, dev
    for cls, name in ((Discriminator, "discriminator"), (ProjectionDiscriminator, "projection discriminator")):
        torch.manual_seed(1)
        d = cls(size).eval()
        x = ref["generator"].float()
        extra = [] if cls is Discriminator else [torch.randn(1, 512, generator=torch.Generator().manual_seed(2))]
        with torch.no_grad():
            want = d(x, *extra)
            dd = d.to(device)
            for precision in precisions:
                dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
                cast = (
                    torch.autocast(device_type=torch.device(device).type, dtype=dtype)
                    if precision != "fp32"
                    else torch.autocast(device_type="cpu", enabled=False)
                )
                with cast:
                    got = dd(x.to(device), *[e.to(device) for e in extra])
                results.setdefault(name, {})[precision] = rel(got.float(), want)
    for name, row in results.items():
        cells = []
        for p in precisions:
            bound = FP32_BOUND if p == "fp32" else LOW_BOUND[p]
            good = row[p] <= bound
            ok &= good or p != "fp32"
            cells.append(f"{row[p]:.1e}{'' if good else ' FAIL'}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return ok


def timings(device, size, precisions, lines, runs=5):
    import torch

    from blendgan.models import Generator, PSPEncoder, n_latent_for_size
    from blendgan.pipeline import BlendGAN

    lines += [
        "",
        f"## Timings on {device}, {size} px (median of {runs}, seconds per image)",
        "",
        "| precision | stylize | pSp encode | peak GPU memory |",
        "| --- | --- | --- | --- |",
    ]
    for precision in precisions:
        torch.manual_seed(0)
        bg = BlendGAN(Generator(size), PSPEncoder(n_latent_for_size(size)), device=device, precision=precision)
        codes, z = torch.randn(1, bg.n_latent, 512), torch.randn(1, 512)
        face = (torch.rand(1, 3, size, size) * 255).byte()[0].permute(1, 2, 0).numpy()

        def sync():
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize()

        def timed(fn):
            fn()
            sync()
            out = []
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                sync()
                out.append(time.perf_counter() - t0)
            return statistics.median(out)

        if torch.device(device).type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t_gen = timed(lambda: bg.stylize(codes, z))
        t_enc = timed(lambda: (bg.clear_caches(), bg.encode_face_bgr(face)))
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.device(device).type == "cuda" else float("nan")
        lines.append(f"| {precision} | {t_gen:.3f} | {t_enc:.3f} | {peak:.1f} GiB |")
        del bg


def make_data(root):
    import cv2

    faces, styles = root / "faces", root / "styles"
    for folder, src in ((faces, ROOT / "test_imgs/face_imgs"), (styles, ROOT / "test_imgs/style_imgs")):
        folder.mkdir(parents=True, exist_ok=True)
        for p in sorted(src.glob("*.jpg")):
            cv2.imwrite(
                str(folder / f"{p.stem}.png"), cv2.resize(cv2.imread(str(p)), (64, 64), interpolation=cv2.INTER_AREA)
            )
    return faces, styles


def training_parity(device, lines):
    """Two steps of the generator trainer and of fit-style on cpu and on the device; their logged losses."""
    import torch

    from blendgan.models import Generator, PSPEncoder, StyleEncoder, n_latent_for_size
    from blendgan.training.config import FitStyleConfig, GeneratorConfig
    from blendgan.training.fit_style_loop import fit_style
    from blendgan.training.generator_loop import train_generator

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        faces, styles = make_data(tmp)
        torch.manual_seed(3)
        se = tmp / "style_encoder.pt"
        torch.save({"state_dict": StyleEncoder().state_dict()}, se)
        torch.manual_seed(4)
        g = Generator(64)
        ck = tmp / "blendgan_64.pt"
        torch.save({"g_ema": g.state_dict(), "latent_avg": torch.zeros(1, 512)}, ck)
        enc = PSPEncoder(n_latent_for_size(64)).state_dict()
        psp = tmp / "psp_64.pt"
        torch.save(
            {"state_dict": {k: v for k, v in enc.items() if k.startswith("encoder.")}, "latent_avg": enc["latent_avg"]},
            psp,
        )
        logs = {}
        for dev in ("cpu", device):
            out = tmp / f"gen_{dev.replace(':', '_')}"
            train_generator(
                GeneratorConfig(
                    faces=str(faces),
                    styles=str(styles),
                    style_encoder_ckpt=str(se),
                    size=64,
                    max_channels=16,
                    iters=2,
                    batch=2,
                    log_every=1,
                    r1=1.0,
                    d_reg_every=2,
                    g_reg_every=2,
                    mbstd_group=2,
                    sample_every=100,
                    snapshot_every=100,
                    device=dev,
                    outdir=str(out),
                    progress=False,
                )
            )
            fit = tmp / f"fit_{dev.replace(':', '_')}"
            fit_style(
                FitStyleConfig(
                    references=[str(sorted(styles.iterdir())[0])],
                    ckpt=str(ck),
                    psp_encoder_ckpt=str(psp),
                    iters=2,
                    code_steps=1,
                    batch=1,
                    log_every=1,
                    sample_every=100,
                    snapshot_every=100,
                    sheet_faces=str(faces),
                    device=dev,
                    outdir=str(fit),
                    progress=False,
                )
            )
            logs[dev] = {
                name: [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]
                for name, folder in (("train generator", out), ("fit-style", fit))
            }
    lines += [
        "",
        f"## Training steps: {device} vs cpu (fp32), logged losses",
        "",
        "| run | step | loss | cpu | " + device + " | rel |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    skip = {"step", "kimg", "images_per_s", "elapsed_s", "stage"}
    for run in ("train generator", "fit-style"):
        for a, b in zip(logs["cpu"][run], logs[device][run]):
            for key in sorted(k for k in a if k not in skip and isinstance(a[k], (int, float))):
                r = abs(a[key] - b[key]) / max(abs(a[key]), 1e-12)
                good = r < 1e-3
                ok &= good
                lines.append(
                    f"| {run} | {a['step']} | {key} | {a[key]:.6g} | {b[key]:.6g} | {r:.1e}{'' if good else ' FAIL'} |"
                )
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--quick", action="store_true", help="fp32 only and no training parity (a dry run on the CPU)")
    args = p.parse_args()
    import torch

    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("no CUDA device is visible to PyTorch: nothing to check (run this on the lent GPU machine)")
            return 0
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        name = torch.cuda.get_device_name()
    else:
        name = args.device
    precisions = ["fp32"] if args.quick else ["fp32", "bf16"] + (["fp16"] if args.device.startswith("cuda") else [])
    lines = [f"# gpu_check: {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}"]
    t0 = time.perf_counter()
    ok = models_parity(args.device, args.size, precisions, lines)
    timings(args.device, args.size, precisions, lines, runs=1 if args.quick else 5)
    if not args.quick:
        ok &= training_parity(args.device, lines)
    lines += ["", f"{'all fp32 parities hold' if ok else 'PARITY FAILED'}; {time.perf_counter() - t0:.0f} s"]
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("BLENDGAN_OFFLINE", "1")
    sys.exit(main())
