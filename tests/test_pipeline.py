"""The BlendGAN pipeline: same numbers as the models, batching and caching change nothing."""

import numpy as np
import pytest
import torch

from blendgan.devices import resolve_device, resolve_dtype
from blendgan.errors import UsageError
from blendgan.io import images
from blendgan.jobs.morph_video import video_alphas
from blendgan.pipeline import BlendGAN

from helpers import ROOT

FACES = sorted((ROOT / "test_imgs" / "face_imgs").glob("*.*"))
STYLES = sorted((ROOT / "test_imgs" / "style_imgs").glob("*.*"))


@pytest.fixture(scope="module")
def models(tiny_models):
    return tiny_models


@pytest.fixture()
def bg(models):
    g, psp = models
    return BlendGAN.from_models(g, psp, device="cpu", batch_size=3)


def test_encoders_match_models(bg, models):
    g, psp = models
    face, style = images.read_image_bgr(FACES[0]), images.read_image_bgr(STYLES[0])
    with torch.no_grad():
        assert torch.equal(bg.encode_face_bgr(face), psp(images.bgr_to_tensor(face)))
        assert torch.equal(bg.embed_style_bgr(style), g.embedder(images.bgr_to_tensor(style)))


def test_public_inputs_are_rgb(bg):
    bgr = images.read_image_bgr(FACES[0])
    rgb = bgr[:, :, ::-1].copy()
    assert torch.equal(bg.encode_face(rgb), bg.encode_face_bgr(bgr))
    assert torch.equal(bg.encode_face(str(FACES[0])), bg.encode_face_bgr(bgr))
    assert torch.equal(bg.embed_style(images.to_pil(bgr)), bg.embed_style_bgr(bgr))


def test_cached_encodings_equal_recomputed(bg):
    face = images.read_image_bgr(FACES[0])
    first = bg.encode_face_bgr(face)
    assert bg.encode_face_bgr(face.copy()) is first  # served from the cache by content
    bg.clear_caches()
    assert torch.equal(bg.encode_face_bgr(face), first)
    other = images.read_image_bgr(FACES[1])
    assert not torch.equal(bg.encode_face_bgr(other), first)


def test_stylize_matches_generator_and_batching_changes_nothing(bg, models):
    g, _ = models
    codes = bg.encode_face_bgr(images.read_image_bgr(FACES[0]))
    zs = torch.cat([bg.embed_style_bgr(images.read_image_bgr(p)) for p in STYLES[:4]])
    batched = bg.stylize(codes, zs, add_weight_index=6)  # batch_size 3: chunks of 3 and 1
    assert batched.shape == (4, 3, 64, 64)
    for i in range(4):
        with torch.no_grad():
            single, _ = g(
                [codes], input_is_latent=True, z_embed=zs[i : i + 1], add_weight_index=6, randomize_noise=False
            )
        assert torch.equal(batched[i : i + 1], single), f"style {i}: batched output differs from batch 1"
    # the uint8 images written by the commands are therefore identical too
    singles = [images.tensor_to_bgr(bg.stylize(codes, zs[i : i + 1])) for i in range(4)]
    for a, b in zip(images.tensors_to_bgr(batched), singles):
        assert np.array_equal(a, b)


def test_sample_pair_matches_generator(bg, models):
    g, _ = models
    z = torch.randn(2, 512, generator=torch.Generator().manual_seed(1))
    style = torch.randn(1, 512, generator=torch.Generator().manual_seed(2))
    centre = torch.randn(1, 512, generator=torch.Generator().manual_seed(3))
    plain, styled = bg.sample_pair(z, style, truncation=0.7, truncation_latent=centre, add_weight_index=6)
    with torch.no_grad():
        ref_plain, _ = g([z], truncation=0.7, truncation_latent=centre, randomize_noise=False)
        ref_styled, _ = g(
            [z],
            z_embed=style.expand(2, 512),
            add_weight_index=6,
            truncation=0.7,
            truncation_latent=centre,
            randomize_noise=False,
        )
    assert torch.equal(plain, ref_plain) and torch.equal(styled, ref_styled)


def test_interpolate_endpoints_are_the_styles(bg):
    codes = bg.encode_face_bgr(images.read_image_bgr(FACES[0]))
    za, zb = (bg.embed_style_bgr(images.read_image_bgr(p)) for p in STYLES[:2])
    frames = bg.interpolate(codes, za, zb, [0.0, 1.0], add_weight_index=7)
    assert torch.equal(frames[0:1], bg.stylize(codes, za, add_weight_index=7))
    assert torch.equal(frames[1:2], bg.stylize(codes, zb, add_weight_index=7))


def test_video_alphas_follow_the_spec():
    alphas = video_alphas()
    assert len(alphas) == 31 and alphas[0] == 0.0 and alphas[-10:] == [1.0] * 10
    assert alphas[1] == pytest.approx(1 / (1 + np.exp(5.0)), rel=1e-15)
    assert alphas[20] == pytest.approx(1 / (1 + np.exp(-4.5)), rel=1e-15)
    assert all(a < b for a, b in zip(alphas[:21], alphas[1:21]))


def test_device_and_precision_choices(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    mps = getattr(torch.backends, "mps", None)
    for cuda, apple, expected in [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        if mps is not None:
            monkeypatch.setattr(mps, "is_available", lambda apple=apple: apple)
        elif apple:
            continue
        assert resolve_device("auto").type == expected, (cuda, apple)
    monkeypatch.undo()
    with pytest.raises(UsageError, match="fp16"):
        resolve_dtype("fp16", torch.device("cpu"))
    with pytest.raises(UsageError, match="precision"):
        resolve_dtype("int8", torch.device("cpu"))
    assert resolve_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA"):
            resolve_device("cuda")


def fingerprint(model):
    """{key: (dtype, shape, float64 sum, float64 sum of squares)} of a state dict, without copying a tensor."""
    return {
        k: (
            v.dtype,
            tuple(v.shape),
            float(v.sum(dtype=torch.float64)),
            float((v.double() ** 2).sum()) if v.numel() < 1 << 22 else None,
        )
        for k, v in model.state_dict().items()
    }


def test_pipeline_takes_the_models_over_and_keeps_their_weights(models):
    """As documented on BlendGAN: the caller's modules are used in place (not copied), frozen and put in
    eval mode, get only non-persistent buffers, and their weights keep their values."""
    g, psp = models
    g.train(), psp.train()
    psp.requires_grad_(True)
    before = fingerprint(g), fingerprint(psp)
    buffers_before = {n for n, _ in psp.named_buffers()}
    bg = BlendGAN.from_models(g, psp, device="cpu")
    bg.stylize(bg.encode_face_bgr(images.read_image_bgr(FACES[0])), torch.zeros(1, 512))
    assert bg.generator is g and bg.psp_encoder is psp  # taken over, not copied
    assert not g.training and not psp.training and not any(p.requires_grad for p in psp.parameters())
    assert (fingerprint(g), fingerprint(psp)) == before  # same keys, dtypes and values
    added = {n for n, _ in g.named_buffers()} - set(g.state_dict())
    assert added and all(n.endswith(("weight_sq", "weight_t")) for n in added)  # the fast path's derived buffers
    assert {n for n, _ in psp.named_buffers()} >= buffers_before


@pytest.mark.compile
def test_compiled_generator_matches_eager(models):
    """--compile: the torch.compile'd generator gives the eager pipeline's images (to float32 rounding)."""
    g, psp = models
    eager = BlendGAN.from_models(g, psp, device="cpu", batch_size=2)
    compiled = BlendGAN.from_models(g, psp, device="cpu", batch_size=2, compile=True)
    codes = eager.encode_face_bgr(images.read_image_bgr(FACES[0]))
    zs = torch.cat([eager.embed_style_bgr(images.read_image_bgr(p)) for p in STYLES[:4]])
    a, b = eager.stylize(codes, zs), compiled.stylize(codes, zs)
    assert a.shape == b.shape == (4, 3, 64, 64)
    assert float((a - b).abs().max() / a.abs().max()) < 1e-4
    assert not torch.equal(a[0], a[1])


def test_compile_without_a_cxx_compiler_is_one_line(models, monkeypatch):
    import blendgan.devices as devices

    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    g, psp = models
    with pytest.raises(UsageError, match="--compile: torch.compile needs a C\\+\\+ compiler"):
        BlendGAN.from_models(g, psp, device="cpu", compile=True)
