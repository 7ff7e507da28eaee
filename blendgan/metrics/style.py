"""Style codes for the style metric: cosine between the style code of the reference and that of the result.

The encoder is the style encoder of a BlendGAN checkpoint (blendgan.pt's `embedder`, or a style_encoder.pt):
VGG19 Gram matrices and an MLP (blendgan.models.style_encoder), on the [-1, 1] image pooled to 256 x 256.
"""


class StyleCodes:
    """Callable: list of H x W x 3 uint8 RGB images -> style codes z_embed [N, 512]."""

    name = "style-encoder"

    def __init__(self, path, device="cpu"):
        from ..weights import load_style_encoder

        self.encoder = load_style_encoder(path).to(device).eval()
        self.device = device

    def __call__(self, images):
        import torch

        from .perceptual import to_tensor

        with torch.inference_mode():
            out = [self.encoder(to_tensor(im).to(self.device)) for im in images]
        return torch.cat(out).double().cpu().numpy()
