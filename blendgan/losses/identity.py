"""Identity: ArcFace IR-SE50 (the weights pSp uses, model_ir_se50.pth, supplied by the user) on pSp's face crop.

As in pSp the images are brought to 256 x 256, the face region rows 35:223, columns 32:220 is cropped and pooled
to 112 x 112 (ArcFace's input). Used by the pSp trainer, face refinement and the identity metric.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ..models.arcface import ARCFACE_INPUT_SIZE, ArcFaceIRSE50
from ..weights import read_checkpoint, resolve_checkpoint_path

ID_POOL_SIZE = 256
ID_CROP = (35, 223, 32, 220)  # rows, columns of the face region in a 256 x 256 aligned face (pSp)


def identity_crop(x: torch.Tensor) -> torch.Tensor:
    """pSp's face region at ArcFace's input size: pool to 256, crop, pool to 112."""
    x = F.adaptive_avg_pool2d(x, (ID_POOL_SIZE, ID_POOL_SIZE))
    r0, r1, c0, c1 = ID_CROP
    return F.adaptive_avg_pool2d(x[:, :, r0:r1, c0:c1], (ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE))


class IdentityLoss(nn.Module):
    """Mean of 1 - cos(ArcFace(y_hat), ArcFace(y)) over the batch."""

    def __init__(self, facenet):
        super().__init__()
        self.facenet = facenet

    def forward(self, y_hat, y):
        with torch.no_grad():
            target = self.facenet(identity_crop(y))
        return (1 - (self.facenet(identity_crop(y_hat)) * target).sum(dim=1)).mean()


def load_arcface(path) -> ArcFaceIRSE50:
    """ArcFace IR-SE50 (frozen, eval) from pSp's `model_ir_se50.pth` layout (a bare state dict, or one
    under `state_dict`)."""
    src = resolve_checkpoint_path(path)
    ckpt = read_checkpoint(src)
    sd = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), dict) else ckpt
    sd = {k[len("facenet.") :] if isinstance(k, str) and k.startswith("facenet.") else k: v for k, v in sd.items()}
    model = ArcFaceIRSE50()
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    wrong = [
        k for k in expected if k in sd and (not isinstance(sd[k], torch.Tensor) or sd[k].shape != expected[k].shape)
    ]
    if missing or wrong:
        what = f"missing {missing[0]}" if missing else f"{wrong[0]} has the wrong shape"
        raise CheckpointError(
            f"{src} is not an ArcFace IR-SE50 weights file ({len(missing)} keys missing, "
            f"{len(wrong)} of the wrong shape: {what}); pass pSp's model_ir_se50.pth as --id_weights"
        )
    model.load_state_dict({k: sd[k] for k in expected})
    return model.requires_grad_(False).eval()
