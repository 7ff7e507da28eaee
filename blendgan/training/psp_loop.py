"""pixel2style2pixel training of the pSp face encoder against the frozen BlendGAN generator's face branch,
read top to bottom: `train_psp` is the whole run.

One step, per global batch of real faces x (aligned like FFHQ, at the generator's size):
  offsets = Enc(pool(x)), codes = offsets + latent_avg          (W+ codes, one per generator layer)
  y_hat = G([codes], input_is_latent=True) with the stored noise maps (as every inference command runs it)
  loss = l2 · MSE + lpips · VGG perceptual + id · (1 - cos ArcFace) + w_norm · |offsets|   (psp_losses.py)
Only the encoder trains. Its BatchNorm layers keep their stored statistics (the model is pure; their affine
weights train), so N processes x batch B compute what one process with batch N·B computes. A new encoder
starts its IR-SE50 body from the ArcFace weights when --id_weights is given, as pSp does.
latent_avg is the checkpoint's `latent_avg` (else the mean of 4096 mapped codes, seeded), or --init's.
Snapshots have the psp_encoder.pt layout (`state_dict` with `encoder.*`, `latent_avg`), so
checkpoints/NNNNNN.pt is accepted as `--psp_encoder_ckpt` by every command.
"""
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..images import hconcat, tensors_to_bgr, write_image_atomic
from ..models.generator import n_latent_for_size
from ..models.psp_encoder import MIDDLE_END, PSPEncoder
from . import config as config_mod
from . import data, distributed
from .runs import (Progress, StepClock, autocast, check_common, check_images_per_step, compute_dtype,
                           open_run, start_run)
from .psp_losses import PSPLossWeights, build_psp_loss, load_arcface
from .rundir import rng_state, save_snapshot, set_rng_state

FACE_STREAM = 31
LATENT_AVG_SAMPLES = 4096
LOSS_SIZE = 256  # pSp computes its losses at 256 x 256 (smaller generators: at their own size)


def check_settings(cfg, ctx):
    check_common(cfg, ctx)
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


def build_encoder(cfg, snapshot, run, size, latent_avg):
    """PSPEncoder in fresh writable memory: from the snapshot, --init, or new (seeded; body from ArcFace)."""
    from ..weights import psp_encoder_from_checkpoint, read_checkpoint

    n_styles = n_latent_for_size(size)
    torch.manual_seed(cfg.seed)
    enc = PSPEncoder(n_styles)
    if snapshot is not None or cfg.init:
        ckpt = snapshot if snapshot is not None else read_checkpoint(cfg.init)
        source = str(run.checkpoints) if snapshot is not None else cfg.init
        loaded = psp_encoder_from_checkpoint(ckpt, size, source=source, dtype=None)
        enc.load_state_dict(loaded.state_dict())
    else:
        if cfg.id_weights and cfg.id_lambda > 0:
            arc = load_arcface(cfg.id_weights).state_dict()
            enc.encoder.load_state_dict({k: v for k, v in arc.items() if k.startswith(("input_layer.", "body."))},
                                        strict=False)
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


def train_psp(cfg, log_file=None):
    """Run (or resume) a pSp encoder training run as configured; returns the final step."""
    return distributed.run_in_process_group(_train, cfg, log_file)


def _train(cfg, ctx, log_file):
    cfg, run, snapshot = open_run(cfg)
    check_settings(cfg, ctx)
    device, dtype = ctx.device, compute_dtype(cfg.precision)
    weights = loss_weights(cfg)
    loss_fn = build_psp_loss(weights, vgg_weights=cfg.vgg_weights or cfg.ckpt, id_weights=cfg.id_weights or None)
    g, latent_avg = load_frozen_generator(cfg, device, dtype)
    folder = data.ImageFolder(cfg.faces, g.size, "faces", ctx, log_file)
    sampler = data.Sampler(len(folder), cfg.seed, stream=FACE_STREAM)

    enc = build_encoder(cfg, snapshot, run, g.size, latent_avg).to(device, dtype).train()
    loss_fn = loss_fn.to(device, dtype)
    params = list(enc.parameters())
    optim = torch.optim.Adam(params, lr=cfg.lr)
    images_per_step = cfg.batch * ctx.world_size
    start, elapsed_before = 0, 0.0
    if snapshot is not None:
        check_images_per_step(snapshot, images_per_step)
        optim.load_state_dict(snapshot["optim"])
        set_rng_state(snapshot["rng"])
        start, elapsed_before = int(snapshot["step"]), float(snapshot["elapsed_s"])
        del snapshot
    # several processes: DDP averages the encoder's gradients (its construction broadcasts rank 0's weights);
    # generators below 64 px have no fine-level codes, so the encoder's fine lateral layer gets no gradient
    body = distributed.wrap(enc.encoder, ctx, find_unused_parameters=enc.encoder.n_styles <= MIDDLE_END)

    log = start_run(cfg, run, ctx, start)
    progress = Progress(cfg.iters, start, images_per_step, enabled=ctx.is_main and cfg.progress)
    clock = StepClock(start, images_per_step, elapsed_before)
    cast = autocast(cfg.precision, device)
    for step in range(start, cfg.iters):
        positions = data.global_positions(step, cfg.batch, ctx)
        x = data.batch_of(folder, sampler.draw(positions)).to(device, dtype)
        with cast:
            y_hat, offsets = reconstruct(enc, g, x, cfg.input_size, body)
            total, terms = loss_fn(loss_view(y_hat.to(dtype)), loss_view(x), offsets.to(dtype))
        optim.zero_grad(set_to_none=True)
        total.backward()
        optim.step()
        values = distributed.mean_of({"loss": total.item(), **{k: v.item() for k, v in terms.items()}}, ctx, device)

        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.iters:
            record = {"step": done, "kimg": done * images_per_step / 1000, **values,
                      "images_per_s": clock.rate(done), "elapsed_s": clock.elapsed()}
            log.write(record)
            progress.step({"loss": f"{values['loss']:.4f}"})
        else:
            progress.step()
        if ctx.is_main and (done % cfg.sample_every == 0 or done == cfg.iters):
            write_image_atomic(run.sample_path(done), pair_sheet(enc, g, cfg, folder, device, dtype))
        if done % cfg.snapshot_every == 0 or done == cfg.iters:
            if ctx.is_main:
                sd = enc.state_dict()
                save_snapshot(run.snapshot_path(done), {
                    # inference entries (psp_encoder.pt layout), --psp_encoder_ckpt
                    "state_dict": {f"encoder.{k}": v.detach().cpu() for k, v in enc.encoder.state_dict().items()},
                    "latent_avg": sd["latent_avg"].detach().cpu(),
                    # training state
                    "optim": optim.state_dict(), "step": done, "elapsed_s": clock.elapsed(), "rng": rng_state(),
                    "data": {"images_seen": done * images_per_step, "images_per_step": images_per_step,
                             "faces": len(folder)},
                    "config": config_mod.to_dict(cfg)})
            distributed.barrier(ctx)
    progress.close()
    return cfg.iters
