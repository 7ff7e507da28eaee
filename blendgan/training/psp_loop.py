"""pixel2style2pixel training of the pSp face encoder against the frozen BlendGAN generator's face branch,
read top to bottom: `PSPTrainer` is the trainer's part of a run on the shared skeleton (loop.py).

One step, per global batch of real faces x (aligned like FFHQ, at the generator's size):
  offsets = Enc(pool(x)), codes = offsets + latent_avg          (W+ codes, one per generator layer)
  y_hat = G([codes], input_is_latent=True) with the stored noise maps (as every inference command runs it)
  loss = l2 · MSE + lpips · VGG perceptual + id · (1 - cos ArcFace) + w_norm · |offsets|   (blendgan/losses/psp.py)
Only the encoder trains. Its BatchNorm layers keep their stored statistics (the model is pure; their affine
weights train), so N processes x batch B compute what one process with batch N·B computes. A new encoder
starts its IR-SE50 body from the ArcFace weights when --id_weights is given, as pSp does.
latent_avg is the checkpoint's `latent_avg` (else the mean of 4096 mapped codes, seeded), or --init's.
Snapshots have the psp_encoder.pt layout (`state_dict` with `encoder.*`, `latent_avg`), so
checkpoints/NNNNNN.pt is accepted as `--psp_encoder_ckpt` by every command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..defaults import LATENT_AVG_SAMPLES
from ..errors import UsageError
from ..io.images import hconcat, tensors_to_bgr
from ..losses.identity import load_arcface
from ..losses.psp import PSPLossWeights, build_psp_loss
from ..models.generator import n_latent_for_size
from ..models.psp_encoder import MIDDLE_END, PSPEncoder
from . import data, loop
from .config import PSPConfig

FACE_STREAM = 31
LOSS_SIZE = 256  # pSp computes its losses at 256 x 256 (smaller generators: at their own size)


def check_settings(cfg, ctx):
    """pSp's own checks (after the shared ones of loop.check_settings)."""
    if not cfg.faces:
        raise UsageError("--faces DIR is required (a folder of aligned face photos)")
    if not cfg.ckpt:
        raise UsageError("--ckpt FILE is required: the frozen generator (blendgan.pt)")
    if not Path(cfg.ckpt).expanduser().is_file():
        raise UsageError(f"--ckpt {cfg.ckpt}: file not found (the frozen generator, blendgan.pt)")
    if cfg.input_size < 16 or cfg.input_size & (cfg.input_size - 1):
        raise UsageError(f"--input_size {cfg.input_size}: a power of two, at least 16")


def loss_weights(cfg):
    return PSPLossWeights(cfg.l2_lambda, cfg.lpips_lambda, cfg.id_lambda, cfg.w_norm_lambda).check()


def load_frozen_generator(cfg, device, dtype):
    """(generator without its style encoder, latent_avg [1, 512]) from --ckpt."""
    from ..weights import load_generator

    g, info = load_generator(cfg.ckpt, dtype=None)
    g.embedder = None  # the face branch needs no style encoder; its 1.25 GB stay unread on disk
    g = g.to(device, dtype).eval().requires_grad_(False)
    latent_avg = info["latent_avg"]
    if latent_avg is None:
        gen = torch.Generator(device=device).manual_seed(int(cfg.seed) + 12345)
        latent_avg = g.mean_latent(LATENT_AVG_SAMPLES, generator=gen)
    return g, latent_avg.to(device, dtype).reshape(1, 512)


def build_encoder(cfg, snapshot, folder, size, latent_avg):
    """PSPEncoder in fresh writable memory: from the snapshot, --init, or new (seeded; body from ArcFace)."""
    from ..weights import psp_encoder_from_checkpoint, read_checkpoint

    n_styles = n_latent_for_size(size)
    torch.manual_seed(cfg.seed)
    enc = PSPEncoder(n_styles)
    if snapshot is not None or cfg.init:
        ckpt = snapshot if snapshot is not None else read_checkpoint(cfg.init)
        source = str(folder.checkpoints) if snapshot is not None else cfg.init
        loaded = psp_encoder_from_checkpoint(ckpt, size, source=source, dtype=None)
        enc.load_state_dict(loaded.state_dict())
    else:
        if cfg.id_weights and cfg.id_lambda > 0:
            arc = load_arcface(cfg.id_weights).state_dict()
            enc.encoder.load_state_dict(
                {k: v for k, v in arc.items() if k.startswith(("input_layer.", "body."))}, strict=False
            )
        enc.latent_avg.copy_(latent_avg.reshape(1, 512).expand(n_styles, 512))
    return enc


def reconstruct(enc, g, x, input_size, body=None):
    """(y_hat, offsets): the encoder sees x pooled to input_size (inference pools to 256). `body`: the module
    computing the offsets, `enc.encoder` or its DistributedDataParallel wrapper."""
    offsets = (body or enc.encoder)(F.adaptive_avg_pool2d(x, (input_size, input_size)))
    y_hat, _ = g([offsets + enc.latent_avg], input_is_latent=True, randomize_noise=False)
    return y_hat, offsets


def loss_view(t):
    s = min(t.shape[-1], LOSS_SIZE)
    return t if t.shape[-1] == s else F.adaptive_avg_pool2d(t, (s, s))


@torch.no_grad()
def pair_sheet(enc, g, cfg, folder, device, dtype):
    """Rows of input | reconstruction for the first --sample_rows faces. -> BGR uint8 array."""
    n = min(cfg.sample_rows, len(folder))
    x = torch.stack([folder.tensor(i) for i in range(n)])
    y_hat, _ = reconstruct(enc, g, x.to(device, dtype), cfg.input_size)
    y_hat = y_hat.float().cpu()
    return np.concatenate([hconcat(tensors_to_bgr(torch.stack([x[i], y_hat[i]]))) for i in range(n)], axis=0)


class PSPTrainer:
    """pSp's part of a run (blendgan.training.loop): faces, the frozen generator and losses, the encoder step."""

    check = staticmethod(check_settings)

    def __init__(self, run):
        cfg, ctx, device, dtype = run.cfg, run.ctx, run.device, run.dtype
        self.run, self.cfg, self.ctx = run, cfg, ctx
        loss_fn = build_psp_loss(
            loss_weights(cfg), vgg_weights=cfg.vgg_weights or cfg.ckpt, id_weights=cfg.id_weights or None
        )
        self.g, latent_avg = load_frozen_generator(cfg, device, dtype)
        self.folder = data.open_images(cfg.faces, self.g.size, "faces", ctx, run.log_file)
        self.sampler = data.Sampler(len(self.folder), cfg.seed, stream=FACE_STREAM)
        self.enc = build_encoder(cfg, run.snapshot, run.folder, self.g.size, latent_avg).to(device, dtype).train()
        self.loss_fn = loss_fn.to(device, dtype)
        self.optim = torch.optim.Adam(list(self.enc.parameters()), lr=cfg.lr)

    def restore(self, snapshot):
        self.optim.load_state_dict(snapshot["optim"])

    def parallel(self):
        # several processes: DDP averages the encoder's gradients (its construction broadcasts rank 0's weights);
        # generators below 64 px have no fine-level codes, so the encoder's fine lateral layer gets no gradient
        enc = self.enc.encoder
        self.body = distributed.wrap(enc, self.ctx, find_unused_parameters=enc.n_styles <= MIDDLE_END)

    def step(self, step, positions):
        run = self.run
        x = data.batch_of(self.folder, self.sampler.draw(positions)).to(run.device, run.dtype)
        with run.cast:
            y_hat, offsets = reconstruct(self.enc, self.g, x, self.cfg.input_size, self.body)
            total, terms = self.loss_fn(loss_view(y_hat.to(run.dtype)), loss_view(x), offsets.to(run.dtype))
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        self.optim.step()
        return {"loss": total.item(), **{k: v.item() for k, v in terms.items()}}

    def log_values(self, values):
        return distributed.mean_of(values, self.ctx, self.run.device)

    def postfix(self, record):
        return {"loss": f"{record['loss']:.4f}"}

    def sample(self):
        return pair_sheet(self.enc, self.g, self.cfg, self.folder, self.run.device, self.run.dtype)

    def data_sizes(self):
        return {"faces": len(self.folder)}

    def state(self):
        return {
            # inference entries (psp_encoder.pt layout), --psp_encoder_ckpt
            "state_dict": {f"encoder.{k}": v.detach().cpu() for k, v in self.enc.encoder.state_dict().items()},
            "latent_avg": self.enc.state_dict()["latent_avg"].detach().cpu(),
            # training state
            "optim": self.optim.state_dict(),
        }


def train_psp(cfg: PSPConfig, log_file=None, given: set[str] | None = None) -> int:
    """Run (or resume) a pSp encoder training run as configured; returns the final step. `given`: the settings
    the user gave (on resume only those change the saved run-time ones; default: those unlike the defaults)."""
    return loop.train(PSPTrainer, cfg, given, log_file)
