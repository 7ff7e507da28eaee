"""`blendgan fit-style` (issue 26): a style code (stage 1) and a low-rank adapter (stage 2) fitted to a reference,
and both files used by the commands, the pipeline, the ONNX export and runner.

One fit per module on recipe weights at 64 px (2 steps of each stage); the properties are those that could break:
the losses fall, the files reproduce what was fitted, scale 0 is the base model, a file of another base is
refused, and a fit killed mid-run resumes to the uninterrupted result.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from blendgan.fitting import adapter as adapter_mod
from blendgan.fitting.style_code import read_style_code
from blendgan.io import images
from blendgan.losses.style_fit import StyleFitLoss
from blendgan.pipeline import BlendGAN
from blendgan.weights import safetensors_file

from helpers import run_cli

# a fit is a few minutes of optimisation even at 64 px: the module runs in `make test` (CI), not in test-fast
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
REF = ROOT / "test_imgs" / "style_imgs" / "cartoon_astronaut.jpg"
FIT = [
    "--iters",
    "4",
    "--code_steps",
    "2",
    "--batch",
    "1",
    "--log_every",
    "1",
    "--snapshot_every",
    "2",
    "--sample_every",
    "4",
    "--no_progress",
]


def fit_argv(ck, run):
    return [
        "fit-style",
        str(REF),
        "--outdir",
        str(run),
        "--ckpt",
        str(ck["blendgan"]),
        "--psp_encoder_ckpt",
        str(ck["psp_encoder"]),
        *FIT,
    ]


@pytest.fixture(scope="module")
def fitted(recipe_checkpoints, tmp_path_factory):
    ck = recipe_checkpoints(SIZE, tiny=True)
    run = tmp_path_factory.mktemp("fit") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code, err = run_cli(fit_argv(ck, run))
    assert code == 0, err
    return {
        "run": run,
        "ckpt": ck,
        "stdout": out.getvalue(),
        "code": run / "style_code.safetensors",
        "adapter": run / "adapter.safetensors",
    }


def pipeline(fitted, *adapters):
    ck = fitted["ckpt"]
    return BlendGAN.from_checkpoints(ck["blendgan"], ck["psp_encoder"], device="cpu", adapters=adapters)


def reference_loss(bg, z):
    """The fit's loss (perceptual + style) of the reference's own face stylized with z, against the reference."""
    ref = images.resize_square(images.read_image_bgr(REF), SIZE)
    image = bg.stylize(bg.encode_face_bgr(ref), z, add_weight_index=6)
    loss = StyleFitLoss(bg.generator.embedder.embedder.feature_extractor.vgg_layers)
    with torch.no_grad():
        parts = loss(image.float(), images.bgr_to_tensor(ref))
    return float(parts["perceptual"] + parts["style"])


def log(run):
    return [json.loads(line) for line in (Path(run) / "log.jsonl").read_text().splitlines()]


def test_stage_one_moves_the_code_and_its_loss_falls(fitted):
    rows = [r for r in log(fitted["run"]) if r["stage"] == 1]
    assert len(rows) == 2 and rows[-1]["loss"] < rows[0]["loss"]
    bg = pipeline(fitted)
    z_fit = bg.read_style(fitted["code"])[1]
    z_encoder = bg.embed_style_bgr(images.resize_square(images.read_image_bgr(REF), SIZE))
    assert not torch.equal(z_fit.cpu(), z_encoder.cpu())
    assert reference_loss(bg, z_fit) < reference_loss(bg, z_encoder)


def test_the_adapter_lowers_the_loss_to_the_reference(fitted):
    z = pipeline(fitted).read_style(fitted["code"])[1]
    base = reference_loss(pipeline(fitted), z)
    adapted = reference_loss(pipeline(fitted, (fitted["adapter"], 1.0)), z)
    assert adapted < base


def test_scale_zero_is_the_base_model_exactly(fitted):
    codes = torch.randn(1, 10, 512, generator=torch.Generator().manual_seed(0))
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(1))
    base = pipeline(fitted).stylize(codes, z)
    assert torch.equal(pipeline(fitted, (fitted["adapter"], 0.0)).stylize(codes, z), base)
    assert not torch.equal(pipeline(fitted, (fitted["adapter"], 1.0)).stylize(codes, z), base)


def test_the_files_and_their_sizes_are_reported(fitted):
    for key in ("code", "adapter"):
        f = fitted[key]
        assert f"{f} ({f.stat().st_size / 1e6:.2f} MB)" in fitted["stdout"]
    meta = safetensors_file.metadata(fitted["adapter"])
    assert meta["base_checkpoint"] == Path(fitted["ckpt"]["blendgan"]).name and meta["rank"] == "4"
    assert meta["steps"] == "2" and len(json.loads(meta["reference_sha256"])) == 1
    assert json.loads(meta["layers"]) == adapter_mod.adaptable_layers(pipeline(fitted).generator)
    snapshot = torch.load(fitted["run"] / "checkpoints" / "000004.pt", weights_only=True)
    stored, _ = safetensors_file.read(fitted["adapter"])
    assert all(torch.equal(stored[k], snapshot["adapter"][k]) for k in stored)
    assert (fitted["run"] / "samples" / "000004.jpg").is_file()
    taken = json.loads((fitted["run"] / "report.json").read_text())["style_taken"]
    assert set(taken) == {"base", "code", "code+adapter"} and all(-1 <= v <= 1 for v in taken.values())
    assert "style taken" in fitted["stdout"] and f"code+adapter {taken['code+adapter']:.3f}" in fitted["stdout"]


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit_photo") / "grace.png"
    images.write_image_atomic(path, images.read_image_bgr(ROOT / "test_imgs" / "photos" / "grace_hopper.jpg"))
    return path


def test_a_style_code_file_in_a_command_equals_the_code(fitted, photo_png, tmp_path):
    ck = fitted["ckpt"]
    code, err = run_cli(
        [
            "stylize",
            str(photo_png),
            "--style_code",
            str(fitted["code"]),
            "--outdir",
            str(tmp_path),
            "--ckpt",
            str(ck["blendgan"]),
            "--psp_encoder_ckpt",
            str(ck["psp_encoder"]),
            "--adapter",
            f"{fitted['adapter']}:0.5",
        ]
    )
    assert code == 0, err
    got = images.read_image_bgr(tmp_path / "grace_v_style_code.png")
    z, _, _ = read_style_code(fitted["code"])
    want, records = pipeline(fitted, (fitted["adapter"], 0.5)).stylize_photo(str(photo_png), z)
    assert any(r.stylized is not None for r in records)
    assert np.array_equal(got[:, :, ::-1], want)


def _rewrite_meta(src, dest, **changes):
    tensors, meta = safetensors_file.read(src)
    safetensors_file.write({k: v.clone() for k, v in tensors.items()}, {**meta, **changes}, dest)


def test_files_of_another_base_checkpoint_are_refused(fitted, photo_png, tmp_path):
    ck = fitted["ckpt"]
    _rewrite_meta(fitted["adapter"], tmp_path / "other_adapter.safetensors", base_fingerprint="0" * 64)
    _rewrite_meta(fitted["code"], tmp_path / "other_code.safetensors", base_fingerprint="0" * 64)
    common = [
        "stylize",
        str(photo_png),
        "--outdir",
        str(tmp_path / "out"),
        "--ckpt",
        str(ck["blendgan"]),
        "--psp_encoder_ckpt",
        str(ck["psp_encoder"]),
    ]
    code, err = run_cli([*common, "--style_img", str(REF), "--adapter", str(tmp_path / "other_adapter.safetensors")])
    assert code == 2 and "made for another base checkpoint" in err and len(err.strip().splitlines()) == 1
    code, err = run_cli([*common, "--style_code", str(tmp_path / "other_code.safetensors")])
    assert code == 2 and "another base checkpoint" in err and len(err.strip().splitlines()) == 1
    code, err = run_cli([*common, "--style_img", str(REF), "--adapter", f"{REF}:0.5"])
    assert code == 2 and "not a" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "grace_v_cartoon_astronaut.png").exists()


@pytest.mark.export
def test_export_merges_the_adapter_and_the_runner_takes_the_style_code(fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from blendgan.onnx_run import OnnxBlendGAN, read_style_code

    ck = fitted["ckpt"]
    out = tmp_path / "onnx"
    code, err = run_cli(
        [
            "export",
            "--ckpt",
            str(ck["blendgan"]),
            "--psp_encoder_ckpt",
            str(ck["psp_encoder"]),
            "--parts",
            "generator",
            "--outdir",
            str(out),
            "--adapter",
            str(fitted["adapter"]),
        ]
    )
    assert code == 0, err
    runner = OnnxBlendGAN(out)
    z = read_style_code(fitted["code"], runner.base_fingerprint)
    bg = pipeline(fitted, (fitted["adapter"], 1.0))
    assert np.array_equal(z, bg.read_style(fitted["code"])[1].numpy())
    codes = torch.randn(2, 10, 512, generator=torch.Generator().manual_seed(2))
    got = runner.stylize(codes.numpy(), z)
    want = bg.stylize(codes, torch.from_numpy(z)).numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5


def test_a_fit_killed_mid_run_resumes_to_the_uninterrupted_result(fitted, tmp_path):
    """SIGKILL once the first snapshot is written, then `blendgan fit-style --outdir RUN --resume`: the final
    snapshot and files equal those of the fit made without interruption."""
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLENDGAN_OFFLINE": "1"}
    # the run stops itself right after its step-2 snapshot, so the kill lands there however fast the machine
    killed_env = {**env, "BLENDGAN_TEST_HOLD_AFTER_SNAPSHOT": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "blendgan", *fit_argv(fitted["ckpt"], run)],
        cwd=ROOT,
        env=killed_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 600
    while not (run / "checkpoints" / "000002.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert (run / "checkpoints" / "000002.pt").exists(), "the run did not reach its first snapshot"
    proc.kill()
    proc.wait()
    assert not (run / "checkpoints" / "000004.pt").exists()
    done = subprocess.run(
        [sys.executable, "-m", "blendgan", "fit-style", "--outdir", str(run), "--resume", "--no_progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    a = torch.load(fitted["run"] / "checkpoints" / "000004.pt", weights_only=True)
    b = torch.load(run / "checkpoints" / "000004.pt", weights_only=True)
    assert torch.equal(a["z"], b["z"])
    assert all(torch.equal(a["adapter"][k], b["adapter"][k]) for k in a["adapter"])
    for name in ("style_code.safetensors", "adapter.safetensors"):
        ta, _ = safetensors_file.read(fitted["run"] / name)
        tb, _ = safetensors_file.read(run / name)
        assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_the_web_app_offers_a_fitted_style_as_its_reference_picture(fitted):
    """`blendgan demo --style_code FILE`: the picture offered for the fitted style, uploaded as a style, gives the
    fitted code (not the style encoder's code of that picture)."""
    from blendgan.demo.service import DemoService

    ck = fitted["ckpt"]
    service = DemoService.load(
        ck["blendgan"],
        ck["psp_encoder"],
        device="cpu",
        style_codes=[fitted["code"]],
        adapters=[(fitted["adapter"], 1.0)],
    )
    assert service.ready, service.load_error
    [picture] = service.fitted_styles
    z = service.style_code(service.prepare_style(str(picture)))
    assert torch.equal(z.cpu(), service.pipeline.read_style(fitted["code"])[1].cpu())
    other = service.style_code(service.prepare_style(str(REF)))
    assert not torch.equal(other.cpu(), z.cpu())


def test_synthesis_stops_at_a_resolution(recipe_models):
    g, _ = recipe_models(SIZE, tiny=True)
    w, z = torch.randn(1, 10, 512, generator=torch.Generator().manual_seed(5)), torch.randn(1, 512)
    with torch.no_grad():
        full, _ = g([w], input_is_latent=True, randomize_noise=False, z_embed=z, add_weight_index=6)
        same, _ = g(
            [w], input_is_latent=True, randomize_noise=False, z_embed=z, add_weight_index=6, max_resolution=SIZE
        )
        small, _ = g([w], input_is_latent=True, randomize_noise=False, z_embed=z, add_weight_index=6, max_resolution=32)
    assert torch.equal(full, same) and small.shape == (1, 3, 32, 32)


def test_a_fit_at_a_lower_resolution_adapts_only_the_layers_up_to_it(fitted, tmp_path):
    run = tmp_path / "low"
    argv = fit_argv(fitted["ckpt"], run)
    argv[argv.index("--iters") + 1] = "2"
    argv[argv.index("--code_steps") + 1] = "1"
    code, err = run_cli([*argv, "--fit_resolution", "32"])
    assert code == 0, err
    layers = json.loads(safetensors_file.metadata(run / "adapter.safetensors")["layers"])
    assert layers and all(adapter_mod.layer_resolution(n) <= 32 for n in layers)
    assert len(layers) < len(adapter_mod.adaptable_layers(pipeline(fitted).generator))
    codes = torch.randn(1, 10, 512, generator=torch.Generator().manual_seed(0))
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(1))
    adapted = pipeline(fitted, (run / "adapter.safetensors", 1.0)).stylize(codes, z)
    assert adapted.shape[-1] == SIZE and not torch.equal(adapted, pipeline(fitted).stylize(codes, z))
