"""Whole-model agreement of the fast path with the reference path, and the switch between them.

Models get deterministic random weights in the spirit of the conformance recipe (random FIR kernels
included, so nothing may assume [1,3,3,1]) without needing ../shared. The generators have no style
encoder: every call passes `z_embed`.
"""

import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
import torch

from blendgan import Generator
from blendgan.models import use_reference_ops
from blendgan.models.layers import ModulatedConv2d, OpsSwitch, StyledConv, ToRGB

from helpers import rel_err


def _value(name, shape, seed, random_kernels):
    g = torch.Generator().manual_seed((zlib.crc32(name.encode()) + seed) % 2**63)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if name.endswith("kernel"):
        if random_kernels:
            return x
        t = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
        return torch.outer(t, t) / 64 * 4
    if name == "add_weight":
        return torch.rand(shape, generator=g, dtype=torch.float64)
    if name.startswith(("style.", "embedding.")) and name.endswith("weight") and len(shape) == 2:
        return 100 * x  # lr_mul 0.01 mapping layers
    if "modulation.bias" in name:
        return 1 + 0.1 * x
    if name.endswith("bias") or name.endswith("noise.weight"):
        return 0.1 * x
    return x


def random_generator(size, seed=0, dtype=torch.float64, random_kernels=True, channel_multiplier=2):
    """Generator(size) with deterministic random weights, built without the style encoder: every call here
    passes z_embed (a call that reached the encoder would fail), and its 610304 x 512 matrix would only be
    allocated, copied and cast."""
    with torch.device("meta"):
        g = Generator(size, channel_multiplier=channel_multiplier, with_style_encoder=False)
    g = g.to_empty(device="cpu").eval()
    with torch.no_grad():
        for name, t in [*g.named_parameters(), *g.named_buffers()]:
            if t.dtype.is_floating_point:
                t.copy_(_value(name, t.shape, seed, random_kernels))
    for t in [*g.parameters(), *g.buffers()]:
        if t.dtype.is_floating_point:
            t.data = t.data.to(dtype)
    return g


def inputs(batch, dtype, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 512, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3)]


CALLS = {
    "z_embed_awi6": lambda z, z2, ze: dict(styles=[z], z_embed=ze, add_weight_index=6),
    "z_embed_blend": lambda z, z2, ze: dict(styles=[z], z_embed=ze),
    "mixing_truncation": lambda z, z2, ze: dict(
        styles=[z, z2], inject_index=3, truncation=0.7, truncation_latent=ze[:1]
    ),
}


def run(g, call, batch, dtype):
    z, z2, ze = inputs(batch, dtype)
    with torch.no_grad():
        return g(randomize_noise=False, **CALLS[call](z, z2, ze))[0]


@pytest.fixture(scope="module")
def g32():
    # float64 convolutions are slow on CPU, so the float64 checks use size 32 (all 512-channel layers);
    # the per-sample-weight path of the higher resolutions is covered by the 128-px test below
    return random_generator(32)


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("batch", [1, 3])
def test_generator32_float64_fast_equals_reference(g32, call, batch):
    fast = run(use_reference_ops(g32, False), call, batch, torch.float64)
    ref = run(use_reference_ops(g32, True), call, batch, torch.float64)
    use_reference_ops(g32, False)
    assert fast.shape == (batch, 3, 32, 32)
    assert rel_err(fast, ref) <= 1e-11


def test_generator32_batch_is_per_sample(g32):
    """Per-sample weights and shared-weight modulation keep samples independent."""
    z, z2, ze = inputs(3, torch.float64)
    with torch.no_grad():
        batch = g32([z], z_embed=ze, randomize_noise=False)[0]
        single = torch.cat([g32([z[i : i + 1]], z_embed=ze[i : i + 1], randomize_noise=False)[0] for i in range(3)])
    assert rel_err(batch, single) <= 1e-12


def test_generator_explicit_and_batched_noise(g32):
    """Per-sample noise maps [N, 1, H, W] (randomize_noise-style) go through the fused epilogue."""
    z, _, ze = inputs(2, torch.float64)
    gen = torch.Generator().manual_seed(5)
    noise = [torch.randn(2, 1, *b.shape[2:], generator=gen, dtype=torch.float64) for b in g32.noises.maps()]
    with torch.no_grad():
        fast = g32([z], z_embed=ze, noise=noise)[0]
        ref = use_reference_ops(g32, True)([z], z_embed=ze, noise=noise)[0]
    use_reference_ops(g32, False)
    assert rel_err(fast, ref) <= 1e-11


@pytest.mark.slow  # a 128 px generator in float64
def test_generator128_high_resolution_path_float64_and_float32():
    """Channel multiplier 1 at 128 px: 128-256 channel layers take the per-sample-weight path."""
    g = random_generator(128, seed=3, channel_multiplier=1)
    assert not g.convs[-1].conv.reference
    ref = run(use_reference_ops(g, True), "z_embed_awi6", 2, torch.float64)
    fast = run(use_reference_ops(g, False), "z_embed_awi6", 2, torch.float64)
    assert rel_err(fast, ref) <= 1e-11
    fast32 = run(g.float(), "z_embed_awi6", 2, torch.float32)
    assert fast32.dtype == torch.float32
    assert rel_err(fast32, ref) <= 2e-5


def test_standard_kernel_generator_agrees_too():
    g = random_generator(32, seed=4, random_kernels=False)
    fast = run(g, "z_embed_awi6", 2, torch.float64)
    ref = run(use_reference_ops(g, True), "z_embed_awi6", 2, torch.float64)
    assert rel_err(fast, ref) <= 1e-11


def test_fast_forward_is_pure(g32):
    """No parameter or buffer changes in forward (the WBM clamp included)."""
    before = {k: v.clone() for k, v in g32.state_dict().items()}
    run(g32, "z_embed_blend", 2, torch.float64)
    after = g32.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k


def test_use_reference_ops_switches_every_layer(g32):
    switches = [m for m in g32.modules() if isinstance(m, OpsSwitch)]
    kinds = {type(m) for m in switches}
    assert {StyledConv, ToRGB, ModulatedConv2d} <= kinds
    use_reference_ops(g32, True)
    assert all(m.reference for m in switches)
    use_reference_ops(g32, False)
    assert not any(m.reference for m in switches)


def test_fast_path_changes_no_state_dict_key_or_shape():
    with torch.device("meta"):
        a, b = Generator(64), Generator(64)
    use_reference_ops(b, True)
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]


@pytest.mark.slow  # several generator builds
def test_prepare_for_inference_gives_the_same_numbers_and_notices_weight_changes():
    from blendgan.models import prepare_for_inference

    g = random_generator(16, seed=8)
    keys = list(g.state_dict())
    plain = run(g, "z_embed_awi6", 2, torch.float64)
    assert prepare_for_inference(g) is g
    assert list(g.state_dict()) == keys  # derived buffers are not persistent
    convs = [m for m in g.modules() if isinstance(m, ModulatedConv2d)]
    assert all(m.derived() for m in convs)
    assert rel_err(run(g, "z_embed_awi6", 2, torch.float64), plain) <= 1e-14
    # new weights loaded in place: the derived tensors are stale and must not be used
    sd = {k: (v * 1.5 if k.endswith("conv.weight") else v) for k, v in g.state_dict().items()}
    g.load_state_dict(sd)
    assert not any(m.derived() for m in convs)
    fresh = random_generator(16, seed=8)
    fresh.load_state_dict(sd)
    assert rel_err(run(g, "z_embed_awi6", 2, torch.float64), run(fresh, "z_embed_awi6", 2, torch.float64)) == 0
    # cast after preparing: ignored too; preparing again re-enables them in the new dtype
    g = prepare_for_inference(g).float()
    assert not any(m.derived() for m in convs)
    prepare_for_inference(g)
    assert all(m.derived()["weight_sq"].dtype == torch.float32 for m in convs if m.demodulate)
    assert (
        rel_err(run(g, "z_embed_awi6", 2, torch.float32), run(fresh.float(), "z_embed_awi6", 2, torch.float32)) <= 1e-6
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
@pytest.mark.slow  # large allocations in a child process
def test_reuse_freed_memory_stops_refaulting_large_blocks():
    """With reuse_freed_memory() a repeated workload of 64 MB tensors gets its memory from the heap
    instead of fresh zero-filled pages (run in a child process: the setting is process-wide)."""
    code = textwrap.dedent("""
        import resource, sys, torch
        from blendgan.allocator import reuse_freed_memory, release_freed_memory
        if sys.argv[1] == "on":
            assert reuse_freed_memory() and reuse_freed_memory()
        def work():
            a = torch.ones(16 * 2 ** 20); b = a * 2; c = b + a; del a; d = c * 3; del b
            return float(d.sqrt()[0])
        faults = []
        for _ in range(6):
            r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            work()
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
        print(sum(faults[2:]))
        assert release_freed_memory()
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "THP_MEM_ALLOC_ENABLE": "0"}
    counts = {}
    for mode in ("off", "on"):
        proc = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        counts[mode] = int(proc.stdout.split()[-1])
    # off: every 64 MB tensor is fresh 4 kB pages (~80k faults a call); on: mostly reused heap memory
    assert counts["off"] > 4 * 50000
    assert counts["on"] < counts["off"] / 3, counts


@pytest.mark.slow  # IR-SE50 in float64
def test_psp_encoder_fast_equals_reference():
    """The pSp encoder has no resampling ops; its EqualLinear heads still go through the switch."""
    from blendgan.models import GradualStyleEncoder

    torch.manual_seed(2)
    enc = GradualStyleEncoder(10).double().eval()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 2 - 1  # the inner encoder directly, at 64 px
    with torch.no_grad():
        fast = use_reference_ops(enc, False)(x)
        ref = use_reference_ops(enc, True)(x)
    assert fast.shape == (2, 10, 512)
    assert rel_err(fast, ref) <= 1e-12


@pytest.mark.slow  # backward through a generator in float64
def test_fast_path_is_differentiable_like_the_reference():
    """With autograd on (e.g. latent optimisation) the fast path gives the reference's gradients."""
    g = random_generator(16, seed=9)
    z0, _, ze = inputs(2, torch.float64, seed=9)
    grads = {}
    for impl in ("fast", "reference"):
        use_reference_ops(g, impl == "reference")
        z = z0.clone().requires_grad_(True)
        image = g([z], z_embed=ze, randomize_noise=False)[0]
        image.square().mean().backward()
        grads[impl] = (image.detach(), z.grad, g.convs[-1].conv.weight.grad.clone())
        g.zero_grad(set_to_none=True)
    use_reference_ops(g, False)
    for fast, ref in zip(grads["fast"], grads["reference"]):
        assert rel_err(fast, ref) <= 1e-10
