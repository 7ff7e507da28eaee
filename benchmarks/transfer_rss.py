"""Peak resident memory of folder style transfer at 1024 px, and where it goes.

    python benchmarks/transfer_rss.py                  # 2 faces x 3 styles, recipe weights, fp32
    python benchmarks/transfer_rss.py --precision bf16

Runs `blendgan transfer` in a child process under GNU time (`/usr/bin/time -v`, else the child's
getrusage) for its peak RSS, then the same job in a second child that records RSS after each phase
(models loaded, style codes made, each face encoded, each batch generated) and the peak, so the note
can say what is resident (weights, encoders) and what the work adds (activations).

Weights: the conformance recipe (tests/helpers.py) written once as .pt files into --work; faces and
styles: the bundled test images.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = 1024


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def make_inputs(work, n_faces, n_styles):
    """Recipe checkpoints (cached in `work`) and folders of n_faces / n_styles test images."""
    sys.path.insert(0, str(ROOT / "tests"))
    import helpers

    work.mkdir(parents=True, exist_ok=True)
    ckpt, psp = work / f"blendgan_{SIZE}.pt", work / f"psp_encoder_{SIZE}.pt"
    if not ckpt.exists():
        helpers.save(helpers.blendgan_checkpoint(helpers.generator_state_dict(SIZE)), ckpt)
    if not psp.exists():
        helpers.save(helpers.psp_checkpoint(*helpers.psp_state_dict(SIZE)), psp)
    faces, styles = work / "faces", work / "styles"
    for folder, src, n in [(faces, "face_imgs", n_faces), (styles, "style_imgs", n_styles)]:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for p in sorted((ROOT / "test_imgs" / src).glob("*.jpg"))[:n]:
            shutil.copy(p, folder / p.name)
    return ckpt, psp, faces, styles


def command_line(ckpt, psp, faces, styles, outdir, precision):
    return [
        "-m",
        "blendgan",
        "transfer",
        "--size",
        str(SIZE),
        "--ckpt",
        str(ckpt),
        "--psp_encoder_ckpt",
        str(psp),
        "--input_img_path",
        str(faces),
        "--style_img_path",
        str(styles),
        "--outdir",
        str(outdir),
        "--precision",
        precision,
        "--device",
        "cpu",
        "--no_download",
    ]


def peak_of_command(args):
    """(peak RSS MB, wall s, how measured) of `python args...` in a child process."""
    t0 = time.time()
    gnu_time = Path("/usr/bin/time")
    if gnu_time.exists():
        res = subprocess.run([str(gnu_time), "-v", sys.executable, *args], env=_env(), capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(res.stderr[-3000:])
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
        return kb / 1024, time.time() - t0, "GNU time -v"
    res = subprocess.run([sys.executable, *args], env=_env(), capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.time() - t0, "getrusage (children)"


# ------------------------------------------------------------------------------------------ phases (child)


def _status_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def phases_child(argv):
    """Run the transfer command in this process with RSS recorded after each pipeline call."""
    from blendgan import pipeline
    from blendgan.cli import main

    log = []

    def mark(name):
        log.append({"phase": name, "rss_mb": _status_mb("VmRSS"), "peak_mb": _status_mb("VmHWM")})

    def wrap(cls, attr, name):
        fn = getattr(cls, attr)

        def wrapped(self, *a, **k):
            if not log:
                mark("models loaded")
            out = fn(self, *a, **k)
            mark(name)
            return out

        setattr(cls, attr, wrapped)

    wrap(pipeline.BlendGAN, "embed_style_bgr", "style embedded")
    wrap(pipeline.BlendGAN, "encode_face_bgr", "face encoded")
    wrap(pipeline.BlendGAN, "stylize", "batch generated")
    rc = main(argv)
    mark("end")
    print("PHASES " + json.dumps(log))
    return rc


def original_child(ckpt, psp, faces, styles):
    """The original style_transfer_folder's way, for its peak RSS: whole checkpoints read into memory
    (torch.load, no memory map), reference ops, face and style encoded again for every pair, batch 1."""
    import torch

    from blendgan import Generator, PSPEncoder
    from blendgan.io import images
    from blendgan.models import use_reference_ops
    from blendgan.models.loading import from_state_dict

    g_sd = torch.load(ckpt, map_location="cpu", weights_only=True)["g_ema"]
    p_ck = torch.load(psp, map_location="cpu", weights_only=True)
    p_sd = {**p_ck["state_dict"], "latent_avg": p_ck["latent_avg"]}
    g = use_reference_ops(from_state_dict(lambda: Generator(SIZE), g_sd), True)
    pe = use_reference_ops(from_state_dict(lambda: PSPEncoder(p_ck["latent_avg"].shape[0]), p_sd), True)
    with torch.inference_mode():
        for f in sorted(Path(faces).iterdir()):
            for s in sorted(Path(styles).iterdir()):
                codes = pe(images.bgr_to_tensor(images.read_image_bgr(f)))
                z = g.embedder(images.bgr_to_tensor(images.read_image_bgr(s)))
                g([codes], input_is_latent=True, z_embed=z, add_weight_index=6, randomize_noise=False)
    return 0


def run(args):
    ckpt, psp, faces, styles = make_inputs(args.work, args.faces, args.styles)
    out = args.work / "out"
    shutil.rmtree(out, ignore_errors=True)
    load0 = os.getloadavg()
    cmd = command_line(ckpt, psp, faces, styles, out, args.precision)
    peak, wall, how = peak_of_command(cmd)
    shutil.rmtree(out, ignore_errors=True)
    res = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--phases-child", "--", *cmd[2:]],
        env=_env(),
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    phases = json.loads(res.stdout.split("PHASES ", 1)[1])
    lines = [
        f"## Folder transfer at {SIZE} px, {args.faces} faces x {args.styles} styles, {args.precision}, recipe weights",
        "",
        f"Command: `python benchmarks/transfer_rss.py {' '.join(sys.argv[1:])}` (load average "
        f"{load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end)",
        "",
        f"Peak RSS of `blendgan transfer` ({how}): **{peak:.0f} MB** ({wall:.0f} s wall)",
        "",
        "| after | RSS MB | peak so far MB |",
        "| --- | ---: | ---: |",
    ]
    last = None
    for p in phases:
        key = (p["phase"], round(p["rss_mb"]), round(p["peak_mb"]))
        if p["phase"] != "end" and last and last[0] == p["phase"] and abs(last[1] - key[1]) < 20:
            continue  # repeated phases that change nothing
        lines.append(f"| {p['phase']} | {p['rss_mb']:.0f} | {p['peak_mb']:.0f} |")
        last = key
    if args.original:
        o_peak, o_wall, o_how = peak_of_command(
            [str(Path(__file__).resolve()), "--original-child", str(ckpt), str(psp), str(faces), str(styles)]
        )
        lines += [
            "",
            f"The original's way (whole checkpoints loaded, reference ops, re-encode per pair; {o_how}): "
            f"**{o_peak:.0f} MB** ({o_wall:.0f} s wall); ours / original = {peak / o_peak:.0%}",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--phases-child"]:
        return phases_child(argv[2:])
    if argv[:1] == ["--original-child"]:
        return original_child(*argv[1:5])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "blendgan-transfer-rss",
        help="folder for the recipe checkpoints, inputs and outputs (default: TMPDIR/blendgan-transfer-rss)",
    )
    parser.add_argument("--faces", type=int, default=2, help="number of face images (default 2)")
    parser.add_argument("--styles", type=int, default=3, help="number of style images (default 3)")
    parser.add_argument("--precision", default="fp32", help="fp32 (default) or bf16")
    parser.add_argument(
        "--original",
        action="store_true",
        help="also measure the original's way (re-encode per pair, reference ops; slow)",
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to append the table to")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
