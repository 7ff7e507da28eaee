"""StyleGAN2 discriminators of the original training code (rosinality layout): `Discriminator` (real vs
generated images, used for natural faces and for artworks) and `ProjectionDiscriminator` (the style-latent
discriminator: is a stylized image consistent with the style code `z_s`; Miyato & Koyama 2018).

Pure modules: no state changes in forward. Widths follow the generator's channel table, optionally
capped by `max_channels` (the state-dict keys never change, only shapes).
"""

import math

import torch
from torch import nn

from .generator import SUPPORTED_SIZES, channels_for
from .layers import Blur, EqualConv2d, EqualLinear, FusedLeakyReLU

STDDEV_GROUP = 4  # minibatch-stddev group size of the original
STDDEV_FEAT = 1


class ConvLayer(nn.Sequential):
    """[Blur ->] EqualConv2d [-> FusedLeakyReLU]. With `downsample` the blur pads by (p+1)//2, p//2
    with p = len(kernel) - 2 + k - 1 and the convolution has stride 2 and no padding.
    Keys: `0.kernel` (downsample only), then the conv's `weight`, then the activation's `bias`."""

    def __init__(
        self, in_channel, out_channel, kernel_size, downsample=False, blur_kernel=(1, 3, 3, 1), bias=True, activate=True
    ):
        layers = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(
                in_channel, out_channel, kernel_size, stride=stride, padding=padding, bias=bias and not activate
            )
        )
        if activate:
            if not bias:
                raise ValueError("an activated ConvLayer always has a bias (the original has no other variant here)")
            layers.append(FusedLeakyReLU(out_channel))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """conv 3x3 -> blur + stride-2 conv 3x3, plus a blurred stride-2 1x1 skip; sum / sqrt(2)."""

    def __init__(self, in_channel, out_channel, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(
            in_channel, out_channel, 1, downsample=True, blur_kernel=blur_kernel, activate=False, bias=False
        )

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


def minibatch_stddev(x, group_size=STDDEV_GROUP, n_feat=STDDEV_FEAT):
    """Append the minibatch standard deviation as extra channel(s) (StyleGAN2).

    As in the original, groups are strided: with N samples and group size G (= min(N, group_size)),
    samples i, i + N/G, i + 2N/G, ... form one group, so N must be a multiple of G."""
    n, c, h, w = x.shape
    group = min(n, group_size)
    if n % group:
        raise ValueError(f"batch {n} is not a multiple of the minibatch-stddev group size {group}")
    y = x.reshape(group, -1, n_feat, c // n_feat, h, w)
    y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)
    y = y.mean([2, 3, 4], keepdim=True).squeeze(2)
    y = y.repeat(group, 1, h, w)
    return torch.cat([x, y], 1)


class _Trunk(nn.Module):
    """FromRGB 1x1 conv, one ResBlock per resolution down to 4x4, minibatch stddev, final 3x3 conv."""

    def __init__(self, size, channel_multiplier=2, max_channels=512, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if size not in SUPPORTED_SIZES:
            raise ValueError(f"size must be a power of two between 8 and 1024, got {size}")
        self.size = size
        channels = channels_for(channel_multiplier, max_channels)
        convs = [ConvLayer(3, channels[size], 1)]
        in_ch = channels[size]
        for i in range(int(math.log2(size)), 2, -1):
            out_ch = channels[2 ** (i - 1)]
            convs.append(ResBlock(in_ch, out_ch, blur_kernel))
            in_ch = out_ch
        self.convs = nn.Sequential(*convs)
        self.stddev_group = STDDEV_GROUP  # a training loop may fix another group size per process
        self.final_conv = ConvLayer(in_ch + STDDEV_FEAT, channels[4], 3)
        self.out_channels = channels[4]

    def features(self, image):
        """[N, 3, size, size] image in [-1, 1] -> final_conv features [N, C, 4, 4]."""
        out = minibatch_stddev(self.convs(image), self.stddev_group)
        return self.final_conv(out)


class Discriminator(_Trunk):
    """D(x) [N, 1]: the trunk, then `final_linear` (EqualLinear(C·16, C, fused lrelu), EqualLinear(C, 1))."""

    def __init__(self, size, channel_multiplier=2, max_channels=512, blur_kernel=(1, 3, 3, 1)):
        super().__init__(size, channel_multiplier, max_channels, blur_kernel)
        c = self.out_channels
        self.final_linear = nn.Sequential(EqualLinear(c * 4 * 4, c, activation="fused_lrelu"), EqualLinear(c, 1))

    def forward(self, image):
        out = self.features(image)
        return self.final_linear(out.reshape(out.shape[0], -1))


class ProjectionDiscriminator(_Trunk):
    """D(x, z_s) = l_out(h) + <l_style(z_s), h> with h = Σ_{x,y} final_conv features [N, C] (the
    style-latent discriminator; a projection discriminator conditioned on the style code)."""

    def __init__(self, size, style_dim=512, channel_multiplier=2, max_channels=512, blur_kernel=(1, 3, 3, 1)):
        super().__init__(size, channel_multiplier, max_channels, blur_kernel)
        c = self.out_channels
        self.l_out = EqualLinear(c, 1)
        self.l_style = EqualLinear(style_dim, c)

    def forward(self, image, z_s):
        h = self.features(image).sum(dim=(2, 3))
        return self.l_out(h) + (self.l_style(z_s) * h).sum(dim=1, keepdim=True)
