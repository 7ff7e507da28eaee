"""ArcFace IR-SE50 face-recognition backbone, as used by pixel2style2pixel's identity loss.

Same layout as the `model_ir_se50.pth` weights pSp uses (keys `input_layer.*`, `body.0` ... `body.23`,
`output_layer.*`): the IR-SE50 trunk of the pSp encoder (112x112 input -> 512 x 7 x 7), then
BatchNorm2d, dropout (inactive: the network is only ever evaluated), flatten, Linear(25088, 512),
BatchNorm1d; the 512-d embedding is L2-normalised.
"""

import torch.nn.functional as F
from torch import nn

from .psp_encoder import FrozenBatchNorm2d, ir_se50_trunk

ARCFACE_INPUT_SIZE = 112


class FrozenBatchNorm1d(FrozenBatchNorm2d):
    """BatchNorm1d that always uses its running statistics; keys as nn.BatchNorm1d."""


class ArcFaceIRSE50(nn.Module):
    """Aligned face crop [N, 3, 112, 112] in [-1, 1] -> unit-norm identity embedding [N, 512]."""

    def __init__(self, embedding_dim=512):
        super().__init__()
        self.input_layer, self.body = ir_se50_trunk()
        self.output_layer = nn.Sequential(
            FrozenBatchNorm2d(512),
            nn.Dropout(0.0),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, embedding_dim),
            FrozenBatchNorm1d(embedding_dim),
        )

    def forward(self, x):
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)
