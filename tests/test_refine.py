"""Refine a face (issue 26): W+ codes optimised from pSp's on the recipe weights at 64 px.

The margins asserted were measured on these weights (benchmarks/results/refine_cpu.md gives the figures);
they are set well inside what was measured so that they do not flake."""

import numpy as np
import pytest
import torch

from blendgan.cli import main
from blendgan.fitting import refine as refine_mod
from blendgan.io import images
from blendgan.pipeline import BlendGAN

import helpers
from helpers import FACES, STYLES

SIZE = 64
LR = 0.05  # recipe weights make images far from [-1, 1]: a larger step shows the descent in 3 steps


@pytest.fixture()
def optimisations(monkeypatch):
    """Counts the calls of the optimiser (refine_codes)."""
    calls = []
    original = refine_mod.refine_codes

    def counting(*args, **kwargs):
        calls.append(kwargs.get("steps"))
        return original(*args, **kwargs)

    monkeypatch.setattr(refine_mod, "refine_codes", counting)
    return calls


def face(k=0):
    return images.read_image_bgr(FACES[k])


def reconstruction_loss(tiny_bg, codes, image_bgr):
    """The refine's image terms (L2 + 0.8 VGG perceptual at the default weights) of the codes' reconstruction."""
    vgg = tiny_bg.generator.embedder.embedder.feature_extractor.vgg_layers
    loss = refine_mod.ReconstructionLoss(vgg)
    with torch.no_grad():
        total, _ = loss(tiny_bg.reconstruct(codes), images.bgr_to_tensor(image_bgr))
    return float(total)


def test_refined_codes_reconstruct_the_face_better_than_psp(tiny_bg):
    img = face()
    psp_codes = tiny_bg.encode_face_bgr(img)
    refined = tiny_bg.refine_face_bgr(img, 3, lr=LR)
    assert refined.shape == psp_codes.shape and refined.dtype == torch.float32 and refined.device.type == "cpu"
    before, after = reconstruction_loss(tiny_bg, psp_codes, img), reconstruction_loss(tiny_bg, refined, img)
    assert after < 0.6 * before, (before, after)  # measured: after = 0.38 x before
    assert tiny_bg.last_refine.loss_before == pytest.approx(before, rel=1e-3)
    assert tiny_bg.last_refine.loss_after == pytest.approx(after, rel=1e-3)
    assert not tiny_bg.last_refine.cached and tiny_bg.last_refine.seconds > 0
    # styles still apply to refined codes
    z = tiny_bg.embed_style_bgr(images.read_image_bgr(STYLES[0]))
    assert not torch.equal(tiny_bg.stylize(refined, z), tiny_bg.reconstruct(refined))


def test_second_call_does_no_optimisation_memory_and_folder(tiny_weights, tiny_bg, optimisations, tmp_path):
    img = face(1)
    tiny_bg.set_refine_cache(tmp_path / "cache")
    try:
        first = tiny_bg.refine_face_bgr(img, 1)
        assert optimisations == [1]
        assert torch.equal(tiny_bg.refine_face_bgr(img.copy(), 1), first)  # by content, from memory
        assert optimisations == [1] and tiny_bg.last_refine.cached
        assert len(list((tmp_path / "cache").glob("*.pt"))) == 1 and not list((tmp_path / "cache").glob(".*"))
        # other settings are another entry
        assert not torch.equal(tiny_bg.refine_face_bgr(img, 1, pull=0.0, lr=0.02), first)
        assert len(optimisations) == 2
    finally:
        tiny_bg.set_refine_cache(None)
    fresh = BlendGAN.from_checkpoints(tiny_weights["blendgan"], tiny_weights["psp_encoder"], device="cpu")
    fresh.set_refine_cache(tmp_path / "cache")
    assert torch.equal(fresh.refine_face_bgr(img, 1), first)  # from the folder, in another pipeline
    assert len(optimisations) == 2 and fresh.last_refine.cached
    # a damaged file is recomputed
    for f in (tmp_path / "cache").glob("*.pt"):
        f.write_bytes(b"not a torch file")
    other = BlendGAN.from_checkpoints(tiny_weights["blendgan"], tiny_weights["psp_encoder"], device="cpu")
    other.set_refine_cache(tmp_path / "cache")
    assert torch.equal(other.refine_face_bgr(img, 1), first)
    assert len(optimisations) == 3


def test_same_seed_same_codes(tiny_bg, optimisations):
    img = face(0)
    a = tiny_bg.refine_face_bgr(img, 2, seed=7)
    tiny_bg.clear_caches()
    torch.manual_seed(123)  # the caller's RNG state does not matter
    b = tiny_bg.refine_face_bgr(img, 2, seed=7)
    assert optimisations == [2, 2]
    assert torch.equal(a, b)
    assert tiny_bg.refine_face_bgr(img, 0) is not None and tiny_bg.last_refine is None  # 0 steps: pSp's codes
    assert torch.equal(tiny_bg.refine_face_bgr(img, 0), tiny_bg.encode_face_bgr(img))


def test_refine_codes_returns_the_best_codes_seen():
    """On a toy 'generator' (codes -> image) a too large step overshoots; the best evaluated codes come back."""

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()), requires_grad=False)

        def forward(self, styles, **kwargs):
            w = styles[0]
            return (w[:, :3, :64].reshape(1, 3, 8, 8) * self.scale).tanh(), None

    class L2(torch.nn.Module):
        def forward(self, y_hat, y):
            value = torch.nn.functional.mse_loss(y_hat, y)
            return value, {"l2": value}

    target = torch.zeros(1, 3, 8, 8)
    init = torch.full((1, 4, 512), 0.5)
    good = refine_mod.refine_codes(Toy(), target, init, L2(), steps=20, lr=0.05, pull=0.0)
    assert good.loss_after < 0.05 * good.loss_before
    wild = refine_mod.refine_codes(Toy(), target, init, L2(), steps=3, lr=50.0, pull=0.0)
    assert wild.loss_after <= wild.loss_before  # never worse than pSp's own codes
    seen = []
    refine_mod.refine_codes(Toy(), target, init, L2(), steps=4, lr=0.05, progress=lambda *a: seen.append(a))
    assert [s[:2] for s in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]


# --------------------------------------------------------------------------- the command


def transfer(tiny_weights, tmp_path, name, *flags):
    out = tmp_path / name
    status = main(
        [
            "transfer",
            "--ckpt",
            str(tiny_weights["blendgan"]),
            "--psp_encoder_ckpt",
            str(tiny_weights["psp_encoder"]),
            "--input_img_path",
            str(FACES[0]),
            "--style_img_path",
            str(STYLES[1]),
            "--outdir",
            str(out),
            "--device",
            "cpu",
            *flags,
        ]
    )
    assert status == 0
    (written,) = out.glob("*.jpg")
    return written


def test_transfer_refine_flag(tiny_weights, tiny_bg, tmp_path, capsys, written):
    plain = transfer(tiny_weights, tmp_path, "plain").read_bytes()
    assert transfer(tiny_weights, tmp_path, "zero", "--refine", "0").read_bytes() == plain  # off: byte-identical
    cache = tmp_path / "cache"
    written.clear()  # the three runs write files of one name
    refined_file = transfer(tiny_weights, tmp_path, "refined", "--refine", "1", "--refine_cache", str(cache))
    assert refined_file.read_bytes() != plain
    assert "refine " + FACES[0].name in capsys.readouterr().err  # seconds per face reported
    # the command's result is the pipeline's stylize of the cached refined codes
    tiny_bg.set_refine_cache(cache)
    try:
        codes = tiny_bg.refine_face_bgr(face(0), 1)
        assert tiny_bg.last_refine.cached
    finally:
        tiny_bg.set_refine_cache(None)
    z = tiny_bg.embed_style_bgr(images.read_image_bgr(STYLES[1]))
    panel = written[refined_file.name]
    assert np.array_equal(panel[:, 2 * SIZE :], images.tensor_to_bgr(tiny_bg.stylize(codes, z)))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--refine", "-1"], "--refine -1"),
        (["--refine_cache", "x"], "only apply with --refine"),
        (["--refine", "2", "--identity_weights", "missing.pth"], "file not found"),
    ],
)
def test_bad_refine_flags_are_one_line(tiny_weights, tmp_path, capsys, flags, message):
    status = main(
        [
            "transfer",
            "--ckpt",
            str(tiny_weights["blendgan"]),
            "--psp_encoder_ckpt",
            str(tiny_weights["psp_encoder"]),
            "--input_img_path",
            str(FACES[0]),
            "--style_img_path",
            str(STYLES[1]),
            "--outdir",
            str(tmp_path),
            "--device",
            "cpu",
            *flags,
        ]
    )
    assert status == 2
    assert message in capsys.readouterr().err


def test_demo_service_refines_uploads_and_refuses_bad_steps(tiny_weights, tiny_bg):
    from blendgan.demo.service import MAX_REFINE_STEPS, DemoService
    from blendgan.errors import UsageError

    service = DemoService(tiny_bg)
    assert service.check_refine(None) == 0 and service.check_refine("") == 0 and service.check_refine(3.0) == 3
    for bad in (-1, 2.5, MAX_REFINE_STEPS + 1, "many"):
        with pytest.raises(UsageError, match="refine"):
            service.check_refine(bad)
    face_bgr = images.resize_square(face(0), SIZE)
    assert torch.equal(service.face_codes(face_bgr), tiny_bg.encode_face_bgr(face_bgr))  # 0: pSp's codes
    seen = []
    refined = service.face_codes(face_bgr, 1, lambda fraction, desc: seen.append((fraction, desc)))
    assert torch.equal(refined, tiny_bg.refine_face_bgr(face_bgr, 1)) and tiny_bg.last_refine.cached
    assert seen == [(0.4, "refining the likeness: step 1/1")]


def test_stylize_command_refines_the_faces_of_photos(tiny_weights, tiny_bg, tmp_path, capsys):
    pytest.importorskip("dlib")
    photo = helpers.ROOT / "test_imgs" / "photos" / "grace_hopper.jpg"
    cache, out = tmp_path / "cache", tmp_path / "out"
    status = main(
        [
            "stylize",
            str(photo),
            "--style_img",
            str(STYLES[1]),
            "--ckpt",
            str(tiny_weights["blendgan"]),
            "--psp_encoder_ckpt",
            str(tiny_weights["psp_encoder"]),
            "--outdir",
            str(out),
            "--device",
            "cpu",
            "--faces",
            "largest",
            "--save_crops",
            "--refine",
            "1",
            "--refine_cache",
            str(cache),
        ]
    )
    assert status == 0
    assert f"refine {photo.name} face 0: 1 step in" in capsys.readouterr().err
    stem = f"{photo.stem}_v_{STYLES[1].stem}_face0"
    aligned = images.resize_square(images.read_image_bgr(out / f"{stem}_aligned.png"), SIZE)
    tiny_bg.set_refine_cache(cache)
    try:
        codes = tiny_bg.refine_face_bgr(aligned, 1)
        assert tiny_bg.last_refine.cached
    finally:
        tiny_bg.set_refine_cache(None)
    z = tiny_bg.embed_style_bgr(images.read_image_bgr(STYLES[1]))
    stylized = images.read_image_bgr(out / f"{stem}_stylized.png")
    assert np.array_equal(stylized, images.tensor_to_bgr(tiny_bg.stylize(codes, z)))


def test_bf16_pipeline_on_cpu_refines_in_float32(tiny_weights, tiny_bg):
    """bf16 convolutions' backward takes PyTorch's slow reference kernel on CPUs without bf16 instructions:
    a bf16 pipeline refines on float32 copies of the generator (without its style encoder) and the VGG."""
    from blendgan.fitting.refiner import image_digest

    half = BlendGAN.from_checkpoints(
        tiny_weights["blendgan"], tiny_weights["psp_encoder"], device="cpu", precision="bf16"
    )
    img = face(0)
    # the pSp codes are given, not encoded: the bf16 pSp encoder's forward takes minutes on AVX2-only CPUs
    # (~250 s for this face on the 2-core test machine); the refinement is what is tested here
    half._face_cache[image_digest(img)] = tiny_bg.encode_face_bgr(img).to(torch.bfloat16)
    codes = half.refine_face_bgr(img, 1, lr=LR)
    assert codes.dtype == torch.float32 and half.last_refine.loss_after < half.last_refine.loss_before
    generator, vgg = half.refiner.copies
    assert generator.embedder is None and half.generator.embedder is not None
    assert next(generator.parameters()).dtype == torch.float32 and next(vgg.parameters()).dtype == torch.float32
    assert next(half.generator.convs.parameters()).dtype == torch.bfloat16  # the pipeline's own stay bf16
    half.release_refine_models()
    assert half.refiner.copies is None
