"""Fast ops against their plain reference versions, for every configuration the models use and more.

The fast path rearranges the math (depthwise FIR convolutions, demodulation from sum-of-squares,
modulating activations instead of weights, fused epilogues), so float64 results must agree with the
reference to rounding (1e-12 relative) and float32 to a few ulps of accumulated rounding (2e-5).
"""

import math

import pytest
import torch

from blendgan import ops
from blendgan.ops.modulated_conv import _fold_into_weight

from helpers import rel_err

TOL = {torch.float64: 1e-12, torch.float32: 2e-5}
DTYPES = [torch.float64, torch.float32]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64).to(dtype)


def std_kernel(factor=1):
    return ops.make_kernel([1, 3, 3, 1]) * factor**2


# ------------------------------------------------------------------------------------------- upfirdn2d

# (up, down, pad): the four configurations the models use, then ones that exercise the other code paths
# (asymmetric pads, up and down together, larger factors, transposed-conv fallback)
FIR_CONFIGS = [
    (2, 1, (2, 1)),
    (1, 2, (1, 1)),
    (1, 1, (1, 1)),
    (1, 1, (2, 2)),
    (1, 1, (0, 3)),
    (2, 2, (1, 1)),
    (3, 1, (2, 1)),
    (2, 1, (0, 0)),
    (2, 1, (4, 0)),
    (1, 3, (2, 0)),
]


@pytest.mark.parametrize("up,down,pad", FIR_CONFIGS)
@pytest.mark.parametrize("kernel", ["standard", "random", "random_3x5"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_upfirdn2d_matches_reference(up, down, pad, kernel, batch, dtype):
    x = randn(batch, 5, 11, 9, seed=1, dtype=dtype)
    k = {"standard": std_kernel(up), "random": randn(4, 4, seed=2), "random_3x5": randn(3, 5, seed=3)}[kernel]
    k = k.to(dtype)
    ref = ops.upfirdn2d_reference(x, k, up=up, down=down, pad=pad)
    out = ops.upfirdn2d(x, k, up=up, down=down, pad=pad)
    assert out.dtype == dtype
    assert rel_err(out, ref) <= TOL[dtype]


@pytest.mark.parametrize("channels_last", [False, True])
def test_upfirdn2d_any_memory_format_and_bias(channels_last):
    x = randn(2, 4, 8, 8, seed=4)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    k, b = randn(4, 4, seed=5), randn(4, seed=6)
    for up, down, pad in [(2, 1, (2, 1)), (1, 1, (1, 1)), (1, 2, (1, 1))]:
        ref = ops.upfirdn2d_reference(x, k, up=up, down=down, pad=pad) + b[None, :, None, None]
        out = ops.upfirdn2d_fast(x, k, up=up, down=down, pad=pad, bias=b)
        assert rel_err(out, ref) <= 1e-12


def test_upfirdn2d_single_channel_and_float32_kernel_on_float64_input():
    x = randn(2, 1, 7, 7, seed=7)
    k = std_kernel(2)  # float32 buffer, as a model in float64 may still hold after loading
    ref = ops.upfirdn2d_reference(x, k, up=2, pad=(2, 1))
    assert rel_err(ops.upfirdn2d(x, k, up=2, pad=(2, 1)), ref) <= 1e-12


@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2)])
def test_upfirdn2d_bfloat16_grouped_and_per_plane_forms_agree(up, down, monkeypatch):
    """bf16 on a CPU without bf16 kernels takes the per-plane conv, elsewhere the grouped one: both give the
    float32 result within bf16 rounding, so the choice changes speed, not pictures."""
    import importlib

    fir = importlib.import_module("blendgan.ops.upfirdn2d")  # the module (blendgan.ops.upfirdn2d is the op)
    x, k = randn(2, 5, 12, 12, seed=81, dtype=torch.float32), ops.make_kernel([1, 3, 3, 1])
    exact = ops.upfirdn2d_reference(x, k, up=up, down=down, pad=(2, 1))
    for grouped in (True, False):
        monkeypatch.setattr(fir, "_grouped_is_fast", lambda t, g=grouped: g)
        out = ops.upfirdn2d(x.bfloat16(), k, up=up, down=down, pad=(2, 1))
        assert out.dtype == torch.bfloat16 and rel_err(out.float(), exact) <= 1e-2


@pytest.mark.parametrize("bad", [dict(pad=(-1, 0)), dict(up=0), dict(down=0)])
def test_upfirdn2d_rejects_what_the_reference_rejects(bad):
    x = randn(1, 2, 6, 6)
    args = dict(up=1, down=1, pad=(1, 1))
    args.update(bad)
    with pytest.raises(ValueError):
        ops.upfirdn2d(x, std_kernel(), **args)


# ------------------------------------------------------------------------------------ fused leaky ReLU


@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 4, 6), (1, 3, 2, 2, 2)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_leaky_relu_matches_reference(shape, dtype):
    x = randn(*shape, seed=8, dtype=dtype)
    b = randn(shape[1], seed=9, dtype=dtype)
    ref = ops.fused_leaky_relu_reference(x, b)
    assert rel_err(ops.fused_leaky_relu(x, b), ref) <= TOL[dtype]
    # other slopes and gains, including a non-positive gain (cannot be folded into the bias)
    for slope, scale in [(0.1, 3.0), (0.2, -1.5)]:
        ref = ops.fused_leaky_relu_reference(x, b, slope, scale)
        assert rel_err(ops.fused_leaky_relu(x, b, slope, scale), ref) <= TOL[dtype]


def test_fused_leaky_relu_does_not_modify_its_input():
    x = randn(2, 3, 4, 4)
    before = x.clone()
    ops.fused_leaky_relu(x, randn(3))
    assert torch.equal(x, before)


# ----------------------------------------------------------------------------- modulated convolution

# (in, out, k, demodulate, upsample, h): small-in-channel/large-map shapes take the per-sample weight
# path, large-in-channel/small-map shapes the shared-weight path; both are checked to be covered.
MODCONV_CONFIGS = {
    "3x3_demod_weightfold": (4, 6, 3, True, False, 16),
    "3x3_demod_sharedweight": (16, 8, 3, True, False, 4),
    "up_demod_weightfold": (4, 6, 3, True, True, 16),
    "up_demod_sharedweight": (16, 8, 3, True, True, 4),
    "torgb_1x1_weightfold": (8, 3, 1, False, False, 8),
    "torgb_1x1_sharedweight": (64, 3, 1, False, False, 1),
    "3x3_no_demod": (5, 4, 3, False, False, 6),
}


def modconv_inputs(cfg, batch, dtype, seed=10):
    in_ch, out_ch, k, _, upsample, h = cfg
    x = randn(batch, in_ch, h, h + 1, seed=seed, dtype=dtype)
    weight = randn(1, out_ch, in_ch, k, k, seed=seed + 1, dtype=dtype)
    styles = (1 + 0.5 * randn(batch, in_ch, seed=seed + 2)).to(dtype)
    return x, weight, styles


def modconv_kwargs(cfg, blur):
    in_ch, _, k, demod, upsample, _ = cfg
    return dict(
        scale=1 / math.sqrt(in_ch * k * k),
        demodulate=demod,
        upsample=upsample,
        blur_kernel=blur if upsample else None,
        blur_pad=(1, 1) if upsample else None,
    )


@pytest.mark.parametrize("name", list(MODCONV_CONFIGS))
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_modulated_conv2d_matches_reference(name, batch, dtype):
    cfg = MODCONV_CONFIGS[name]
    x, weight, styles = modconv_inputs(cfg, batch, dtype)
    expect_fold = name.endswith("weightfold")
    if name.endswith("fold") or name.endswith("weight"):
        assert _fold_into_weight(weight, cfg[0], x.shape[2], x.shape[3]) == expect_fold
    for blur in [std_kernel(2), randn(4, 4, seed=20)]:  # a random (non-separable) kernel too
        kw = modconv_kwargs(cfg, blur.to(dtype))
        ref = ops.modulated_conv2d_reference(x, weight, styles, **kw)
        out = ops.modulated_conv2d(x, weight, styles, **kw)
        assert rel_err(out, ref) <= TOL[dtype]


@pytest.mark.parametrize(
    "name", ["3x3_demod_weightfold", "3x3_demod_sharedweight", "up_demod_weightfold", "up_demod_sharedweight"]
)
@pytest.mark.parametrize("batch,noise_batch", [(1, 1), (3, 1), (3, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_styled_conv_epilogue_matches_reference_chain(name, batch, noise_batch, dtype):
    """bias + noise + fused leaky ReLU folded into the convolution = the reference layer chain."""
    cfg = MODCONV_CONFIGS[name]
    x, weight, styles = modconv_inputs(cfg, batch, dtype, seed=30)
    kw = modconv_kwargs(cfg, randn(4, 4, seed=31, dtype=dtype))
    conv = ops.modulated_conv2d_reference(x, weight, styles, **kw)
    noise = 0.3 * randn(noise_batch, 1, *conv.shape[2:], seed=32, dtype=dtype)
    bias = randn(conv.shape[1], seed=33, dtype=dtype)
    ref = ops.fused_leaky_relu_reference(conv + noise, bias)
    out = ops.modulated_conv2d_fast(
        x, weight, styles, bias=bias, noise=noise, gain=math.sqrt(2), negative_slope=0.2, **kw
    )
    assert rel_err(out, ref) <= TOL[dtype]


@pytest.mark.parametrize("name", ["torgb_1x1_weightfold", "torgb_1x1_sharedweight"])
@pytest.mark.parametrize("batch", [1, 3])
def test_torgb_bias_and_residual(name, batch):
    cfg = MODCONV_CONFIGS[name]
    x, weight, styles = modconv_inputs(cfg, batch, torch.float64, seed=40)
    kw = modconv_kwargs(cfg, None)
    bias = randn(1, 3, 1, 1, seed=41)
    skip = randn(batch, 3, x.shape[2], x.shape[3], seed=42)
    ref = ops.modulated_conv2d_reference(x, weight, styles, **kw) + bias + skip
    out = ops.modulated_conv2d_fast(x, weight, styles, bias=bias, residual=skip, **kw)
    assert out.is_contiguous()  # the image leaves the layer in the standard layout
    assert rel_err(out, ref) <= 1e-12


def test_demodulation_factors_match_the_per_sample_weight_definition():
    weight, styles = randn(1, 7, 5, 3, 3, seed=50), randn(4, 5, seed=51)
    scale = 1 / math.sqrt(5 * 9)
    wgt = scale * weight * styles.reshape(4, 1, 5, 1, 1)
    expected = torch.rsqrt(wgt.pow(2).sum([2, 3, 4]) + 1e-8)
    assert rel_err(ops.demodulation(weight, styles, scale), expected) <= 1e-13
    sq = ops.weight_sum_of_squares(weight)
    assert rel_err(ops.demodulation(weight, styles, scale, weight_sq=sq), expected) <= 1e-13


def test_modulated_conv2d_bfloat16_runs_and_stays_close():
    """Reduced precision on CPU: bfloat16 in, bfloat16 out, within bfloat16's rounding of float32."""
    cfg = MODCONV_CONFIGS["up_demod_weightfold"]
    x, weight, styles = modconv_inputs(cfg, 2, torch.float32, seed=60)
    kw = modconv_kwargs(cfg, std_kernel(2))
    ref = ops.modulated_conv2d_reference(x, weight, styles, **kw)
    out = ops.modulated_conv2d(x.bfloat16(), weight.bfloat16(), styles.bfloat16(), **kw)
    assert out.dtype == torch.bfloat16
    assert rel_err(out.float(), ref) <= 3e-2


# ------------------------------------------------------------------------------------------- linear


@pytest.mark.parametrize("storage", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("batch_shape", [(1,), (3,), (2, 2)])
def test_linear_with_reduced_precision_storage(storage, batch_shape):
    x = randn(*batch_shape, 10000, seed=70, dtype=torch.float32)
    w = randn(6, 10000, seed=71, dtype=torch.float32).to(storage)
    ref = ops.linear_reference(x, w)
    out = ops.linear(x, w, block_columns=4096)  # several blocks, the last one partial
    assert out.dtype == torch.float32 and out.shape == (*batch_shape, 6)
    assert rel_err(out, ref) <= 2e-5


@pytest.mark.parametrize("needs_grad", ["x", "weight"])
def test_linear_with_mixed_dtypes_trains(needs_grad):
    """bf16 activations times a float32 weight wider than one block (a discriminator's last layer under
    autocast): the backward pass gets the gradients of the plain definition."""
    x = randn(3, 50, seed=72, dtype=torch.float32).bfloat16().requires_grad_(needs_grad == "x")
    w = randn(6, 50, seed=73, dtype=torch.float32).requires_grad_(needs_grad == "weight")
    upstream = randn(3, 6, seed=74, dtype=torch.float32).bfloat16()
    out = ops.linear(x, w, block_columns=16)  # four blocks
    (out * upstream).sum().backward()
    leaf = x if needs_grad == "x" else w
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    (torch.nn.functional.linear(x64, w64) * upstream.double()).sum().backward()
    exact = x64.grad if needs_grad == "x" else w64.grad
    assert leaf.grad.dtype == leaf.dtype and rel_err(leaf.grad.float(), exact.float()) <= 1e-2  # bf16 rounding
