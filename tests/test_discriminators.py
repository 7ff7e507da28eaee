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
needs_fixture = pytest.mark.skipif(not (FIXTURE / "expected_64.pt").is_file(),
                                   reason=f"discriminator fixture not found at {FIXTURE} (check out ../shared)")
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
        g = torch.Generator().manual_seed((zlib.crc32(key.encode()) + SEEDS[kind]) % 2 ** 63)
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
@pytest.mark.parametrize("reference", [False, True])
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
    torch.testing.assert_close(grad.square().sum((1, 2, 3)), expected[f"{kind}_input_grad_sq_sum"],
                               rtol=1e-9, atol=1e-9)


def test_max_channels_caps_widths_but_keeps_keys():
    full, narrow = build("projection_discriminator", 64), build("projection_discriminator", 64, max_channels=16)
    assert list(full.state_dict()) == list(narrow.state_dict())
    assert max(max(v.shape) for k, v in narrow.state_dict().items() if k != "l_style.weight") <= 16 * 16
    assert narrow.state_dict()["final_conv.0.weight"].shape == (16, 17, 3, 3)
    assert narrow.state_dict()["l_style.weight"].shape == (16, 512)
