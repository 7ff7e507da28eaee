"""Stylization controls (issue 23): strength, per-layer weights, colour keeping, style mixing.

The equivalences are exact (torch.equal) on the recipe (test) weights; the monotone and colour tests
measure the images those weights make."""

import copy

import pytest
import torch

from blendgan.controls import Controls, color_layers, layer_resolutions, preset_weights, step_weights
from blendgan.errors import UsageError
from blendgan.io import images
from blendgan.pipeline import BlendGAN

from helpers import ROOT

FACES = sorted((ROOT / "test_imgs" / "face_imgs").glob("*.*"))
STYLES = sorted((ROOT / "test_imgs" / "style_imgs").glob("*.*"))
# --preserve_color brings the output's mean colour at least this much closer to the reconstruction's
# (measured on the 64 px test weights: see docs/controls.md, "Keep the face's colours")
COLOR_FACTOR = 2.0


@pytest.fixture(scope="module")
def bg(recipe_models):
    g, psp = copy.deepcopy(recipe_models(64, tiny=True))  # the pipeline takes its models over
    return BlendGAN.from_models(g, psp, device="cpu", batch_size=3)


@pytest.fixture(scope="module")
def codes_and_styles(bg):
    codes = bg.encode_face_bgr(images.read_image_bgr(FACES[0]))
    zs = [bg.embed_style_bgr(images.read_image_bgr(p)) for p in STYLES[:3]]
    return codes, zs


def test_strength_one_is_todays_output(bg, codes_and_styles):
    codes, (z, *_) = codes_and_styles
    today = bg.stylize(codes, z, add_weight_index=6)
    with torch.no_grad():
        ref, _ = bg.generator([codes], input_is_latent=True, z_embed=z, add_weight_index=6, randomize_noise=False)
    assert torch.equal(today, ref)
    assert torch.equal(bg.stylize(codes, z, add_weight_index=6, strength=1.0), today)
    # the explicit blend-weights path at s = 1 with the step vector: same bytes
    step = step_weights(bg.n_latent, 6)
    assert torch.equal(bg.stylize(codes, z, add_weight_index=6, strength=1.0, layer_weights=step), today)


def test_strength_zero_is_the_reconstruction(bg, codes_and_styles):
    codes, (z, *_) = codes_and_styles
    assert torch.equal(bg.stylize(codes, z, strength=0.0), bg.reconstruct(codes))
    assert torch.equal(bg.stylize(codes, z, strength=0.0, layer_weights="all"), bg.reconstruct(codes))


@pytest.mark.parametrize("k", [0, 3, 7, 10])
def test_step_vector_equals_add_weight_index(bg, codes_and_styles, k):
    codes, (z, *_) = codes_and_styles
    vector = [0.0] * k + [1.0] * (bg.n_latent - k)
    assert torch.equal(
        bg.stylize(codes, z, add_weight_index=2, layer_weights=vector), bg.stylize(codes, z, add_weight_index=k)
    )


def test_mix_one_zero_is_the_single_style(bg, codes_and_styles):
    codes, (za, zb, zc) = codes_and_styles
    single = bg.stylize(codes, za)
    assert torch.equal(bg.mix_styles(codes, [za, zb], [1, 0]), single)
    assert torch.equal(bg.mix_styles(codes, [zb, za, zc], [0, 2.5, 0]), single)  # weights are normalised
    assert not torch.equal(bg.mix_styles(codes, [za, zb], [0.7, 0.3]), single)


def test_two_style_mix_equals_the_interpolation_frame(bg, codes_and_styles):
    codes, (za, zb, _) = codes_and_styles
    alphas = [0.0, 0.25, 0.7, 1.0]
    frames = bg.interpolate(codes, za, zb, alphas, add_weight_index=7, space="w")
    for i, k in enumerate(alphas):
        assert torch.equal(frames[i : i + 1], bg.mix_styles(codes, [za, zb], [1 - k, k], add_weight_index=7)), k
    assert torch.equal(frames[0:1], bg.stylize(codes, za, add_weight_index=7))
    # with controls the two still agree
    framed = bg.interpolate(codes, za, zb, [0.4], add_weight_index=7, space="w", strength=0.5, preserve_color=True)
    assert torch.equal(
        framed, bg.mix_styles(codes, [za, zb], [0.6, 0.4], add_weight_index=7, strength=0.5, preserve_color=True)
    )


def test_default_interpolation_still_lerps_style_codes(bg, codes_and_styles):
    codes, (za, zb, _) = codes_and_styles
    frame = bg.interpolate(codes, za, zb, [0.3], add_weight_index=7)
    assert torch.equal(frame, bg.stylize(codes, torch.lerp(za, zb, 0.3), add_weight_index=7))


def test_distance_to_the_reconstruction_grows_with_strength(bg, codes_and_styles):
    codes, zs = codes_and_styles
    recon = bg.reconstruct(codes)
    strengths = [0.0, 0.25, 0.5, 0.75, 1.0]
    for z in zs:
        dist = [float((bg.stylize(codes, z, strength=s) - recon).square().mean().sqrt()) for s in strengths]
        assert dist[0] == 0.0
        assert all(a < b for a, b in zip(dist, dist[1:])), dist


def mean_colour_shift(image, reference):
    """Euclidean distance between the mean RGB colours of two image batches ([-1, 1] scale)."""
    image, reference = image.clamp(-1, 1), reference.clamp(-1, 1)  # the colours a picture can show
    return float((image.mean((2, 3)) - reference.mean((2, 3))).norm(dim=1).mean())


def test_preserve_color_keeps_the_faces_mean_colour(bg, codes_and_styles):
    codes, zs = codes_and_styles
    recon = bg.reconstruct(codes)
    for z in zs:
        plain = mean_colour_shift(bg.stylize(codes, z), recon)
        kept = mean_colour_shift(bg.stylize(codes, z, preserve_color=True), recon)
        assert kept * COLOR_FACTOR <= plain, (plain, kept)


def test_per_row_strengths_in_pairs_equal_single_rows(bg):
    z = torch.randn(3, 512, generator=torch.Generator().manual_seed(1))
    style = torch.randn(1, 512, generator=torch.Generator().manual_seed(2))
    _, styled = bg.sample_pair(z, style, add_weight_index=6, strength=[0.2, 1.0, 0.6])
    for i, s in enumerate([0.2, 1.0, 0.6]):
        _, one = bg.sample_pair(z[i : i + 1], style, add_weight_index=6, strength=s)
        assert torch.equal(styled[i : i + 1], one), s
    _, today = bg.sample_pair(z[1:2], style, add_weight_index=6)
    assert torch.equal(styled[1:2], today)


def test_layer_resolutions_and_presets():
    assert layer_resolutions(14) == [4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 256]
    for size, n in [(256, 14), (512, 16), (1024, 18)]:
        res = layer_resolutions(n)
        assert res[-1] == size and len(res) == n and res == sorted(res)
        assert [a + b for a, b in zip(preset_weights("structure", n), preset_weights("texture", n))] == [1.0] * n
        assert color_layers(n) and all(res[i] >= 64 for i in color_layers(n))
    assert step_weights(5, 2) == [0, 0, 1, 1, 1] and step_weights(5, -1) == [0, 0, 0, 0, 1]
    assert step_weights(5, None) == [1.0] * 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strength": 1.5}, "--strength 1.5: must lie in \\[0, 1\\]"),
        ({"strength": -0.1}, "--strength -0.1"),
        ({"strength": "abc"}, "not a number"),
        ({"layer_weights": (0.5, 2.0)}, "--layer_weights: every value must lie in \\[0, 1\\]"),
        ({"layer_weights": "coarse"}, "--layer_weights 'coarse': give one value"),
        ({"style_weights": (0.5, -0.5)}, "must not be negative"),
        ({"style_weights": (0, 0)}, "at least one weight must be above 0"),
    ],
)
def test_bad_values_are_one_line_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message) as err:
        Controls(**kwargs)
    assert "\n" not in str(err.value)


def test_counts_must_match(bg, codes_and_styles):
    codes, (za, zb, _) = codes_and_styles
    with pytest.raises(UsageError, match="--layer_weights: give 10 values for this 64 px generator, got 3"):
        bg.stylize(codes, za, layer_weights=[1, 1, 1])
    with pytest.raises(UsageError, match="--style_weights: 3 weights for 2 style images"):
        bg.mix_styles(codes, [za, zb], [0.2, 0.3, 0.5])
