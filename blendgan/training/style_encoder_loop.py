"""Self-supervised training of the style encoder (contrastive, SimCLR-style), read top to bottom:
`StyleEncoderTrainer` is the trainer's part of a run on the shared skeleton (loop.py).

One step, per global batch of artworks x:
  two style-preserving views v1, v2 of every artwork (crops, flips, small rotations and zooms; views.py),
  z = E(v) = MLP(Gram(VGG19(v))) with the VGG19 frozen, p = Projector(z),
  loss = NT-Xent(p1, p2) over the projections of every process (gathered with their gradients).
The VGG19 never trains; the MLP (but its first --frozen_mlp_layers layers) and the projection head do.
The snapshot's `state_dict` is the whole style encoder, so checkpoints/NNNNNN.pt is accepted as
`--style_encoder_ckpt` by every command; the projection head is kept only for resuming.

Every random draw (image order, views) is a function of the seed and the global sample position, so a
resumed run continues exactly and N processes x batch B compute what one process with batch N·B computes
(up to the order of floating-point sums).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed, ops
from ..errors import UsageError
from ..io.images import hconcat, tensors_to_bgr
from ..losses import contrastive
from ..models.projector import Projector
from ..models.style_encoder import gram_vector
from . import data, loop, views
from .config import StyleEncoderConfig

VIEW_STREAM = 21
STYLE_STREAM = 22


def check_settings(cfg, ctx):
    """The style encoder's own checks (after the shared ones of loop.check_settings)."""
    if not cfg.styles:
        raise UsageError("--styles DIR is required (a folder of artworks)")
    if not cfg.frozen_mlp_layers <= 4:
        raise UsageError(f"--frozen_mlp_layers {cfg.frozen_mlp_layers}: must be 0 ... 4 (the MLP has four layers)")
    if cfg.size < 32:
        raise UsageError(f"--size {cfg.size}: at least 32 (VGG19 halves it four times before relu5_4)")
    if cfg.read_size and cfg.read_size < cfg.size:
        raise UsageError(f"--read_size {cfg.read_size}: at least --size {cfg.size} (0: twice --size)")
    if not cfg.crop_scale_min <= 1:
        raise UsageError(f"--crop_scale_min {cfg.crop_scale_min}: must be in (0, 1]")


def read_size(cfg):
    """The size artworks are read at: views are cropped from them and rendered at --size."""
    return cfg.read_size or 2 * cfg.size


def view_config(cfg):
    return views.ViewConfig(scale=(cfg.crop_scale_min, 1.0), max_rotation=cfg.max_rotation)


def view_pair(images, positions, cfg):
    """Two views of every image; each sample's view parameters come from its own (seed, position) stream."""
    params = [
        views.sample_view_params(2, data.sample_generator(cfg.seed, VIEW_STREAM, p), view_config(cfg))
        for p in positions
    ]
    first = {k: torch.cat([q[k][:1] for q in params]) for k in params[0]}
    second = {k: torch.cat([q[k][1:] for q in params]) for k in params[0]}
    return views.apply_views(images, first, cfg.size), views.apply_views(images, second, cfg.size)


FROZEN_BLOCK_COLUMNS = 16384


def frozen_equal_linear(layer, x):
    """EqualLinear forward for a whole batch in one pass over the weight, which may be stored in a lower
    precision (upcast a block of columns at a time). The module's own forward multiplies one row at a
    time (batch invariance at inference), re-reading the 610304-wide matrix for every row."""
    w = layer.weight
    if w.dtype == x.dtype:
        out = F.linear(x, w)
    else:
        out = torch.zeros(x.shape[0], w.shape[0], dtype=x.dtype, device=x.device)
        for c in range(0, w.shape[1], FROZEN_BLOCK_COLUMNS):
            out.addmm_(x[:, c : c + FROZEN_BLOCK_COLUMNS], w[:, c : c + FROZEN_BLOCK_COLUMNS].to(x.dtype).t())
    out = out * layer.scale
    bias = layer.bias.to(x.dtype) * layer.lr_mul
    return ops.fused_leaky_relu(out, bias) if layer.activation else out + bias


def encode(encoder, images, frozen_layers):
    """Style codes z [N, 512]: Gram vector of the frozen VGG19 at the images' own size (the inference
    encoder pools every image to 256 first; views are rendered at --size, 256 by default), then the MLP
    whose first `frozen_layers` layers run without gradients."""
    with torch.no_grad():
        h = gram_vector(encoder.embedder.feature_extractor(images))
        for layer in encoder.embedder_mlp[:frozen_layers]:
            h = frozen_equal_linear(layer, h)
    for layer in encoder.embedder_mlp[frozen_layers:]:
        h = layer(h)
    return h


class TrainedPass(nn.Module):
    """z = encode(views), p = Projector(z) as one forward whose registered parameters are only those that
    train (the MLP layers from `frozen_layers` on, the projection head): a DistributedDataParallel wrapper
    then averages just their gradients and broadcasts just them at construction, never the frozen VGG19
    and 610304-wide layer, which are held outside the module tree."""

    def __init__(self, encoder, projector, frozen_layers):
        super().__init__()
        self.trained = nn.ModuleList(encoder.embedder_mlp[frozen_layers:])
        self.projector = projector
        self._frozen = (encoder, frozen_layers)  # a tuple: not registered as a submodule

    def forward(self, views):
        encoder, frozen_layers = self._frozen
        z = encode(encoder, views, frozen_layers)
        return z, self.projector(z)


def make_trainable(encoder, frozen_layers, dtype):
    """The parameters that train (MLP layers from `frozen_layers` on), as fresh writable tensors."""
    params = []
    for layer in encoder.embedder_mlp[frozen_layers:]:
        for name, p in list(layer.named_parameters(recurse=False)):
            fresh = nn.Parameter(p.detach().to(dtype).clone(), requires_grad=True)
            setattr(layer, name, fresh)
            params.append(fresh)
    return params


def build_networks(cfg, snapshot, folder, device, dtype):
    """(encoder, projector): from the snapshot when resuming, else from --init (and fresh for the rest)."""
    from ..losses.vgg_weights import load_style_encoder_init
    from ..weights import style_encoder_from_checkpoint

    torch.manual_seed(cfg.seed)
    if snapshot is not None:
        encoder = style_encoder_from_checkpoint(snapshot, source=str(folder.checkpoints), dtype=None)
    else:
        if not cfg.init:
            raise UsageError(
                "--init FILE is required: the frozen VGG19 comes from a style_encoder.pt, a blendgan.pt "
                "or torchvision's vgg19 weights file (vgg19-dcbb9e9d.pth)"
            )
        encoder, _ = load_style_encoder_init(cfg.init)
    # the projector is made in the training dtype before its saved state is copied in: loading an fp64
    # run's state into a float32 module would round it, and a resumed run would drift from a straight one
    projector = Projector().to(dtype)
    if snapshot is not None:
        projector.load_state_dict(snapshot["projector"])
    encoder.requires_grad_(False).eval()
    # the VGG19 computes in `dtype`; the MLP layers keep their stored dtype (the trainable ones are cast by
    # make_trainable, frozen ones are upcast block by block), so fp64 checks never hold a 2.5 GB matrix
    encoder.embedder.to(dtype)
    for p in encoder.embedder.parameters():  # fresh memory: kernels must not depend on where a file put it
        p.data = p.data.clone()
    return encoder.to(device), projector.to(device, dtype).train()


@torch.no_grad()
def retrieval_sheet(encoder, cfg, folder, device, dtype):
    """Rows: a query artwork, then its nearest neighbours by style code (cosine) among the first
    --sample_pool artworks. -> BGR uint8 array."""
    n = min(cfg.sample_pool, len(folder))
    k = min(cfg.sample_neighbours, n - 1)
    imgs = torch.stack([folder.tensor(i) for i in range(n)])
    x = (
        F.interpolate(imgs, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False, antialias=True)
        if imgs.shape[-1] != cfg.size
        else imgs
    )
    z = torch.cat([encode(encoder, x[i : i + 8].to(device, dtype), 4) for i in range(0, n, 8)]).float().cpu()
    z = F.normalize(z, dim=1)
    sim = z @ z.t()
    sim.fill_diagonal_(float("-inf"))
    rows = []
    for q in range(min(cfg.sample_queries, n)):
        order = sim[q].argsort(descending=True)[:k].tolist()
        rows.append(hconcat(tensors_to_bgr(torch.stack([x[q]] + [x[j] for j in order]))))
    return np.concatenate(rows, axis=0)


class StyleEncoderTrainer:
    """The style encoder's part of a run (blendgan.training.loop): artworks, encoder and projection head, the
    contrastive step."""

    check = staticmethod(check_settings)

    def __init__(self, run):
        cfg, ctx = run.cfg, run.ctx
        self.run, self.cfg, self.ctx = run, cfg, ctx
        self.folder = data.open_images(cfg.styles, read_size(cfg), "styles", ctx, run.log_file)
        if len(self.folder) < 2:
            raise UsageError(f"{cfg.styles}: contrastive training needs at least 2 artworks, found {len(self.folder)}")
        self.sampler = data.Sampler(len(self.folder), cfg.seed, stream=STYLE_STREAM, flips=False)  # the views flip
        self.encoder, self.projector = build_networks(cfg, run.snapshot, run.folder, run.device, run.dtype)
        params = make_trainable(self.encoder, cfg.frozen_mlp_layers, run.dtype) + list(self.projector.parameters())
        self.optim = torch.optim.Adam(params, lr=cfg.lr)

    def restore(self, snapshot):
        self.optim.load_state_dict(snapshot["optim"])

    def parallel(self):
        # several processes: DDP averages the trained parameters' gradients (its construction broadcasts rank 0's)
        self.trained = distributed.wrap(TrainedPass(self.encoder, self.projector, self.cfg.frozen_mlp_layers), self.ctx)

    def step(self, step, positions):
        cfg, run = self.cfg, self.run
        x = data.batch_of(self.folder, self.sampler.draw(positions)).to(run.device, run.dtype)
        v1, v2 = view_pair(x, positions, cfg)
        with run.cast:
            z, p = self.trained(torch.cat([v1, v2]))
        z1, z2 = contrastive.gather_with_grad(z[: cfg.batch]), contrastive.gather_with_grad(z[cfg.batch :])
        p1, p2 = contrastive.gather_with_grad(p[: cfg.batch]), contrastive.gather_with_grad(p[cfg.batch :])
        loss = contrastive.nt_xent(p1.to(run.dtype), p2.to(run.dtype), cfg.temperature)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return {"loss": loss.item(), "retrieval_top1": contrastive.retrieval_top1(z1, z2)}

    def log_values(self, values):
        return values  # computed from the projections of every process already

    def postfix(self, record):
        return {"loss": f"{record['loss']:.3f}", "top1": f"{record['retrieval_top1']:.2f}"}

    def sample(self):
        return retrieval_sheet(self.encoder, self.cfg, self.folder, self.run.device, self.run.dtype)

    def data_sizes(self):
        return {"styles": len(self.folder)}

    def state(self):
        return {
            # inference entry: the whole style encoder (bare StyleEncoder keys), --style_encoder_ckpt
            "state_dict": {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()},
            # training state
            "projector": {k: v.detach().cpu() for k, v in self.projector.state_dict().items()},
            "optim": self.optim.state_dict(),
        }


def train_style_encoder(cfg: StyleEncoderConfig, log_file=None, given: set[str] | None = None) -> int:
    """Run (or resume) a style-encoder training run as configured; returns the final step. `given`: the settings
    the user gave (on resume only those change the saved run-time ones; default: those unlike the defaults)."""
    return loop.train(StyleEncoderTrainer, cfg, given, log_file)
