"""Losses and the image features they compare, in one floor that training, fitting and metrics import.

- `features`: ImageNet normalisation, pooling to a size, Gram matrices (the VGG19 walk itself is the style
  encoder's, `blendgan.models.style_encoder.vgg19_taps`).
- `perceptual`: the uncalibrated VGG19 perceptual distance (pSp's LPIPS term without learned weights).
- `identity`: ArcFace IR-SE50 loading, pSp's face crop and the identity loss.
- `vgg_weights`: ImageNet VGG19 weights from a BlendGAN checkpoint or torchvision's file.
- `psp`: the pSp encoder trainer's weighted sum; `style_fit`: style fitting's distances; `gan`: StyleGAN2's
  adversarial and regularisation terms; `contrastive`: the style encoder trainer's NT-Xent.
"""
