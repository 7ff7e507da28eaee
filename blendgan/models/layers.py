"""StyleGAN2 building blocks with the original state-dict names.

Every layer that has a fast and a reference implementation reads `self.reference` (default False) to
choose; `use_reference_ops(model, True)` flips it on a whole model (tests, benchmarks).
"""

import math

import torch
from torch import nn

from .. import ops


class OpsSwitch(nn.Module):
    """Base for layers whose ops have a reference and a fast implementation."""

    reference = False


def use_reference_ops(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Make every layer of `model` use the plain reference ops (True) or the fast ones (False)."""
    for m in model.modules():
        if isinstance(m, OpsSwitch):
            m.reference = enabled
    return model


def random_normal(*shape, divisor=1.0):
    """Initial weights: standard normal / `divisor` (what torch.randn gives).

    On the meta device (checkpoints are loaded by building there and adopting the file's tensors) the
    values are left undefined: random math on meta tensors goes through Python decompositions that import
    sympy and torch._dynamo (time and memory per process: docs/speed.md, "Figures behind code comments"), for
    values that are thrown away.
    """
    t = torch.empty(shape)
    if not t.is_meta:
        t.normal_()
        if divisor != 1.0:
            t.div_(divisor)
    return t


LARGE_LINEAR_MIN_INPUTS = 1 << 16  # only the style encoder's 610304-wide layer is this wide


def set_style_matrix_dtype(model, dtype):
    """Store the weight of every very wide EqualLinear (the style encoder's 610304 x 512 matrix,
    1.25 GB in float32) in `dtype` (torch.float16 or torch.bfloat16) to halve its memory.

    Call it once after loading and after any `model.to(dtype)` (which would cast it back). Forward still
    computes in the activations' dtype (`ops.linear` upcasts the weight block by block), so only the
    storage rounding reaches `z_embed`. State-dict keys and shapes are unchanged. Returns bytes saved.
    """
    saved = 0
    for m in model.modules():
        if isinstance(m, EqualLinear) and m.weight.shape[1] >= LARGE_LINEAR_MIN_INPUTS and m.weight.dtype != dtype:
            w = m.weight.detach()
            new = w.to(dtype)
            saved += w.numel() * (w.element_size() - new.element_size())
            m.weight = nn.Parameter(new, requires_grad=False)
    return saved


def prepare_for_inference(model: nn.Module, style_matrix_dtype: "torch.dtype | None" = None) -> nn.Module:
    """Optional one-time step after loading (and after the final `model.to(device, dtype)`).

    - Every ModulatedConv2d gets non-persistent buffers derived from its weight: `weight_sq`
      (sum over the taps of w^2, for the demodulation factors) and, for upsampling convs, `weight_t`
      (the weight laid out for conv_transpose2d). The fast path then skips recomputing them per call
      (docs/speed.md, "Figures behind code comments", gives the saving). They are not in the state dict, are
      moved by `.to()`,
      and are ignored (recomputed on the fly) as soon as the weight is replaced, re-loaded or cast,
      so results never depend on whether this was called; call it again after such changes to regain
      the saving. In-place edits through `weight.data` are not detected: call it again after those.
    - `style_matrix_dtype` (torch.float16 / torch.bfloat16): see `set_style_matrix_dtype`.
    Returns the model.
    """
    for m in model.modules():
        if isinstance(m, ModulatedConv2d):
            m.derive_inference_buffers()
    if style_matrix_dtype is not None:
        set_style_matrix_dtype(model, style_matrix_dtype)
    return model


def _weight_key(weight):
    """Identity of a weight's current values: storage, dtype, device and in-place version."""
    return (weight.data_ptr(), weight.dtype, weight.device, weight._version)


class PixelNorm(nn.Module):
    """x * rsqrt(mean(x^2 over features) + 1e-8)."""

    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class EqualLinear(OpsSwitch):
    """Linear layer with equalized learning rate. Keys: `weight [out, in]`, `bias [out]`."""

    def __init__(self, in_dim, out_dim, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.weight = nn.Parameter(random_normal(out_dim, in_dim, divisor=lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x):
        # x @ (c*W)^T computed as (x @ W^T) * c: same math, and no scaled copy of W per call
        # (that copy is 1.25 GB for the style encoder's 610304-wide layer).
        # the weight may be stored in a lower precision than x (see `set_style_matrix_dtype`)
        out = (ops.linear_reference if self.reference else ops.linear)(x, self.weight) * self.scale
        bias = self.bias * self.lr_mul
        if self.activation:
            act = ops.fused_leaky_relu_reference if self.reference else ops.fused_leaky_relu
            return act(out, bias)
        return out + bias

    def extra_repr(self):
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}, activation={self.activation}"


class FusedLeakyReLU(OpsSwitch):
    """Bias + leaky ReLU(0.2) + gain sqrt(2) as a module; key `bias [C]`."""

    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        act = ops.fused_leaky_relu_reference if self.reference else ops.fused_leaky_relu
        return act(x, self.bias)


class Upsample(OpsSwitch):
    """2x FIR upsampling of the ToRGB skip path: kernel k*4, up 2, pads (2, 1). Key `kernel [4, 4]`."""

    def __init__(self, blur_kernel=(1, 3, 3, 1), factor=2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", ops.make_kernel(blur_kernel, scale=factor**2))
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        fir = ops.upfirdn2d_reference if self.reference else ops.upfirdn2d
        return fir(x, self.kernel, up=self.factor, down=1, pad=self.pad)


class Blur(OpsSwitch):
    """FIR blur; after the transposed modulated conv it uses kernel k*4 and pads (1, 1). Key `kernel`."""

    def __init__(self, blur_kernel, pad, upsample_factor=1):
        super().__init__()
        self.register_buffer("kernel", ops.make_kernel(blur_kernel, scale=upsample_factor**2))
        self.pad = tuple(pad)

    def forward(self, x):
        fir = ops.upfirdn2d_reference if self.reference else ops.upfirdn2d
        return fir(x, self.kernel, pad=self.pad)


class ModulatedConv2d(OpsSwitch):
    """Modulated convolution. Keys: `weight [1, out, in, k, k]`, `modulation.*`,
    and `blur.kernel` for the upsampling variant."""

    def __init__(
        self, in_channel, out_channel, kernel_size, style_dim, demodulate=True, upsample=False, blur_kernel=(1, 3, 3, 1)
    ):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.weight = nn.Parameter(random_normal(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)

    def derive_inference_buffers(self):
        """Precompute `weight_sq` and (upsampling) `weight_t` from the current weight; see
        `prepare_for_inference`."""
        with torch.no_grad():
            w = self.weight.detach()
            self.register_buffer(
                "weight_sq", ops.weight_sum_of_squares(w) if self.demodulate else None, persistent=False
            )
            self.register_buffer(
                "weight_t", w[0].transpose(0, 1).contiguous() if self.upsample else None, persistent=False
            )
        self._derived_key = _weight_key(self.weight)

    def derived(self):
        """{'weight_sq': ..., 'weight_t': ...} when still valid for the current weight, else {}."""
        key = getattr(self, "_derived_key", None)
        if key is None:
            return {}
        # Under torch.compile the check is left out: it guards on data pointers, which differ per layer
        # and made dynamo recompile every layer until its limit. Compiling is for inference on prepared,
        # frozen weights (the pipeline's --compile), where the buffers cannot be stale.
        if not torch.compiler.is_compiling() and key != _weight_key(self.weight):
            return {}
        return {"weight_sq": self.weight_sq, "weight_t": self.weight_t}

    def forward(self, x, w):
        styles = self.modulation(w)
        kwargs = dict(
            scale=self.scale,
            demodulate=self.demodulate,
            upsample=self.upsample,
            blur_kernel=self.blur.kernel if self.upsample else None,
            blur_pad=self.blur.pad if self.upsample else None,
        )
        if self.reference:
            return ops.modulated_conv2d_reference(x, self.weight, styles, upfirdn=ops.upfirdn2d_reference, **kwargs)
        return ops.modulated_conv2d(x, self.weight, styles, **self.derived(), **kwargs)

    def extra_repr(self):
        return (
            f"{self.in_channel}, {self.out_channel}, {self.kernel_size}, "
            f"demodulate={self.demodulate}, upsample={self.upsample}"
        )


class NoiseInjection(nn.Module):
    """Adds `weight * noise` (a scalar weight; noise broadcast over channels). Key `weight [1]`."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise):
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """Learned constant `input [1, C, 4, 4]`, repeated over the batch."""

    def __init__(self, channel, size=4):
        super().__init__()
        self.input = nn.Parameter(random_normal(1, channel, size, size))

    def forward(self, batch):
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(OpsSwitch):
    """Modulated conv + noise + fused leaky ReLU.

    The fast path runs all of it as one `ops.modulated_conv2d_fast` call (noise, bias and activation in
    the convolution's epilogue); the reference path chains the three sub-modules."""

    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x, w, noise):
        if self.reference:
            return self.activate(self.noise(self.conv(x, w), noise))
        conv = self.conv
        return ops.modulated_conv2d_fast(
            x,
            conv.weight,
            conv.modulation(w),
            scale=conv.scale,
            demodulate=True,
            upsample=conv.upsample,
            blur_kernel=conv.blur.kernel if conv.upsample else None,
            blur_pad=conv.blur.pad if conv.upsample else None,
            bias=self.activate.bias,
            noise=None if noise is None else self.noise.weight * noise,
            gain=ops.activation.GAIN,
            negative_slope=ops.activation.NEGATIVE_SLOPE,
            **conv.derived(),
        )


class ToRGB(OpsSwitch):
    """1x1 modulated conv without demodulation, plus bias, plus the upsampled skip image.

    Registration order (bias, upsample, conv) mirrors the original state-dict order."""

    def __init__(self, in_channel, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)

    def forward(self, x, w, skip=None):
        if self.reference:
            out = self.conv(x, w) + self.bias
            if skip is not None:
                out = out + self.upsample(skip)
            return out
        residual = self.upsample(skip) if skip is not None else None
        return ops.modulated_conv2d_fast(
            x,
            self.conv.weight,
            self.conv.modulation(w),
            scale=self.conv.scale,
            demodulate=False,
            bias=self.bias,
            residual=residual,
            **self.conv.derived(),
        )


class EqualConv2d(nn.Module):
    """Convolution with equalized learning rate: weight `[out, in, k, k]` ~ N(0, 1) scaled by
    1/sqrt(in·k²) at run time, optional bias `[out]` (the discriminators' layers)."""

    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(random_normal(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x):
        return torch.nn.functional.conv2d(
            x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding
        )

    def extra_repr(self):
        out, inp, k, _ = self.weight.shape
        return f"{inp}, {out}, {k}, stride={self.stride}, padding={self.padding}"
