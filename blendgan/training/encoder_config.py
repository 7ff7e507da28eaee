"""Settings of the two encoder trainers (saved as RUN/config.json like every run's).

Choices the paper leaves open, with their reasons (see the README's Training section):
- style encoder: SimCLR's NT-Xent at temperature 0.5 (SimCLR's value for small batches; 0.1 suits batches of
  thousands), Adam lr 0.002 (StyleGAN2's rate for equalised-learning-rate layers), views rendered at 256 px
  (the size the encoder pools every image to) from artworks read at twice that size: a crop of a third of the
  area is then downsampled, never upsampled, and keeps its strokes (upsampled crops are blurred, which alters
  the very texture the encoder must learn; measured in the README).
- pSp: pixel2style2pixel's recipe (L2 1, perceptual 0.8, identity 0.1, W-norm off, Adam lr 1e-4, batch 8).
"""
from dataclasses import dataclass

from .config import RunConfig


@dataclass
class StyleEncoderConfig(RunConfig):
    """`blendgan train style-encoder`: contrastive self-supervised training of the style encoder's MLP."""

    styles: str = ""
    init: str = ""                 # style_encoder.pt / blendgan.pt, or torchvision's vgg19 file (new MLP)
    batch: int = 16
    iters: int = 20000
    lr: float = 0.002
    temperature: float = 0.5
    size: int = 256                # views are rendered at size x size
    read_size: int = 0             # artworks are read at this size (0: 2 x size), so crops keep their detail
    crop_scale_min: float = 0.35   # smallest crop, as a fraction of the image area
    max_rotation: float = 10.0     # degrees
    frozen_mlp_layers: int = 0     # first MLP layers kept fixed (1: the 610304-wide layer, ~5 GB less memory)
    snapshot_every: int = 1000
    sample_every: int = 500
    sample_queries: int = 4
    sample_neighbours: int = 5
    sample_pool: int = 32


@dataclass
class PSPConfig(RunConfig):
    """`blendgan train psp`: pixel2style2pixel encoder against the frozen generator's face branch."""

    faces: str = ""
    ckpt: str = ""                 # blendgan.pt: the frozen generator (and the perceptual loss's VGG19)
    init: str = ""                 # psp_encoder.pt to continue from; empty: random encoder
    id_weights: str = ""           # ArcFace IR-SE50 weights (pSp's model_ir_se50.pth)
    vgg_weights: str = ""          # VGG19 of the perceptual loss; empty: the one inside --ckpt
    batch: int = 8
    iters: int = 500000
    lr: float = 1e-4
    l2_lambda: float = 1.0
    lpips_lambda: float = 0.8
    id_lambda: float = 0.1
    w_norm_lambda: float = 0.0
    input_size: int = 256          # the encoder's input (the inference wrapper pools to 256); smaller: experiments
    snapshot_every: int = 5000
    sample_every: int = 1000
    sample_rows: int = 4
