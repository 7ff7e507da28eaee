"""Modulated (and demodulated) convolution of StyleGAN2 (spec section 2.3).

`modulated_conv2d_reference` builds one kernel per sample and runs one grouped convolution, the
straightforward form of the spec's math.
"""
import torch
import torch.nn.functional as F

from .upfirdn2d import upfirdn2d_reference

DEMOD_EPS = 1e-8


def modulated_conv2d_reference(x, weight, styles, *, scale, demodulate=True, upsample=False,
                               blur_kernel=None, blur_pad=(1, 1), upfirdn=upfirdn2d_reference):
    """Per-sample modulated convolution.

    x: [N, in, H, W]; weight: [1, out, in, k, k] (raw stored weight); styles: [N, in] (modulation output);
    scale: 1/sqrt(in*k*k). With `upsample`, a stride-2 transposed convolution followed by the FIR blur
    (`blur_kernel`, pads `blur_pad`) doubles the resolution.
    """
    n, in_ch, h, w = x.shape
    _, out_ch, _, k, _ = weight.shape
    wgt = scale * weight * styles.reshape(n, 1, in_ch, 1, 1)  # [N, out, in, k, k]
    if demodulate:
        demod = torch.rsqrt(wgt.pow(2).sum([2, 3, 4]) + DEMOD_EPS)
        wgt = wgt * demod.reshape(n, out_ch, 1, 1, 1)
    if upsample:
        # conv_transpose2d wants [in, out, k, k] per group: input channel i scatters into output o.
        wgt = wgt.transpose(1, 2).reshape(n * in_ch, out_ch, k, k)
        out = F.conv_transpose2d(x.reshape(1, n * in_ch, h, w), wgt, stride=2, padding=0, groups=n)
        out = out.reshape(n, out_ch, out.shape[2], out.shape[3])
        return upfirdn(out, blur_kernel, pad=blur_pad)
    wgt = wgt.reshape(n * out_ch, in_ch, k, k)
    out = F.conv2d(x.reshape(1, n * in_ch, h, w), wgt, padding=k // 2, groups=n)
    return out.reshape(n, out_ch, h, w)


def modulated_conv2d(x, weight, styles, **kwargs):
    """Public entry point; same numbers as the reference."""
    return modulated_conv2d_reference(x, weight, styles, **kwargs)
