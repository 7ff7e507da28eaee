"""pSp face encoder: IR-SE50 GradualStyleEncoder and the pooling / latent_avg wrapper."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import EqualLinear

PSP_INPUT_SIZE = 256
# (in, depth, units) of the four IR-SE50 stages; the first unit of each stage has stride 2
IR_SE50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))
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
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, depth, 1, stride, bias=False),
                                                FrozenBatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            FrozenBatchNorm2d(in_ch),
            nn.Conv2d(in_ch, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            FrozenBatchNorm2d(depth),
            SqueezeExcite(depth),
        )

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


def ir_se50_trunk():
    """(input_layer, body) of IR-SE50: 3x3 conv + BN + PReLU, then the 24 SE bottleneck units of
    IR_SE50_STAGES (each stage opens with a stride-2 unit). Shared by the pSp encoder and ArcFace."""
    input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), FrozenBatchNorm2d(64), nn.PReLU(64))
    units = []
    for in_ch, depth, count in IR_SE50_STAGES:
        units.append(BottleneckIRSE(in_ch, depth, 2))
        units += [BottleneckIRSE(depth, depth, 1) for _ in range(count - 1)]
    return input_layer, nn.Sequential(*units)


class GradualStyleBlock(nn.Module):
    """log2(spatial) x [3x3 stride-2 conv + LeakyReLU(0.01)] down to 1x1, then EqualLinear."""

    def __init__(self, in_ch, out_ch, spatial):
        super().__init__()
        self.out_ch = out_ch
        layers = []
        for i in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_ch, out_ch)

    def forward(self, x):
        return self.linear(self.convs(x).reshape(-1, self.out_ch))


class GradualStyleEncoder(nn.Module):
    """IR-SE50 feature pyramid -> n_styles latent codes [N, n_styles, 512]."""

    def __init__(self, n_styles):
        super().__init__()
        self.n_styles = n_styles
        self.input_layer, self.body = ir_se50_trunk()
        self.styles = nn.ModuleList(
            GradualStyleBlock(512, 512, 16 if j < COARSE_END else 32 if j < MIDDLE_END else 64)
            for j in range(n_styles))
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)

    @staticmethod
    def _upsample_add(x, y):
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y

    def forward(self, x):
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

    def __init__(self, n_styles):
        super().__init__()
        self.encoder = GradualStyleEncoder(n_styles)
        self.pool = nn.AdaptiveAvgPool2d((PSP_INPUT_SIZE, PSP_INPUT_SIZE))
        self.register_buffer("latent_avg", torch.zeros(n_styles, 512))

    def forward(self, image):
        return self.encoder(self.pool(image)) + self.latent_avg
