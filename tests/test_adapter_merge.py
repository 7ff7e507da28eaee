"""An adapter merged into the weights at load (`--adapter FILE:SCALE`) draws what the training-time form draws at
that scale (the parametrised layers of `blendgan fit-style`), within float32 rounding."""

import copy

import pytest
import torch

from blendgan.fitting import adapter


@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_merged_adapter_equals_the_training_time_adapter(recipe_models, tmp_path, scale):
    base, _ = copy.deepcopy(recipe_models(64, tiny=True))
    base.eval().requires_grad_(False)
    trained = copy.deepcopy(base)
    layers = adapter.select_layers(trained, "all")
    deltas = adapter.attach(trained, layers, rank=2, seed=3)
    with torch.no_grad():  # a trained adapter: B is no longer zero
        g = torch.Generator().manual_seed(5)
        for lora in deltas.values():
            lora.b.copy_(torch.randn(lora.b.shape, generator=g) * 0.05)
    path = tmp_path / "adapter.safetensors"
    meta = {"base_fingerprint": adapter.generator_fingerprint(base), "base_checkpoint": "recipe"}
    adapter.save_adapter(path, adapter.delta_tensors(deltas), meta)
    merged = copy.deepcopy(base)
    adapter.merge_adapter(merged, path, scale)

    codes = torch.randn(2, base.n_latent, 512, generator=torch.Generator().manual_seed(1))
    z = torch.randn(2, 512, generator=torch.Generator().manual_seed(2))
    kwargs = {"input_is_latent": True, "randomize_noise": False, "z_embed": z, "add_weight_index": 6}
    with torch.no_grad():
        with adapter.scaled(trained, scale):
            want = trained([codes], **kwargs)[0]
        got = merged([codes], **kwargs)[0]
        plain = base([codes], **kwargs)[0]
    assert (want - plain).abs().max() > 1e-2  # the adapter changes the image
    # float32 rounding through the network: the two forms add B A to W in different orders
    error = float((got - want).abs().max() / want.abs().max())
    assert error < 2e-5, error
