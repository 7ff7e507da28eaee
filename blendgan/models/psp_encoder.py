"""pSp face encoder: IR-SE50 GradualStyleEncoder and the pooling / latent_avg wrapper."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualLinear

PSP_INPUT_SIZE = 256
# (in, depth, units) of the four IR-SE50 stages; the first unit of each stage has stride 2
IR_SE50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))
IR_SE50_WIDTH = 64  # channels of the input layer; every stage width is a multiple of it
TAP_UNITS = (6, 20, 23)  # c1, c2, c3
COARSE_END, MIDDLE_END = 3, 7


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d that always uses its running statistics (inference mode) and never updates them.

    Same keys as nn.BatchNorm2d, so checkpoints load unchanged, and forward is pure whatever the
    module's train/eval flag says."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(relu(fc1(avgpool(x))))) with bias-free 1x1 convs."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIRSE(nn.Module):
    """One IR-SE unit: res_layer(x) + shortcut_layer(x)."""

    def __init__(self, in_ch, depth, stride):
        super().__init__()
        if in_ch == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_ch, depth, 1, stride, bias=False), FrozenBatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            FrozenBatchNorm2d(in_ch),
            nn.Conv2d(in_ch, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            FrozenBatchNorm2d(depth),
            SqueezeExcite(depth),
        )

    def forward(self, x):
        return self.res_layer(x) + self._shortcut(x)

    def _shortcut(self, x):
        # a 1x1 max-pool is a strided pick of its input (the max of one value), so it is taken as a view: the same
        # values and gradients, without the pass over the map that 20 of the 24 units made (docs/speed.md)
        if isinstance(self.shortcut_layer, nn.MaxPool2d):
            stride = self.shortcut_layer.stride
            return x if stride == 1 else x[:, :, ::stride, ::stride]
        return self.shortcut_layer(x)


def ir_se50_trunk(width=IR_SE50_WIDTH):
    """(input_layer, body) of IR-SE50: 3x3 conv + BN + PReLU, then the 24 SE bottleneck units of
    IR_SE50_STAGES (each stage opens with a stride-2 unit). Shared by the pSp encoder and ArcFace.

    `width` scales every stage (64 = IR-SE50 itself; at least 16, the squeeze-excite reduction); narrower
    trunks have the same keys and exist for tests and small experiments."""
    if width < 16 or width % 16:
        raise ValueError(f"width must be a positive multiple of 16 (the squeeze-excite reduction), got {width}")
    input_layer = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), FrozenBatchNorm2d(width), nn.PReLU(width))
    units = []
    for in_ch, depth, count in IR_SE50_STAGES:
        in_ch, depth = in_ch * width // IR_SE50_WIDTH, depth * width // IR_SE50_WIDTH
        units.append(BottleneckIRSE(in_ch, depth, 2))
        units += [BottleneckIRSE(depth, depth, 1) for _ in range(count - 1)]
    return input_layer, nn.Sequential(*units)


class GradualStyleBlock(nn.Module):
    """log2(spatial) x [3x3 stride-2 conv + LeakyReLU(0.01)] down to 1x1, then EqualLinear.

    The convs are `hidden` channels wide (out_ch in pSp; narrower in narrow encoders)."""

    def __init__(self, in_ch, out_ch, spatial, hidden=None):
        super().__init__()
        self.hidden = hidden = hidden or out_ch
        layers = []
        for i in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(in_ch if i == 0 else hidden, hidden, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(hidden, out_ch)

    def forward(self, x):
        return self.linear(self.convs(x).reshape(-1, self.hidden))


class GradualStyleEncoder(nn.Module):
    """IR-SE50 feature pyramid -> n_styles latent codes [N, n_styles, 512]. `width`: see `ir_se50_trunk`."""

    def __init__(self, n_styles: int, width: int = IR_SE50_WIDTH) -> None:
        super().__init__()
        self.n_styles = n_styles
        self.input_layer, self.body = ir_se50_trunk(width)
        top = 512 * width // IR_SE50_WIDTH  # the pyramid's width (512 in pSp)
        self.styles = nn.ModuleList(
            GradualStyleBlock(top, 512, 16 if j < COARSE_END else 32 if j < MIDDLE_END else 64, hidden=top)
            for j in range(n_styles)
        )
        self.latlayer1 = nn.Conv2d(256 * width // IR_SE50_WIDTH, top, 1)
        self.latlayer2 = nn.Conv2d(128 * width // IR_SE50_WIDTH, top, 1)

    @staticmethod
    def _upsample_add(x, y):
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in TAP_UNITS:
                taps.append(x)
        c1, c2, c3 = taps
        codes = [self.styles[j](c3) for j in range(min(COARSE_END, self.n_styles))]
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        codes += [self.styles[j](p2) for j in range(COARSE_END, min(MIDDLE_END, self.n_styles))]
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        codes += [self.styles[j](p1) for j in range(MIDDLE_END, self.n_styles)]
        return torch.stack(codes, dim=1)


class PSPEncoder(nn.Module):
    """Face image ([-1, 1] RGB, any size) -> per-layer latent codes: pool to 256, encode, add latent_avg."""

    def __init__(self, n_styles: int, width: int = IR_SE50_WIDTH) -> None:
        super().__init__()
        self.encoder = GradualStyleEncoder(n_styles, width)
        self.pool = nn.AdaptiveAvgPool2d((PSP_INPUT_SIZE, PSP_INPUT_SIZE))
        self.register_buffer("latent_avg", torch.zeros(n_styles, 512))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.pool(image)) + self.latent_avg
