"""Narrow encoders (the widths most tests run): the same keys as the published networks, the width read back from
the file by every loader, and a file that computes exactly like the module it was saved from."""

import pytest
import torch

from blendgan import weights
from blendgan.errors import CheckpointError
from blendgan.models import Generator, PSPEncoder, StyleEncoder
from blendgan.models.style_encoder import GRAM_DIM, gram_dim, vgg19_channels

import helpers


def keys(factory):
    with torch.device("meta"):
        return list(factory().state_dict())


@pytest.mark.parametrize(
    "narrow, published",
    [
        (lambda: StyleEncoder(width=8), StyleEncoder),
        (lambda: PSPEncoder(10, 16), lambda: PSPEncoder(10)),
        (lambda: Generator(64, max_channels=32, style_width=8), lambda: Generator(64)),
    ],
)
def test_narrow_models_have_the_published_keys_in_the_same_order(narrow, published):
    assert keys(narrow) == keys(published)


def test_gram_vector_length_follows_the_width():
    assert gram_dim() == GRAM_DIM == 610304 and vgg19_channels() == (64, 128, 256, 512, 512)
    assert gram_dim(8) == 8**2 + 16**2 + 32**2 + 64**2 + 64**2


def test_psp_width_must_suit_the_squeeze_excite_reduction():
    with pytest.raises(ValueError, match="multiple of 16"):
        PSPEncoder(10, 8)


def test_narrow_files_load_at_their_width_and_compute_like_the_modules(tmp_path):
    torch.manual_seed(0)
    g = Generator(64, max_channels=32, style_width=8).eval()
    psp = PSPEncoder(10, 16).eval()
    with torch.no_grad():
        for p in [*g.parameters(), *psp.parameters()]:
            p.normal_(0, 0.3)  # away from the initial ones and zeros, so a mixed-up tensor would show
    helpers.save({"g_ema": g.state_dict(), "latent_avg": torch.zeros(1, 512)}, tmp_path / "g.pt")
    helpers.save(
        {"state_dict": {f"encoder.{k}": v for k, v in psp.encoder.state_dict().items()}, "latent_avg": psp.latent_avg},
        tmp_path / "psp.pt",
    )
    helpers.save(g.embedder.state_dict(), tmp_path / "style.pt")

    g2, info = weights.load_generator(tmp_path / "g.pt")
    psp2 = weights.load_psp_encoder(tmp_path / "psp.pt")
    style2 = weights.load_style_encoder(tmp_path / "style.pt")
    assert (info["max_channels"], g2.embedder.width, style2.width) == (32, 8, 8)
    assert psp2.encoder.input_layer[0].out_channels == 16

    image = torch.rand(1, 3, 80, 80) * 2 - 1
    with torch.no_grad():
        z = g.embedder(image)
        assert torch.equal(style2(image), z) and torch.equal(g2.embedder(image), z)
        codes = psp(image)
        assert torch.equal(psp2(image), codes)
        out, _ = g([codes], input_is_latent=True, z_embed=z, randomize_noise=False)
        out2, _ = g2([codes], input_is_latent=True, z_embed=z, randomize_noise=False)
    assert torch.equal(out, out2)


def test_a_damaged_narrow_file_is_one_line_that_names_the_width(tmp_path):
    sd = StyleEncoder(width=8).state_dict()
    sd["embedder_mlp.0.weight"] = sd["embedder_mlp.0.weight"][:, :100]
    helpers.save(sd, tmp_path / "style.pt")
    with pytest.raises(
        CheckpointError,
        match=r"style\.pt does not hold a BlendGAN style encoder \(8 channels "
        r"wide\): 1 tensors have the wrong shape \(embedder_mlp\.0\.weight",
    ):
        weights.load_style_encoder(tmp_path / "style.pt")
