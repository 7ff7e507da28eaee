"""Reduced-precision modes stay within their documented error (CPU, bfloat16; float16 is CUDA-only).

Documented bounds (max |x - x_fp32| / max |x_fp32| on the same inputs, recipe-like random weights):
- generator, bfloat16 weights and activations: measured 1.5-4.3 % at 64 and 256 px (1.9 % at 16 px) -> bound 8 %;
  mean |error| / mean |x_fp32| measured 1.3-2.4 % (1.7 % at 16 px) -> bound 4 %. (bfloat16 keeps 8 significant bits,
  ~0.4 % per rounding, and the synthesis network chains ~14 rounded convolutions.)
- pSp encoder codes, bfloat16: measured 0.4-0.5 % -> bound 2 %.
- style matrix stored in float16 / bfloat16, computed in float32: measured 2e-4 / 3e-3 relative on the
  output of a 70000-wide stand-in layer -> bounds 1e-3 / 1e-2. Memory: half of the float32 matrix (625 MB of 1.25 GB).
"""

import pytest
import torch
from test_fast_path import inputs, random_generator
from torch import nn

from blendgan.models import GradualStyleEncoder, use_reference_ops
from blendgan.models.layers import EqualLinear, set_style_matrix_dtype

GEN_BF16_MAX_REL, GEN_BF16_MEAN_REL = 0.08, 0.04
PSP_BF16_MAX_REL = 0.02
STORAGE_MAX_REL = {torch.float16: 1e-3, torch.bfloat16: 1e-2}


def errors(out, ref):
    d = (out.double() - ref.double()).abs()
    return float(d.max() / ref.double().abs().max()), float(d.mean() / ref.double().abs().mean())


# bf16 convolutions run on slow reference kernels on a CPU without bf16 ones (here: minutes at 256 px); the
# bound and the bf16 code path stay in test-fast through the 16 px generator below, which runs the same layers
@pytest.mark.parametrize("size", [pytest.param(64, marks=pytest.mark.slow), pytest.param(256, marks=pytest.mark.slow)])
def test_generator_bfloat16_error_is_within_documented_bound(size):
    g = random_generator(size, seed=size, dtype=torch.float32, random_kernels=False)
    z, _, ze = inputs(2, torch.float32, seed=size)
    with torch.no_grad():
        ref = g([z], z_embed=ze, randomize_noise=False, add_weight_index=6)[0]
        g = g.to(torch.bfloat16)
        out = g([z.bfloat16()], z_embed=ze.bfloat16(), randomize_noise=False, add_weight_index=6)[0]
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    max_rel, mean_rel = errors(out, ref)
    assert max_rel <= GEN_BF16_MAX_REL and mean_rel <= GEN_BF16_MEAN_REL, (max_rel, mean_rel)
    assert max_rel > 1e-4  # it really ran in reduced precision


@pytest.fixture(scope="module")
def generator16():
    """Outputs of one 16 px generator (random FIR kernels) in bfloat16 through the fast and the reference
    ops, and in float32: each bf16 forward (slow on a CPU without bf16 kernels) serves both tests below."""
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        g = random_generator(16, seed=7, dtype=dtype, random_kernels=True)
        z, _, ze = inputs(2, dtype, seed=7)
        with torch.no_grad():
            out[dtype] = g([z], z_embed=ze, randomize_noise=False)[0]
            if dtype == torch.bfloat16:
                out["reference"] = use_reference_ops(g, True)([z], z_embed=ze, randomize_noise=False)[0]
    return out


def test_generator16_bfloat16_error_is_within_documented_bound(generator16):
    """The documented bound at 16 px: every kind of synthesis layer (4 to 16 px, upsampling, ToRGB skips)
    on the same code path as at 64 px."""
    out, ref = generator16[torch.bfloat16], generator16[torch.float32]
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    max_rel, mean_rel = errors(out, ref)
    assert max_rel <= GEN_BF16_MAX_REL and mean_rel <= GEN_BF16_MEAN_REL, (max_rel, mean_rel)
    assert max_rel > 1e-4  # it really ran in reduced precision


def test_generator_bfloat16_reference_path_agrees_with_fast_path(generator16):
    """Both paths run in bfloat16; they differ by bfloat16 rounding only, not by a semantic slip."""
    fast, ref = generator16[torch.bfloat16], generator16["reference"]
    assert ref.dtype == torch.bfloat16
    max_rel, _ = errors(fast, ref)
    assert max_rel <= GEN_BF16_MAX_REL


def test_psp_encoder_bfloat16_error_is_within_documented_bound():
    torch.manual_seed(0)
    enc = GradualStyleEncoder(10).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1  # the inner encoder directly: 16x cheaper than at 256 px
    with torch.no_grad():
        ref = enc(x)
        out = enc.to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    max_rel, _ = errors(out, ref)
    assert 1e-5 < max_rel <= PSP_BF16_MAX_REL, max_rel


class WideMLP(nn.Module):
    """Stand-in for the style encoder's MLP head: one very wide layer, then a narrow one."""

    def __init__(self, width=70000):
        super().__init__()
        self.wide = EqualLinear(width, 16, activation="fused_lrelu")
        self.narrow = EqualLinear(16, 8)

    def forward(self, x):
        return self.narrow(self.wide(x))


@pytest.mark.parametrize("storage", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reference", [False, True])
def test_style_matrix_reduced_storage(storage, reference):
    torch.manual_seed(1)
    m = WideMLP().eval()
    x = torch.rand(3, 70000)
    keys = [(k, v.shape) for k, v in m.state_dict().items()]
    with torch.no_grad():
        ref = m(x)
        saved = set_style_matrix_dtype(m, storage)
        use_reference_ops(m, reference)
        out = m(x)
    assert saved == 70000 * 16 * 2
    assert m.wide.weight.dtype == storage and m.narrow.weight.dtype == torch.float32
    assert [(k, v.shape) for k, v in m.state_dict().items()] == keys
    assert out.dtype == torch.float32
    max_rel, _ = errors(out, ref)
    assert 0 < max_rel <= STORAGE_MAX_REL[storage], max_rel
    assert set_style_matrix_dtype(m, storage) == 0  # idempotent


@pytest.mark.parametrize(
    "cap, allowed",
    [("", True), ("ALL", True), ("avx512_core_bf16", True), ("AVX512_CORE_AMX", True), ("AVX2", False),
     ("AVX512_CORE", False), ("SSE41", False)],
)  # fmt: skip
def test_onednn_isa_cap_below_bf16_counts_as_emulated(monkeypatch, cap, allowed):
    """A run with oneDNN capped below the bf16 ISAs (how an AVX2 machine is imitated on a newer one) takes bf16 as
    emulated, so `--fast` picks fp32 there, whatever the CPU's own flags say."""
    from blendgan.devices import fastest_precision
    from blendgan.ops import bf16

    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    bf16._cpu_bf16_is_emulated.cache_clear()
    try:
        assert bf16._isa_cap_allows_bf16() == allowed
        if not allowed:
            assert bf16.bf16_is_emulated(torch.device("cpu"))
            assert fastest_precision(torch.device("cpu")) == "fp32"
    finally:
        monkeypatch.undo()
        bf16._cpu_bf16_is_emulated.cache_clear()
