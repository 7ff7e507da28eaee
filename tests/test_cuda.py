"""CUDA against the CPU: every model (generator, pSp encoder, style encoder, both discriminators) in fp32, bf16 and
fp16, and two steps of each trainer (generator, fit-style). The CUDA path has no CI machine with a GPU, so this
module is what a lent GPU machine runs (docs/development.md):

    pytest -m cuda tests/test_cuda.py && python benchmarks/gpu_timings.py

Without a CUDA device every test here skips. The same tests run CPU against CPU with
BLENDGAN_PARITY_DEVICE=cpu (tests/test_gpu_timings.py does so at 64 px, so the module keeps working between loans).

The reference is the CPU in float32 on the same random weights and inputs; the figure is max |device - cpu| /
max |cpu|. TF32 is switched off, so fp32 must agree to 1e-4; bf16 and fp16 run the pipeline's real
mixed-precision path (autocast for the discriminators) and get loose bounds.
"""

import copy
import json
import os
from pathlib import Path

import pytest
import torch

from blendgan.models import Generator, PSPEncoder, n_latent_for_size
from blendgan.models.discriminator import Discriminator, ProjectionDiscriminator
from blendgan.pipeline import BlendGAN

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("BLENDGAN_PARITY_DEVICE", "cuda")
SIZE = int(os.environ.get("BLENDGAN_PARITY_SIZE", "1024"))
BOUND = {"fp32": 1e-4, "bf16": 0.1, "fp16": 0.05}
DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODELS = ["generator (stylize)", "pSp encoder", "style encoder", "discriminator", "projection discriminator"]

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device"),
]


def rel(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.fixture(scope="module", autouse=True)
def no_tf32():
    """fp32 on the GPU means fp32: TF32 matmuls and convolutions keep only 10 bits of mantissa."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def case():
    """Random models of the real shapes at SIZE, inputs, and the CPU fp32 outputs of every model."""
    torch.manual_seed(0)
    n_latent = n_latent_for_size(SIZE)
    g, psp = Generator(SIZE).eval(), PSPEncoder(n_latent).eval()
    inputs = {
        "face": torch.rand(1, 3, SIZE, SIZE) * 2 - 1,
        "style": torch.rand(1, 3, 256, 256) * 2 - 1,
        "codes": torch.randn(1, n_latent, 512),
        "z": torch.randn(1, 512),
        "z_s": torch.randn(1, 512),
    }
    torch.manual_seed(1)
    discriminators = {"discriminator": Discriminator(SIZE).eval(), "projection discriminator": None}
    torch.manual_seed(2)
    discriminators["projection discriminator"] = ProjectionDiscriminator(SIZE).eval()
    cpu = BlendGAN(copy.deepcopy(g), copy.deepcopy(psp), device="cpu", precision="fp32")
    with torch.no_grad():
        image = cpu.stylize(inputs["codes"], inputs["z"])
        want = {
            "generator (stylize)": image,
            "pSp encoder": cpu.psp_encoder(inputs["face"]),
            "style encoder": cpu.style_encoder(inputs["style"]),
            "discriminator": discriminators["discriminator"](image),
            "projection discriminator": discriminators["projection discriminator"](image, inputs["z_s"]),
        }
    del cpu
    return {"models": (g, psp), "discriminators": discriminators, "inputs": {**inputs, "image": image}, "want": want}


def device_outputs(case, precision):
    """Every model's output on DEVICE at `precision` (the pipeline's path; autocast for the discriminators)."""
    g, psp = case["models"]
    x = case["inputs"]
    bg = BlendGAN(copy.deepcopy(g), copy.deepcopy(psp), device=DEVICE, precision=precision)
    with torch.no_grad():
        got = {
            "generator (stylize)": bg.stylize(x["codes"], x["z"]),
            "pSp encoder": bg.psp_encoder(x["face"].to(bg.device, bg.dtype)).float(),
            "style encoder": bg.style_encoder(x["style"].to(bg.device, bg.dtype)).float(),
        }
    del bg
    device_type = torch.device(DEVICE).type
    autocast = torch.autocast(device_type=device_type, dtype=DTYPE[precision], enabled=precision != "fp32")
    image, z_s = x["image"].to(DEVICE), x["z_s"].to(DEVICE)
    with torch.no_grad(), autocast:
        for name, d in case["discriminators"].items():
            d = copy.deepcopy(d).to(DEVICE)
            got[name] = (d(image) if name == "discriminator" else d(image, z_s)).float()
    return got


@pytest.fixture(scope="module")
def outputs(case):
    """{precision: {model: output}}, made once per precision."""
    made = {}

    def get(precision):
        if precision not in made:
            made[precision] = device_outputs(case, precision)
        return made[precision]

    return get


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("model", MODELS)
def test_model_matches_the_cpu(case, outputs, model, precision):
    if precision != "fp32" and not DEVICE.startswith("cuda"):
        pytest.skip("reduced precision is compared on the GPU (on the CPU bf16 is the CPU's own path)")
    err = rel(outputs(precision)[model], case["want"][model])
    assert err <= BOUND[precision], f"{model} on {DEVICE} in {precision}: {err:.2e} from the CPU's fp32"


def make_training_files(root, tiny_weights):
    """64 px face and style folders from the bundled images; the tests' narrow 64 px checkpoints (the trainers read
    the widths from the files; the real widths are what the model tests above compare)."""
    import cv2

    faces, styles = root / "faces", root / "styles"
    for folder, src in ((faces, ROOT / "test_imgs/face_imgs"), (styles, ROOT / "test_imgs/style_imgs")):
        folder.mkdir(parents=True, exist_ok=True)
        for p in sorted(src.glob("*.jpg")):
            small = cv2.resize(cv2.imread(str(p)), (64, 64), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(folder / f"{p.stem}.png"), small)
    ckpt = tiny_weights["blendgan"]
    return {"faces": faces, "styles": styles, "style_encoder": ckpt, "ckpt": ckpt, "psp": tiny_weights["psp_encoder"]}


def train_both(files, device, out):
    """Two logged steps of `blendgan train generator` and of `blendgan fit-style` on `device`: their logs."""
    from blendgan.training.config import FitStyleConfig, GeneratorConfig
    from blendgan.training.fit_style_loop import fit_style
    from blendgan.training.generator_loop import train_generator

    rare = dict(sample_every=100, snapshot_every=100, log_every=1, progress=False, device=device)
    train_generator(
        GeneratorConfig(
            faces=str(files["faces"]),
            styles=str(files["styles"]),
            style_encoder_ckpt=str(files["style_encoder"]),
            size=64,
            max_channels=16,
            iters=2,
            batch=2,
            r1=1.0,
            d_reg_every=2,
            g_reg_every=2,
            mbstd_group=2,
            outdir=str(out / "generator"),
            **rare,
        )
    )
    fit_style(
        FitStyleConfig(
            references=[str(sorted(files["styles"].iterdir())[0])],
            ckpt=str(files["ckpt"]),
            psp_encoder_ckpt=str(files["psp"]),
            iters=2,
            code_steps=1,
            batch=1,
            sheet_faces=str(files["faces"]),
            outdir=str(out / "fit"),
            **rare,
        )
    )
    return {
        name: [json.loads(line) for line in (out / name / "log.jsonl").read_text().splitlines()]
        for name in ("generator", "fit")
    }


def test_training_steps_match_the_cpu(tiny_weights, tmp_path, monkeypatch):
    """The same seed gives the same logged losses (to 1e-3) on the device as on the CPU, for both trainers."""
    monkeypatch.setenv("BLENDGAN_OFFLINE", "1")
    files = make_training_files(tmp_path, tiny_weights)
    cpu, dev = (train_both(files, device, tmp_path / f"run_{i}") for i, device in enumerate(("cpu", DEVICE)))
    not_losses = {"step", "kimg", "images_per_s", "elapsed_s", "stage"}
    compared = 0
    for run in ("generator", "fit"):
        assert len(cpu[run]) == len(dev[run]) >= 2
        for a, b in zip(cpu[run], dev[run]):
            for key in sorted(k for k in a if k not in not_losses and isinstance(a[k], (int, float))):
                err = abs(a[key] - b[key]) / max(abs(a[key]), 1e-12)
                assert err < 1e-3, f"{run} step {a['step']} {key}: cpu {a[key]:.6g}, {DEVICE} {b[key]:.6g}"
                compared += 1
    assert compared >= 4
