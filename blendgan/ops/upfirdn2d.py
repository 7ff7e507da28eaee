"""FIR upsample -> pad -> filter -> downsample (spec section 1.1).

`upfirdn2d_reference` is the plain definition (zero insertion, zero padding, a true 2-D convolution,
subsampling) and is what every faster variant is tested against.
"""
import torch
import torch.nn.functional as F


def make_kernel(taps):
    """Normalized 2-D FIR kernel: outer product of the 1-D taps divided by its sum (spec 1.1)."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def _check_args(x, kernel, up, down, pad):
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NCHW input, got shape {tuple(x.shape)}")
    if kernel.ndim != 2:
        raise ValueError(f"upfirdn2d expects a 2-D kernel, got shape {tuple(kernel.shape)}")
    if up < 1 or down < 1:
        raise ValueError("up and down must be >= 1")
    p0, p1 = pad
    if p0 < 0 or p1 < 0:
        raise ValueError("negative padding is not supported")
    return int(p0), int(p1)


def upfirdn2d_reference(x, kernel, up=1, down=1, pad=(0, 0)):
    """Reference upfirdn2d: every (sample, channel) plane independently, same parameters on both axes."""
    p0, p1 = _check_args(x, kernel, up, down, pad)
    n, c, h, w = x.shape
    planes = x.reshape(n * c, 1, h, w)
    if up > 1:
        # Zeros follow each sample: originals land on indices 0, up, 2*up, ...
        zeros = planes.new_zeros(n * c, 1, h * up, w * up)
        zeros[:, :, ::up, ::up] = planes
        planes = zeros
    planes = F.pad(planes, (p0, p1, p0, p1))
    # conv2d is a cross-correlation; flipping the kernel makes it a true convolution.
    weight = torch.flip(kernel, [0, 1]).to(planes)[None, None]
    planes = F.conv2d(planes, weight)
    planes = planes[:, :, ::down, ::down]
    return planes.reshape(n, c, planes.shape[2], planes.shape[3])


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    """Public entry point; dispatches to the fastest implementation with identical semantics."""
    return upfirdn2d_reference(x, kernel, up=up, down=down, pad=pad)
