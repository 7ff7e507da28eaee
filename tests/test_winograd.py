"""Winograd F(m x m, 3 x 3) convolution against direct convolution and the reference path."""
import pytest
import torch
import torch.nn.functional as F

from blendgan.models import prepare_for_inference, use_reference_ops
from blendgan.ops import modulated_conv2d_fast, modulated_conv2d_reference, winograd

from test_fast_path import inputs, random_generator, rel_err


@pytest.fixture(autouse=True)
def winograd_on():
    """The path is opt-in (off by default): these tests switch it on and restore the setting."""
    old = winograd.set_enabled(True)
    yield
    winograd.set_enabled(old)


@pytest.mark.parametrize("m", [2, 4])
def test_one_dimensional_identity(m):
    """A^T [(G g) . (B^T d)] is the correlation of d with g (Lavin & Gray's F(m, 3))."""
    bt, g_mat, at = winograd.transform_matrices(m)
    gen = torch.Generator().manual_seed(m)
    d = torch.randn(m + 2, generator=gen, dtype=torch.float64)
    g = torch.randn(3, generator=gen, dtype=torch.float64)
    expected = torch.stack([(d[i:i + 3] * g).sum() for i in range(m)])
    assert torch.allclose(at @ ((g_mat @ g) * (bt @ d)), expected, rtol=0, atol=1e-13)


CASES = [  # (batch, in, out, H, W): odd sizes (partial tiles), non-square, tiny and many channels
    (1, 8, 8, 8, 8), (3, 5, 7, 7, 10), (2, 16, 3, 1, 1), (1, 4, 6, 2, 9), (2, 32, 32, 13, 6),
]


def _data(batch, cin, cout, h, w, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cin, h, w, generator=gen, dtype=torch.float64)
    wt = torch.randn(cout, cin, 3, 3, generator=gen, dtype=torch.float64)
    s_in = 1 + 0.5 * torch.rand(batch, cin, generator=gen, dtype=torch.float64)
    s_out = 0.5 + torch.rand(batch, cout, generator=gen, dtype=torch.float64)
    bias = torch.randn(cout, generator=gen, dtype=torch.float64)
    return [t.to(dtype) for t in (x, wt, s_in, s_out, bias)]


def _direct(x, wt, s_in, s_out, bias):
    return F.conv2d(x * s_in[:, :, None, None], wt, padding=1) * s_out[:, :, None, None] + bias[:, None, None]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fold", [False, True])
def test_op_equals_direct_convolution_float64(m, case, fold, monkeypatch):
    monkeypatch.setattr(winograd, "CHUNK_ELEMENTS", 1)  # one tile row per chunk: chunk edges everywhere
    x, wt, s_in, s_out, bias = _data(*case, torch.float64)
    out = winograd.winograd_conv3x3(x, winograd.weight_transform(wt, m), m, in_scale=s_in, out_scale=s_out,
                                    bias=bias, fold_into_weight=fold)
    assert out.shape == (case[0], case[2], case[3], case[4])
    assert out.is_contiguous(memory_format=torch.channels_last) or min(case[3:]) == 1
    assert rel_err(out, _direct(x, wt, s_in, s_out, bias)) <= 1e-13
    plain = winograd.winograd_conv3x3(x, winograd.weight_transform(wt, m), m)
    assert rel_err(plain, F.conv2d(x, wt, padding=1)) <= 1e-13


@pytest.mark.parametrize("m, bound", [(2, 2e-6), (4, 5e-5)])
def test_float32_error_bound(m, bound):
    """float32 rounding: F(2x2) is as accurate as a direct conv; F(4x4)'s transforms lose a few bits."""
    x, wt, s_in, s_out, bias = _data(2, 256, 256, 16, 16, torch.float64, seed=3)
    ref = _direct(x, wt, s_in, s_out, bias)
    out = winograd.winograd_conv3x3(x.float(), winograd.weight_transform(wt.float(), m), m, in_scale=s_in.float(),
                                    out_scale=s_out.float(), bias=bias.float())
    assert rel_err(out, ref) <= bound


def _modconv_args(batch, cin, cout, h, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cin, h, h, generator=gen)
    weight = torch.randn(1, cout, cin, 3, 3, generator=gen)
    styles = 1 + 0.3 * torch.randn(batch, cin, generator=gen)
    return x, weight, styles, 1 / (cin * 9) ** 0.5


def test_modulated_conv_dispatch_matches_reference_and_is_per_sample():
    x, weight, styles, scale = _modconv_args(3, 128, 128, 12)
    assert winograd.choose_tile(x, weight) == winograd.TILE
    calls = []
    real = winograd.winograd_conv3x3
    try:
        winograd.winograd_conv3x3 = lambda *a, **k: calls.append(1) or real(*a, **k)
        out = modulated_conv2d_fast(x, weight, styles, scale=scale)
    finally:
        winograd.winograd_conv3x3 = real
    assert calls, "the Winograd path did not run"
    ref = modulated_conv2d_reference(x.double(), weight.double(), styles.double(), scale=scale)
    assert rel_err(out, ref) <= 2e-5
    old = winograd.set_enabled(False)
    try:
        direct = modulated_conv2d_fast(x, weight, styles, scale=scale)
    finally:
        winograd.set_enabled(old)
    assert rel_err(direct, ref) <= 1e-5
    # the pipeline promises bitwise-identical images whatever the batch size
    singles = torch.cat([modulated_conv2d_fast(x[i:i + 1], weight, styles[i:i + 1], scale=scale) for i in range(3)])
    assert torch.equal(out, singles)


def test_dispatch_keeps_direct_conv_where_winograd_does_not_pay_or_is_imprecise():
    x, weight, _, _ = _modconv_args(1, 128, 128, 16)
    assert winograd.choose_tile(x, weight) == winograd.TILE
    assert winograd.choose_tile(x.double(), weight.double()) is None
    assert winograd.choose_tile(x.bfloat16(), weight.bfloat16()) is None
    assert winograd.choose_tile(x[:, :64], weight[:, :, :64]) is None  # too few channels
    assert winograd.choose_tile(x[:, :, :4, :4], weight) is None  # too small
    assert winograd.prepared_weight(weight, upsample=True) is None
    assert winograd.prepared_weight(weight[:, :, :, :1, :1]) is None


def test_autograd_falls_back_to_the_differentiable_path():
    x, weight, styles, scale = _modconv_args(2, 128, 128, 8)
    weight.requires_grad_(True)
    out = modulated_conv2d_fast(x, weight, styles, scale=scale)
    out.square().sum().backward()
    w2 = weight.detach().double().requires_grad_(True)
    modulated_conv2d_reference(x.double(), w2, styles.double(), scale=scale).square().sum().backward()
    assert rel_err(weight.grad, w2.grad) <= 1e-4


@pytest.fixture(scope="module")
def g256():
    return random_generator(256, seed=5, dtype=torch.float32)


@pytest.mark.parametrize("size, batch", [(64, 2), (256, 1)])
def test_generator_float32_with_winograd_within_1e4_of_reference(g256, size, batch):
    from test_fast_path import run

    g = g256 if size == 256 else random_generator(size, seed=6, dtype=torch.float32)
    ref = run(use_reference_ops(g, True), "z_embed_awi6", batch, torch.float32)
    use_reference_ops(g, False)
    unprepared = run(g, "z_embed_awi6", batch, torch.float32)
    prepare_for_inference(g)
    assert any(getattr(m, "weight_winograd", None) is not None for m in g.modules())
    fast = run(g, "z_embed_awi6", batch, torch.float32)
    assert torch.equal(fast, unprepared)  # the cached transformed weights change nothing
    assert rel_err(fast, ref) <= 1e-4


@pytest.mark.parametrize("shape", [(1, 128, 8, 8), (2, 128, 64, 40)])  # 8 px: 2 tile rows (threads > chunks)
def test_result_does_not_depend_on_the_thread_count(shape):
    """1 or 2 torch threads, 2 or 3 workers: the same bits (images must not depend on the thread count,
    e.g. one process with 2 threads against 2 processes with 1)."""
    gen = torch.Generator().manual_seed(3)
    n, c = shape[:2]
    x = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
    u = winograd.weight_transform(torch.randn(c, c, 3, 3, generator=gen) / 34, winograd.TILE)
    s_in, s_out = torch.rand(n, c, generator=gen) + 0.5, torch.rand(n, c, generator=gen) + 0.5
    caller_threads = torch.get_num_threads()
    outs = []
    try:
        for torch_threads, workers in [(1, None), (2, None), (2, 3)]:  # None: torch's thread count
            torch.set_num_threads(torch_threads)
            outs.append(winograd.winograd_conv3x3(x, u, winograd.TILE, in_scale=s_in, out_scale=s_out,
                                                  threads=workers))
    finally:
        torch.set_num_threads(caller_threads)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_off_switch_keeps_the_direct_path_and_stores_no_transformed_weight():
    x, weight, styles, scale = _modconv_args(1, 128, 128, 16)
    with torch.inference_mode():
        on = modulated_conv2d_fast(x, weight, styles, scale=scale)
        winograd.set_enabled(False)
        assert winograd.choose_tile(x, weight) is None
        assert winograd.prepared_weight(weight) is None
        off = modulated_conv2d_fast(x, weight, styles, scale=scale)
    assert not torch.equal(on, off) and rel_err(on, off) <= 1e-5  # other rounding: another algorithm ran
