"""ONNX export (`blendgan export`) and the torch-free runner (`python -m blendgan.onnx_run`).

Each folder is written once per session: size 64 at the narrow test widths (helpers.TINY) with every part
and a baked-in style, size 256 at the published widths with the generator and the pSp encoder. Parity is
max |onnxruntime - PyTorch| / max |PyTorch| on recipe weights.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.export  # every test here exports or runs ONNX models

from blendgan.cli import main as cli_main  # noqa: E402
from blendgan.io import images  # noqa: E402
from blendgan.onnx_run import OnnxBlendGAN, adaptive_avg_pool, output_to_rgb, read_rgb, rgb_to_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
ADD_WEIGHT_INDEX = 6

# Runs the runner with every `import torch` failing, as on a machine without PyTorch.
NO_TORCH_PRELUDE = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here (blocked by the test)")
sys.meta_path.insert(0, NoTorch())
"""


def rel_err(out, ref):
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(np.asarray(out, dtype=np.float64) - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="session")
def test_pngs(tmp_path_factory):
    """A face (384 x 384) and a style (512 x 600, not square) as PNG, so that Pillow and OpenCV decode
    the same pixels; sizes that are not 256 exercise the adaptive pooling."""
    from PIL import Image

    d = tmp_path_factory.mktemp("onnx_imgs")
    face = Image.open(ROOT / "test_imgs/face_imgs/astronaut.jpg").convert("RGB").resize((384, 384))
    face.save(d / "face.png")
    Image.open(ROOT / "test_imgs/photos/grace_hopper.jpg").convert("RGB").save(d / "style.png")
    return {"face": d / "face.png", "style": d / "style.png"}


def run_export(*argv):
    return cli_main(["export", *map(str, argv)])


@pytest.fixture(scope="session")
def exported_64(recipe_checkpoints, test_pngs, tmp_path_factory):
    ck = recipe_checkpoints(64, tiny=True)
    out = tmp_path_factory.mktemp("onnx64")
    assert (
        run_export(
            "--ckpt",
            ck["blendgan"],
            "--psp_encoder_ckpt",
            ck["psp_encoder"],
            "--outdir",
            out,
            "--style_img",
            test_pngs["style"],
            "--add_weight_index",
            ADD_WEIGHT_INDEX,
        )
        == 0
    )
    return out


@pytest.fixture(scope="session")
def exported_256(recipe_checkpoints, tmp_path_factory):
    ck = recipe_checkpoints(256)
    out = tmp_path_factory.mktemp("onnx256")
    assert (
        run_export(
            "--ckpt",
            ck["blendgan"],
            "--psp_encoder_ckpt",
            ck["psp_encoder"],
            "--outdir",
            out,
            "--parts",
            "generator,psp_encoder",
        )
        == 0
    )
    return out


@pytest.fixture
def runner_64(exported_64):
    """The runner's model set on the size-64 export; its sessions (the style encoder's holds 1.3 GB) are
    created on first use and dropped after each test: loading them takes well under a second."""
    return OnnxBlendGAN(exported_64)


@pytest.fixture
def exported(request):
    return request.getfixturevalue(f"exported_{request.param}")


def session(folder, name):
    """An onnxruntime session without weight prepacking (it would keep a second copy of the weights;
    memory is shared with other test runs)."""
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(str(Path(folder) / f"{name}.onnx"), opts, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- numpy preprocessing


def test_numpy_preprocessing_matches_the_pipeline(test_pngs):
    """The runner's image -> input and output -> image conversions are the pipeline's (cv2ten, ten2cv,
    AdaptiveAvgPool2d)."""
    for path in test_pngs.values():
        ref = images.bgr_to_tensor(images.read_image_bgr(path)).numpy()
        assert np.array_equal(rgb_to_input(read_rgb(path)), ref)
    g = torch.Generator().manual_seed(0)
    for h, w in [(1024, 1024), (600, 512), (300, 257), (64, 64), (256, 256)]:
        x = torch.rand(2, 3, h, w, generator=g) * 2 - 1
        ref = torch.nn.AdaptiveAvgPool2d((256, 256))(x).numpy()
        out = adaptive_avg_pool(x.numpy())
        assert out.shape == ref.shape and out.dtype == np.float32
        assert np.abs(out - ref).max() < 1e-6, (h, w)
    y = torch.randn(3, 3, 16, 16, generator=g) * 1.2  # values beyond [-1, 1] are clamped
    ref_rgb = [img[:, :, ::-1] for img in images.tensors_to_bgr(y)]
    assert all(np.array_equal(a, b) for a, b in zip(output_to_rgb(y.numpy()), ref_rgb))


# --------------------------------------------------------------------------- parity with the PyTorch models


@pytest.mark.parametrize("exported", [64, 256], indirect=True)
def test_generator_parity(exported, recipe_models):
    gen, _ = recipe_models(_size_of(exported), tiny=_size_of(exported) == 64)
    sess = session(exported, "generator")
    g = torch.Generator().manual_seed(1)
    for batch, index in [(1, ADD_WEIGHT_INDEX), (3, 3), (3, -2)]:
        codes = torch.randn(batch, gen.n_latent, 512, generator=g)
        z = torch.randn(batch, 512, generator=g)
        with torch.inference_mode():
            ref, _ = gen([codes], input_is_latent=True, randomize_noise=False, z_embed=z, add_weight_index=index)
        out = sess.run(
            None, {"codes": codes.numpy(), "z_embed": z.numpy(), "add_weight_index": np.array([index], dtype=np.int64)}
        )[0]
        assert out.shape == (batch, 3, gen.size, gen.size)
        assert rel_err(out, ref) < TOLERANCE, (batch, index)


def _size_of(folder):
    import json

    return json.loads((Path(folder) / "blendgan_onnx.json").read_text())["size"]


@pytest.mark.parametrize("exported", [64, 256], indirect=True)
def test_psp_encoder_parity(exported, recipe_models):
    _, psp = recipe_models(_size_of(exported), tiny=_size_of(exported) == 64)
    sess = session(exported, "psp_encoder")
    x = torch.rand(3, 3, 256, 256, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.inference_mode():
        ref = psp(x)  # one PyTorch run: its samples do not depend on the batch (far below the tolerance)
    for batch in (1, 3):
        out = sess.run(None, {"image": x[:batch].numpy()})[0]
        assert out.shape == (batch, *ref.shape[1:])
        assert rel_err(out, ref[:batch]) < TOLERANCE, batch


def test_style_encoder_parity(runner_64, recipe_models):
    gen, _ = recipe_models(64, tiny=True)
    sess = runner_64.session("style_encoder")
    x = torch.rand(3, 3, 256, 256, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.inference_mode():
        ref = gen.embedder(x)
    for batch in (1, 3):
        out = sess.run(None, {"image": x[:batch].numpy()})[0]
        assert out.shape == (batch, 512)
        assert rel_err(out, ref[:batch]) < TOLERANCE, batch


def test_baked_style_model_is_the_generator_with_that_style(exported_64, recipe_models, test_pngs):
    gen, _ = recipe_models(64, tiny=True)
    with torch.inference_mode():
        z = gen.embedder(images.bgr_to_tensor(images.read_image_bgr(test_pngs["style"])))
        codes = torch.randn(3, gen.n_latent, 512, generator=torch.Generator().manual_seed(4))
        ref, _ = gen(
            [codes],
            input_is_latent=True,
            randomize_noise=False,
            z_embed=z.expand(3, -1),
            add_weight_index=ADD_WEIGHT_INDEX,
        )
    fixed = session(exported_64, "generator_fixed_style")
    assert [i.name for i in fixed.get_inputs()] == ["codes"]
    assert rel_err(fixed.run(None, {"codes": codes.numpy()})[0], ref) < TOLERANCE


@pytest.mark.parametrize(
    "flags,tolerance", [(("--precision", "fp16"), 1e-2), (("--exporter", "torchscript"), TOLERANCE)]
)
def test_generator_export_variants(flags, tolerance, recipe_checkpoints, recipe_models, tmp_path):
    """fp16 files (float16 inputs/outputs) and the legacy exporter give the PyTorch model's images."""
    assert (
        run_export(
            "--ckpt",
            recipe_checkpoints(64, tiny=True)["blendgan"],
            "--outdir",
            tmp_path,
            "--parts",
            "generator",
            *flags,
        )
        == 0
    )
    g = torch.Generator().manual_seed(5)
    codes, z = torch.randn(3, 10, 512, generator=g).numpy(), torch.randn(3, 512, generator=g).numpy()
    index = np.array([ADD_WEIGHT_INDEX], dtype=np.int64)
    with torch.inference_mode():
        ref, _ = recipe_models(64, tiny=True)[0](
            [torch.from_numpy(codes)],
            input_is_latent=True,
            randomize_noise=False,
            z_embed=torch.from_numpy(z),
            add_weight_index=ADD_WEIGHT_INDEX,
        )
    sess = session(tmp_path, "generator")
    dtype = np.float16 if "fp16" in flags else np.float32
    assert sess.get_inputs()[0].type == ("tensor(float16)" if dtype == np.float16 else "tensor(float)")
    out = sess.run(None, {"codes": codes.astype(dtype), "z_embed": z.astype(dtype), "add_weight_index": index})[0]
    assert out.dtype == dtype and rel_err(out, ref) < tolerance


# --------------------------------------------------------------------------- the runner without torch


def _run_no_torch(*argv):
    code = NO_TORCH_PRELUDE + (
        "import runpy\n"
        "import blendgan.onnx_run\n"
        "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        f"sys.argv = ['blendgan.onnx_run', *{[str(a) for a in argv]!r}]\n"
        "sys.exit(blendgan.onnx_run.main())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_runner_without_torch_gives_the_pipelines_image(exported_64, recipe_checkpoints, test_pngs, tmp_path):
    from blendgan.pipeline import BlendGAN

    out = tmp_path / "result.png"
    proc = _run_no_torch(
        "--models",
        exported_64,
        "--face",
        test_pngs["face"],
        "--style",
        test_pngs["style"],
        "--out",
        out,
        "--add_weight_index",
        ADD_WEIGHT_INDEX,
    )
    assert proc.returncode == 0, proc.stderr
    ck = recipe_checkpoints(64, tiny=True)
    bg = BlendGAN.from_checkpoints(ck["blendgan"], ck["psp_encoder"], device="cpu")
    image = bg.stylize(
        bg.encode_face(str(test_pngs["face"])),
        bg.embed_style(str(test_pngs["style"])),
        add_weight_index=ADD_WEIGHT_INDEX,
    )
    ref = bg.to_rgb(image)[0].astype(int)
    got = read_rgb(out).astype(int)
    assert got.shape == ref.shape == (64, 64, 3)
    # float rounding may move a value across an integer before the uint8 truncation: at most one level
    assert np.abs(got - ref).max() <= 1
    assert (got == ref).mean() > 0.99


def test_runner_api_batches(runner_64, test_pngs):
    models = runner_64
    codes = models.encode_face(read_rgb(test_pngs["face"]))
    z = np.concatenate(
        [
            models.embed_style(read_rgb(test_pngs["style"])),
            np.random.default_rng(0).standard_normal((1, 512), dtype=np.float32),
        ]
    )
    both = models.stylize(codes, z)
    assert both.shape == (2, 3, 64, 64)
    single = models.stylize(codes, z[1:])
    assert rel_err(single[0], both[1]) < TOLERANCE  # batch-independent
    baked = models.stylize(np.concatenate([codes, codes]))  # the style baked in at export, same index
    assert rel_err(baked[0], both[0]) < TOLERANCE


# --------------------------------------------------------------------------- bad input


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_export_folder_holds_only_complete_files(exported_64):
    """Temporary folders are gone after the export; every model has its weights file beside it."""
    import json

    names = sorted(p.name for p in exported_64.iterdir())
    models = ["generator", "generator_controls", "generator_fixed_style", "psp_encoder", "style_encoder"]
    assert names == sorted(["blendgan_onnx.json", *[f"{m}.onnx" for m in models], *[f"{m}.onnx.data" for m in models]])
    info = json.loads((exported_64 / "blendgan_onnx.json").read_text())
    assert info["size"] == 64 and info["n_latent"] == 10 and sorted(info["models"]) == models
    assert info["fixed_style"]["add_weight_index"] == ADD_WEIGHT_INDEX


def test_export_refuses_a_checkpoint_of_another_kind(recipe_checkpoints, tmp_path, capsys):
    psp = recipe_checkpoints(64, tiny=True)["psp_encoder"]
    assert run_export("--ckpt", psp, "--psp_encoder_ckpt", psp, "--outdir", tmp_path / "out") == 2
    line = _one_error_line(capsys)
    assert str(psp) in line and "psp" in line.lower()
    assert not list((tmp_path / "out").glob("*.onnx"))


def test_export_refuses_an_unwritable_outdir(recipe_checkpoints, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    ck = recipe_checkpoints(64, tiny=True)
    assert run_export("--ckpt", ck["blendgan"], "--outdir", blocker / "sub", "--parts", "generator") == 2
    assert "--outdir" in _one_error_line(capsys)


def test_runner_bad_input_lines(exported_64, tmp_path, test_pngs):
    proc = _run_no_torch(
        "--models", tmp_path, "--face", test_pngs["face"], "--style", test_pngs["style"], "--out", tmp_path / "x.png"
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "blendgan_onnx.json" in proc.stderr
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    proc = _run_no_torch(
        "--models", exported_64, "--face", broken, "--style", test_pngs["style"], "--out", tmp_path / "x.png"
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and str(broken) in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_export_refuses_an_opset_the_exporter_cannot_write(tmp_path, capsys):
    assert run_export("--ckpt", tmp_path / "unused.pt", "--outdir", tmp_path, "--opset", "12") == 2
    assert "--exporter torchscript" in _one_error_line(capsys)


# --------------------------------------------------------------------------- stylization controls (issue 23)


def test_controlled_generator_parity(exported_64, recipe_models):
    """generator_controls.onnx (blend weights and J mixed styles as inputs) vs the PyTorch generator."""
    gen, _ = recipe_models(64, tiny=True)
    sess = session(exported_64, "generator_controls")
    g = torch.Generator().manual_seed(6)
    for batch, styles in [(1, 1), (3, 2), (2, 4)]:
        codes = torch.randn(batch, gen.n_latent, 512, generator=g)
        z = torch.randn(batch, styles, 512, generator=g)
        k = torch.rand(batch, styles, generator=g)
        k = k / k.sum(1, keepdim=True)
        blend = torch.rand(batch, gen.n_latent, generator=g)
        with torch.inference_mode():
            ref, _ = gen(
                [codes], input_is_latent=True, randomize_noise=False, z_embed=z, style_weights=k, blend_weights=blend
            )
        out = sess.run(
            None,
            {"codes": codes.numpy(), "z_embed": z.numpy(), "style_weights": k.numpy(), "blend_weights": blend.numpy()},
        )[0]
        assert rel_err(out, ref) < TOLERANCE, (batch, styles)


def test_runner_controls_give_the_pipelines_image(exported_64, recipe_checkpoints, test_pngs, tmp_path):
    """The torch-free runner's --strength, --layer_weights, --preserve_color and style mix: the pipeline's
    image within one grey level."""
    from blendgan.pipeline import BlendGAN

    ck = recipe_checkpoints(64, tiny=True)
    bg = BlendGAN.from_checkpoints(ck["blendgan"], ck["psp_encoder"], device="cpu")
    codes = bg.encode_face(str(test_pngs["face"]))
    z_style = bg.embed_style(str(test_pngs["style"]))
    z_face = bg.embed_style(str(test_pngs["face"]))
    vector = [0.0, 0.3, 0.3, 1, 1, 0.5, 0.5, 1, 1, 1]
    cases = [
        (["--strength", "0.5", "--preserve_color"], bg.stylize(codes, z_style, strength=0.5, preserve_color=True)),
        (["--layer_weights", ",".join(map(str, vector))], bg.stylize(codes, z_style, layer_weights=vector)),
        (
            ["--style", test_pngs["face"], "--style_weights", "0.7", "0.3", "--strength", "0.8"],
            bg.mix_styles(codes, [z_style, z_face], [0.7, 0.3], strength=0.8),
        ),
    ]
    for flags, image in cases:
        out = tmp_path / "result.png"
        proc = _run_no_torch(
            "--models", exported_64, "--face", test_pngs["face"], "--style", test_pngs["style"], "--out", out, *flags
        )
        assert proc.returncode == 0, proc.stderr
        ref = bg.to_rgb(image)[0].astype(int)
        got = read_rgb(out).astype(int)
        assert np.abs(got - ref).max() <= 1, flags
        assert (got == ref).mean() > 0.99, flags
    proc = _run_no_torch(
        "--models",
        exported_64,
        "--face",
        test_pngs["face"],
        "--style",
        test_pngs["style"],
        "--out",
        tmp_path / "x.png",
        "--strength",
        "2",
    )
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "error: --strength 2.0: must lie in [0, 1] (0: the face, 1: the full style)"
    )
    proc = _run_no_torch(
        "--models",
        exported_64,
        "--face",
        test_pngs["face"],
        "--style",
        test_pngs["style"],
        "--out",
        tmp_path / "x.png",
        "--layer_weights",
        "1,1",
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "give 10 values" in proc.stderr
