"""The discriminators reproduce the original's float64 outputs and input gradients (conformance fixture
../shared/conformance/discriminators), through the fast and the reference ops, with the original keys."""

import json
import zlib
from pathlib import Path

import pytest
import torch

from blendgan.models import use_reference_ops
from blendgan.models.discriminator import Discriminator, ProjectionDiscriminator

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "discriminators"
needs_fixture = pytest.mark.skipif(
    not (FIXTURE / "expected_64.pt").is_file(),
    reason=f"discriminator fixture not found at {FIXTURE} (check out ../shared)",
)
SEEDS = {"discriminator": 4321, "projection_discriminator": 8765}


def build(kind, size, **kwargs):
    cls = Discriminator if kind == "discriminator" else ProjectionDiscriminator
    with torch.device("meta"):
        return cls(size, **kwargs)


def fixture_weights(kind, size):
    """The fixture's recipe: per key a seeded float64 normal draw (x0.1 for biases, blur kernels true)."""
    entries = json.loads((FIXTURE / f"keys_{kind}_{size}.json").read_text())["entries"]
    sd = {}
    for key, shape, _ in entries:
        if key.endswith(".kernel"):
            t = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
            sd[key] = torch.outer(t, t) / 64
            continue
        g = torch.Generator().manual_seed((zlib.crc32(key.encode()) + SEEDS[kind]) % 2**63)
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        sd[key] = 0.1 * x if key.endswith(".bias") else x
    return sd


@needs_fixture
@pytest.mark.parametrize("kind", list(SEEDS))
@pytest.mark.parametrize("size", [64, 256, 1024])
def test_state_dict_layout_is_the_originals(kind, size):
    entries = json.loads((FIXTURE / f"keys_{kind}_{size}.json").read_text())["entries"]
    sd = build(kind, size).state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(k, s) for k, s, _ in entries]


@needs_fixture
@pytest.mark.parametrize("kind", list(SEEDS))
@pytest.mark.parametrize("reference", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_outputs_and_input_gradients_match_the_original(kind, reference):
    from blendgan.models.loading import from_state_dict

    cls = Discriminator if kind == "discriminator" else ProjectionDiscriminator
    d = use_reference_ops(from_state_dict(lambda: cls(64), fixture_weights(kind, 64)), reference)
    inputs = torch.load(FIXTURE / "inputs.pt", weights_only=True)
    expected = torch.load(FIXTURE / "expected_64.pt", weights_only=True)
    x = inputs["x"].clone().requires_grad_(True)
    out = d(x) if kind == "discriminator" else d(x, inputs["z_s"])
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(out.detach(), expected[kind], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        grad.square().sum((1, 2, 3)), expected[f"{kind}_input_grad_sq_sum"], rtol=1e-9, atol=1e-9
    )


def test_max_channels_caps_widths_but_keeps_keys():
    full, narrow = build("projection_discriminator", 64), build("projection_discriminator", 64, max_channels=16)
    assert list(full.state_dict()) == list(narrow.state_dict())
    assert max(max(v.shape) for k, v in narrow.state_dict().items() if k != "l_style.weight") <= 16 * 16
    assert narrow.state_dict()["final_conv.0.weight"].shape == (16, 17, 3, 3)
    assert narrow.state_dict()["l_style.weight"].shape == (16, 512)


def _randomised(module, seed):
    """Every float parameter drawn at random (biases too, so none of the checks sees zeros); fp64."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * (0.1 if "bias" in name else 1))
    return module


def _grads_both_ways(module, fn, inputs):
    """{reference flag: (value, grads of value w.r.t. inputs and parameters)} for fn(module, *inputs)."""
    out = {}
    for reference in (False, True):
        use_reference_ops(module, reference)
        xs = [x.detach().clone().requires_grad_(True) for x in inputs]
        value = fn(module, *xs)
        params = [p for p in module.parameters() if p.requires_grad]
        grads = torch.autograd.grad(value, [*xs, *params], allow_unused=True)
        out[reference] = (value.detach(), [g for g in grads if g is not None])
    use_reference_ops(module, False)
    return out


@pytest.mark.parametrize("cls", [Discriminator, ProjectionDiscriminator])
def test_r1_training_gradients_fast_equal_reference(cls):
    """The D update with R1 differentiates through an input gradient (double backward): the fast ops must
    give the reference ops' numbers there too."""
    from blendgan.losses import gan as losses

    d = _randomised(cls(32, max_channels=8).double(), seed=11)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z = torch.randn(4, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def loss(module, image):
        pred = module(image) if cls is Discriminator else module(image, z)
        return losses.d_logistic_loss(pred, -pred) + losses.r1_penalty(pred, image)

    res = _grads_both_ways(d, loss, [x])
    torch.testing.assert_close(res[False][0], res[True][0], rtol=1e-10, atol=1e-12)
    assert len(res[False][1]) == len(list(d.parameters())) + 1
    for a, b in zip(res[False][1], res[True][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_generator_path_length_gradients_fast_equal_reference():
    """The path-length penalty differentiates the generator's Jacobian (double backward through the
    modulated convolutions, noise and activations): fast == reference, and forward leaves state alone."""
    from blendgan.losses import gan as losses
    from blendgan.models import Generator

    g = _randomised(Generator(16, max_channels=8, with_style_encoder=False).double(), seed=12)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 512, dtype=torch.float64, generator=gen)
    ze = torch.randn(2, 512, dtype=torch.float64, generator=gen)
    noise = [torch.randn(2, 1, *b.shape[2:], dtype=torch.float64, generator=gen) for b in g.noises.maps()]
    y = torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=gen)
    before = {k: v.clone() for k, v in g.state_dict().items()}

    def loss(module, codes):
        img, latents = module([codes], noise=noise, return_latents=True, z_embed=ze)[:2]
        pl = losses.path_lengths(img, latents, y)
        return losses.path_length_penalty(pl, 0.5)[0] + losses.g_nonsaturating_loss(img.mean((1, 2, 3))[:, None])

    res = _grads_both_ways(g, loss, [z])
    torch.testing.assert_close(res[False][0], res[True][0], rtol=1e-10, atol=1e-12)
    for a, b in zip(res[False][1], res[True][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in before.items())
