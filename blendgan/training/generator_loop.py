"""Training loop of the BlendGAN generator (StyleGAN2 + Weighted Blending Module) against three
discriminators: D_face (natural faces), D_style (artworks vs stylized faces) and D_style_latent (is a
stylized face consistent with its style code z_s). Read top to bottom: `GeneratorTrainer` is the
trainer's part of a run on the shared skeleton (loop.py).

One step, per global batch (StyleGAN2 practice, rosinality's train.py; see the README's Training section):
  natural branch   x_f' = G(z_f)          vs real faces x_f     for D_face
  stylized branch  x_fs = G(z_f, z_s)     vs real artworks x_s  for D_style, and (x_fs, z_s) vs (x_s, z_s)
                   with z_s = E(x_s) of the frozen style encoder, computed once per image before training
  1. D step: logistic loss of the three discriminators (weights --face_weight, --style_weight,
     --style_latent_weight); every --d_reg_every steps lazy R1 on the real images.
  2. G step: the three non-saturating terms; every --g_reg_every steps the path-length penalty on the
     natural branch (half batch); then add_weight is projected onto [0, 1].
  3. g_ema follows G (half-life --ema_kimg thousand images, with ramp-up).
Several processes (torchrun): G (through GeneratorPass) and each discriminator are wrapped in
DistributedDataParallel, which averages their gradients during every backward pass; the frozen networks
of a step are called unwrapped. Every random draw is a function of the seed and the global sample position,
so N processes x batch B compute what one process with batch N·B computes (up to the order of
floating-point sums).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .. import distributed
from ..defaults import LATENT_AVG_SAMPLES
from ..errors import UsageError
from ..io.images import hconcat, tensors_to_bgr
from ..losses import gan as losses
from ..metrics.snapshot import SnapshotMetrics
from . import data, loop
from .augment import AdaptiveAugment
from .config import GeneratorConfig
from .generator_init import (
    D_NAMES,
    apply_init,
    build_discriminators,
    build_generator,
    inference_state_dict,
    load_init,
    load_style_encoder,
)
from .runs import save_snapshot

# random streams (see data.sample_generator)
D_CODES, G_CODES, PL_CODES, FIXED_CODES = 1, 2, 3, 9
# augmentation streams: AUG_STREAM + 10 · (index of the discriminator in D_NAMES) + phase
AUG_STREAM, AUG_D_REAL, AUG_D_FAKE, AUG_R1, AUG_G_FAKE = 40, 0, 1, 2, 3
STYLE_CODE_BATCH = 8


# ----------------------------------------------------------------------------- small helpers
def requires_grad(modules, flag):
    for m in modules:
        m.requires_grad_(flag)


def draw_codes(g, seed, stream, positions, mixing, device, dtype):
    """Per sample: face codes z1, z2, the style-mixing crossover layer (n_latent = no mixing) and noise
    maps, each from the sample's own generator (stylegan2-ada mixes per sample; rosinality per batch)."""
    z1, z2, cut, noise = [], [], [], [[] for _ in range(g.num_layers)]
    for p in positions:
        gen = data.sample_generator(seed, stream, p)
        z1.append(torch.randn(g.style_dim, generator=gen))
        z2.append(torch.randn(g.style_dim, generator=gen))
        mix = bool(torch.rand((), generator=gen) < mixing)
        cross = int(torch.randint(1, g.n_latent, (), generator=gen))  # rosinality: randint(1, n_latent - 1)
        cut.append(cross if mix else g.n_latent)
        for i, b in enumerate(g.noises.maps()):
            noise[i].append(torch.randn(b.shape[1:], generator=gen))
    to = dict(device=device, dtype=dtype)
    return (
        torch.stack(z1).to(**to),
        torch.stack(z2).to(**to),
        torch.tensor(cut, device=device),
        [torch.stack(n).to(**to) for n in noise],
    )


def synthesize(g, codes, z_s=None):
    """(images, per-layer latents [N, n_latent, 512]) for draw_codes' codes; with z_s the WBM blends in
    the style branch (the latents returned are then the blended ones)."""
    z1, z2, cut, noise = codes
    w1, w2 = g.style(z1), g.style(z2)
    first = torch.arange(g.n_latent, device=z1.device)[None, :] < cut[:, None]
    latent = torch.where(first[..., None], w1[:, None], w2[:, None])
    out = g([latent], input_is_latent=True, noise=noise, z_embed=z_s, return_latents=True)
    return out[0], out[1]


class GeneratorPass(nn.Module):
    """The generator's trained passes as one forward each, so that a DistributedDataParallel wrapper sees
    every parameter its backward reaches in the forward it was called with:
      forward(codes, z_s)               -> (natural images, stylized images)  (the G step: every parameter)
      forward(codes, pl_noise=noise)    -> (path lengths, natural images)     (path-length regularisation:
                                           natural branch, so the style mapping and the WBM are unused)
    The path lengths differentiate the images w.r.t. the latents inside the forward (a DDP wrapper passes its
    outputs through an autograd function, so the latents it returns are not those the images came from)."""

    def __init__(self, g):
        super().__init__()
        self.g = g

    def forward(self, codes, z_s=None, pl_noise=None):
        if pl_noise is not None:
            fake, latents = synthesize(self.g, codes)
            return losses.path_lengths(fake, latents, pl_noise), fake
        return synthesize(self.g, codes)[0], synthesize(self.g, codes, z_s)[0]


def _identity(name, x, phase):
    return x


def d_terms(ds, cfg, real_f, real_s, z_s, fake_f, fake_s, aug=_identity, real_logits=None):
    """{'d_face', 'd_style', 'd_style_latent'} logistic losses and their weighted sum 'd_total'. `aug(name,
    images, phase)` augments what discriminator `name` sees; `real_logits` (a dict) receives D(reals)."""
    out = {}
    for name, real, fake in (
        ("d_face", real_f, fake_f),
        ("d_style", real_s, fake_s),
        ("d_style_latent", real_s, fake_s),
    ):
        extra = (z_s,) if name == "d_style_latent" else ()
        real_pred = ds[name](aug(name, real, AUG_D_REAL), *extra)
        out[name] = losses.d_logistic_loss(real_pred, ds[name](aug(name, fake, AUG_D_FAKE), *extra))
        if real_logits is not None:
            real_logits[name] = real_pred.detach()
    t = {k: out[k] for k in ("d_face", "d_style", "d_style_latent")}
    t["d_total"] = (
        cfg.face_weight * t["d_face"] + cfg.style_weight * t["d_style"] + cfg.style_latent_weight * t["d_style_latent"]
    )
    return t


def g_terms(ds, cfg, z_s, fake_f, fake_s, aug=_identity):
    t = {
        "g_face": losses.g_nonsaturating_loss(ds["d_face"](aug("d_face", fake_f, AUG_G_FAKE))),
        "g_style": losses.g_nonsaturating_loss(ds["d_style"](aug("d_style", fake_s, AUG_G_FAKE))),
        "g_style_latent": losses.g_nonsaturating_loss(
            ds["d_style_latent"](aug("d_style_latent", fake_s, AUG_G_FAKE), z_s)
        ),
    }
    t["g_total"] = (
        cfg.face_weight * t["g_face"] + cfg.style_weight * t["g_style"] + cfg.style_latent_weight * t["g_style_latent"]
    )
    return t


@torch.no_grad()
def update_ema(g_ema, g, cfg, images_seen, images_per_step):
    """stylegan2-ada's EMA: half-life ema_kimg·1000 images, at most ema_rampup × images seen."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup > 0:
        ema_nimg = min(ema_nimg, images_seen * cfg.ema_rampup)
    beta = 0.5 ** (images_per_step / max(ema_nimg, 1e-8))
    for p_ema, p in zip(g_ema.parameters(), g.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(g_ema.buffers(), g.buffers()):
        b_ema.copy_(b)


@torch.no_grad()
def style_codes(embedder, folder, ctx, device, batch=STYLE_CODE_BATCH):
    """[2·n, 512] float32 codes z_s = E(x) of every style image, unflipped (row 2i) and mirrored (2i + 1):
    the frozen encoder runs once per image and orientation; the processes share the work."""
    n = len(folder)
    rows = [r for r in range(2 * n) if r % ctx.world_size == ctx.rank]
    mine = {}
    for k in range(0, len(rows), batch):
        chunk = rows[k : k + batch]
        x = torch.stack([folder.tensor(r // 2, flip=bool(r % 2)) for r in chunk]).to(device)
        for r, code in zip(chunk, embedder(x).float().cpu()):
            mine[r] = code
    merged = {}
    for part in distributed.all_gather_objects(mine, ctx):
        merged.update(part)
    return torch.stack([merged[r] for r in range(2 * n)])


def style_codes_key(folder, embedder, cfg):
    """What the cached codes depend on: the style files (name, bytes, mtime), the size and the encoder
    (a hash of its small layers and a strided sample of its large matrix)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in embedder.state_dict().items():
        sample = t.reshape(-1)[::9973] if t.numel() > 1 << 20 else t.reshape(-1)
        h.update(name.encode())
        h.update(sample.detach().float().cpu().numpy().tobytes())
    files = folder.identity()
    return {"files": files, "size": cfg.size, "encoder": h.hexdigest()}


def cached_style_codes(path, key):
    """The codes saved in `path` when they were made for `key`, else None."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged cache is simply recomputed
        return None
    return saved["codes"] if saved.get("key") == key else None


@torch.no_grad()
def sample_grid(g_ema, cfg, codes, folder, device, dtype):
    """Rows: fixed face codes; first column G(z), then one column per fixed style image G(z, z_s);
    a top row shows the style images themselves. -> BGR uint8 array."""
    n_styles = min(cfg.sample_styles, len(folder))
    z = draw_codes(g_ema, cfg.seed, FIXED_CODES, range(cfg.sample_rows), 0.0, device, dtype)
    columns = [synthesize(g_ema, z)[0]]
    for k in range(n_styles):
        z_s = codes[2 * k].to(device=device, dtype=dtype).expand(cfg.sample_rows, -1)
        columns.append(synthesize(g_ema, z, z_s)[0])
    top = [torch.full((3, cfg.size, cfg.size), 1.0)] + [folder.tensor(k) for k in range(n_styles)]
    rows = [hconcat(tensors_to_bgr(torch.stack(top)))]
    for r in range(cfg.sample_rows):
        rows.append(hconcat(tensors_to_bgr(torch.stack([c[r].float().cpu() for c in columns]))))
    import numpy as np

    return np.concatenate(rows, axis=0)


class GeneratorTrainer:
    """The generator's part of a run (blendgan.training.loop): data, networks, style codes, optimisers and the
    D / G / EMA step."""

    @staticmethod
    def check(cfg, ctx):
        group = min(cfg.batch, cfg.mbstd_group)
        if cfg.batch % group:
            raise UsageError(
                f"--batch {cfg.batch} (per process) must be a multiple of the minibatch-stddev group "
                f"{group} (--mbstd_group {cfg.mbstd_group})"
            )
        if cfg.size & (cfg.size - 1) or not 8 <= cfg.size <= 1024:
            raise UsageError(f"--size {cfg.size}: must be a power of two between 8 and 1024")
        if cfg.metrics and data.is_shard_set(cfg.faces):
            raise UsageError(
                f"--metrics reads the real faces from a folder of images; {cfg.faces} holds tar shards "
                "(train without --metrics, or measure with `blendgan eval` on a folder)"
            )
        for name in ("augment_p", "target"):
            if not 0 <= getattr(cfg, name) <= 1:
                raise UsageError(f"--{name} {getattr(cfg, name)}: must be between 0 and 1")
        if not cfg.faces or not cfg.styles:
            raise UsageError("--faces DIR and --styles DIR are required (folders of aligned face images)")

    def __init__(self, run):
        cfg, ctx, snapshot = run.cfg, run.ctx, run.snapshot
        self.run, self.cfg, self.ctx = run, cfg, ctx
        device, dtype = run.device, run.dtype

        # -- data: checked before any other work (a folder without usable images is an error)
        data.check_folder(cfg.faces, "faces")
        data.check_folder(cfg.styles, "styles")
        # --metrics: the Inception file is checked now, not at the first snapshot
        self.measure = SnapshotMetrics(
            cfg.metrics,
            cfg.faces,
            run.folder.path,
            cfg.size,
            ctx,
            inception=cfg.inception,
            seed=cfg.seed,
            log=run.log_file,
        )
        self.faces = data.open_images(cfg.faces, cfg.size, "faces", ctx, run.log_file)
        self.styles = data.open_images(cfg.styles, cfg.size, "styles", ctx, run.log_file)
        self.face_sampler = data.Sampler(len(self.faces), cfg.seed, stream=1)
        self.style_sampler = data.Sampler(len(self.styles), cfg.seed, stream=2)

        # -- networks: G (without the style encoder), g_ema, three discriminators; the frozen encoder apart
        init = load_init(cfg) if snapshot is None else None
        self.embedder = load_style_encoder(cfg, init) if snapshot is None else _snapshot_embedder(snapshot, run.folder)
        torch.manual_seed(cfg.seed)
        g = build_generator(cfg)
        g_ema = copy.deepcopy(g)
        ds = build_discriminators(cfg)
        if init is not None:
            apply_init(init, g, g_ema, ds, source=cfg.init)
        del init
        for d in ds.values():
            d.stddev_group = cfg.mbstd_group
        self.g, self.g_ema = g.to(device, dtype).train(), g_ema.to(device, dtype).eval().requires_grad_(False)
        self.ds = {k: d.to(device, dtype).train() for k, d in ds.items()}
        run.write_settings()  # the inputs are usable: from here on a killed run resumes

        # -- the style codes, once per style image (and its mirror image); kept in RUN/style_codes.pt
        key = style_codes_key(self.styles, self.embedder, cfg)
        codes = cached_style_codes(run.folder.style_codes, key)
        if codes is None:
            codes = style_codes(_on_device(self.embedder, device), self.styles, ctx, device)
            if ctx.is_main:
                save_snapshot(run.folder.style_codes, {"key": key, "codes": codes})
        self.codes = codes

        # -- optimisers with the lazy-regularisation correction
        g_lr, g_betas = losses.lazy_regularization(cfg.lr, (0.0, 0.99), cfg.g_reg_every)
        d_lr, d_betas = losses.lazy_regularization(cfg.lr, (0.0, 0.99), cfg.d_reg_every)
        self.g_optim = torch.optim.Adam(self.g.parameters(), lr=g_lr, betas=g_betas)
        self.d_optims = {k: torch.optim.Adam(d.parameters(), lr=d_lr, betas=d_betas) for k, d in self.ds.items()}
        scaler_on = cfg.precision == "fp16"
        self.g_scaler, self.d_scaler = (torch.amp.GradScaler(device.type, enabled=scaler_on) for _ in range(2))
        self.mean_path_length, self.last_reg = 0.0, {}
        # --augment: one augmentation (and one p) per discriminator: D_face sees a large photo set, D_style a
        # few hundred artworks, and each overfits at its own pace
        self.augments = None
        if cfg.augment != "none":
            self.augments = {
                name: AdaptiveAugment(cfg.augment, cfg.augment_p, cfg.target, cfg.ada_kimg, cfg.ada_interval, cfg.seed)
                for name in D_NAMES
            }

    def restore(self, snapshot):
        self.g.load_state_dict(snapshot["g"])
        self.g_ema.load_state_dict({k: v for k, v in snapshot["g_ema"].items() if not k.startswith("embedder.")})
        for name in D_NAMES:
            self.ds[name].load_state_dict(snapshot[name])
            self.d_optims[name].load_state_dict(snapshot[f"{name}_optim"])
        self.g_optim.load_state_dict(snapshot["g_optim"])
        self.g_scaler.load_state_dict(snapshot["g_scaler"])
        self.d_scaler.load_state_dict(snapshot["d_scaler"])
        self.mean_path_length = float(snapshot["mean_path_length"])
        self.last_reg = dict(snapshot["last_regularization"])
        if self.augments is not None:
            for name, state in snapshot["augment"].items():
                self.augments[name].load_state_dict(state)

    def parallel(self):
        # several processes: DDP averages the gradients of G and of each discriminator during backward; its
        # construction gives every process rank 0's weights (g_ema is not trained: broadcast once)
        distributed.broadcast_params(self.g_ema, self.ctx)
        # (find_unused_parameters: the path-length pass leaves the WBM and the style mapping unused)
        self.g_pass = distributed.wrap(GeneratorPass(self.g), self.ctx, find_unused_parameters=True)
        self.ds_sync = {k: distributed.wrap(d, self.ctx) for k, d in self.ds.items()}

    def step(self, step, positions):
        cfg, ctx, g, ds, g_pass, ds_sync = self.cfg, self.ctx, self.g, self.ds, self.g_pass, self.ds_sync
        device, dtype, cast = self.run.device, self.run.dtype, self.run.cast
        g_scaler, d_scaler = self.g_scaler, self.d_scaler
        real_f = data.batch_of(self.faces, self.face_sampler.draw(positions)).to(device, dtype)
        draws = self.style_sampler.draw(positions)
        real_s = data.batch_of(self.styles, draws).to(device, dtype)
        z_s = self.codes[[2 * i + int(f) for i, f in draws]].to(device, dtype)
        values = {}
        aug, real_logits = _identity, None
        if self.augments is not None:
            augments = self.augments

            def aug(name, x, phase):
                stream = AUG_STREAM + 10 * D_NAMES.index(name) + phase
                return augments[name](x, stream, positions)

            real_logits = {}

        # 1. discriminators
        requires_grad([g], False)
        requires_grad(ds.values(), True)
        d_codes = draw_codes(g, cfg.seed, D_CODES, positions, cfg.mixing, device, dtype)
        with torch.no_grad(), cast:
            fake_f, fake_s = distributed.unwrap(g_pass)(d_codes, z_s)
        with cast:
            terms = d_terms(ds_sync, cfg, real_f, real_s, z_s, fake_f.to(dtype), fake_s.to(dtype), aug, real_logits)
        _step([*ds.values()], self.d_optims.values(), d_scaler, terms["d_total"])
        values.update({k: v.item() for k, v in terms.items()})
        if real_logits is not None:  # ADA's overfitting signal r_t: E[sign(D(reals))], over all processes
            signs = distributed.mean_of(
                {k: v.float().sign().mean().item() for k, v in real_logits.items()}, ctx, device
            )
            for name, value in signs.items():
                self.augments[name].observe(value)

        if cfg.r1 > 0 and step % cfg.d_reg_every == 0:
            reals = {"face": real_f.detach().requires_grad_(True), "style": real_s.detach().requires_grad_(True)}
            # (with --augment the penalty is on the un-augmented reals, through the augmentation: StyleGAN2-ADA)
            preds = {
                "r1_face": (ds_sync["d_face"](aug("d_face", reals["face"], AUG_R1)), reals["face"]),
                "r1_style": (ds_sync["d_style"](aug("d_style", reals["style"], AUG_R1)), reals["style"]),
                "r1_style_latent": (
                    ds_sync["d_style_latent"](aug("d_style_latent", reals["style"], AUG_R1), z_s),
                    reals["style"],
                ),
            }
            r1 = {k: losses.r1_penalty(pred, x) for k, (pred, x) in preds.items()}
            # + 0·D(x): the backward then reaches every D parameter (the R1 gradient misses e.g. the last bias),
            # as DDP needs; a zero gradient leaves Adam's update at zero (beta1 = 0). rosinality does the same.
            total = cfg.r1 / 2 * cfg.d_reg_every * sum(r1.values()) + 0 * sum(p[0].sum() for p, _ in preds.values())
            _step([*ds.values()], self.d_optims.values(), d_scaler, total)
            self.last_reg.update(distributed.mean_of({k: v.item() for k, v in r1.items()}, ctx, device))

        # 2. generator
        requires_grad([g], True)
        requires_grad(ds.values(), False)
        g_codes = draw_codes(g, cfg.seed, G_CODES, positions, cfg.mixing, device, dtype)
        with cast:  # the frozen discriminators are called directly: no gradient of theirs to synchronise
            fake_f, fake_s = g_pass(g_codes, z_s)
            terms = g_terms(ds, cfg, z_s, fake_f.to(dtype), fake_s.to(dtype), aug)
        _step([g], [self.g_optim], g_scaler, terms["g_total"])
        values.update({k: v.item() for k, v in terms.items()})
        g.add_weight.data.clamp_(0, 1)  # the WBM weights live in [0, 1]

        if cfg.path_regularize > 0 and step % cfg.g_reg_every == 0:
            n = max(1, cfg.batch // cfg.path_batch_shrink)
            pl_codes = draw_codes(g, cfg.seed, PL_CODES, positions[:n], cfg.mixing, device, dtype)
            pl_noise = torch.stack(
                [
                    torch.randn(3, cfg.size, cfg.size, generator=data.sample_generator(cfg.seed, PL_CODES + 100, p))
                    for p in positions[:n]
                ]
            ).to(device, dtype)
            lengths, fake = g_pass(pl_codes, pl_noise=pl_noise)
            batch_mean = distributed.all_reduce_mean_(lengths.detach().mean().clone(), ctx)
            pl_loss, self.mean_path_length = losses.path_length_penalty(
                lengths, self.mean_path_length, batch_mean=batch_mean
            )
            # + 0·G(z): every parameter of the natural branch gets a gradient (the path length misses the
            # additive ones, e.g. ToRGB biases), as DDP needs; rosinality's train.py adds the same term
            _step([g], [self.g_optim], g_scaler, cfg.path_regularize * cfg.g_reg_every * pl_loss + 0 * fake[0, 0, 0, 0])
            g.add_weight.data.clamp_(0, 1)
            self.last_reg.update(
                {
                    "path_length": float(batch_mean),
                    "path_loss": pl_loss.item(),
                    "mean_path_length": self.mean_path_length,
                }
            )
            self.last_reg["path_loss"] = distributed.mean_of({"x": self.last_reg["path_loss"]}, ctx, device)["x"]

        # 3. EMA
        update_ema(self.g_ema, g, cfg, (step + 1) * self.run.images_per_step, self.run.images_per_step)

        # 4. ADA: p follows the discriminators' overfitting (every --ada_interval steps)
        if self.augments is not None:
            for a in self.augments.values():
                a.adjust(step, self.run.images_per_step)
        return values

    def log_values(self, values):
        extra = {}
        if self.augments is not None:  # the p each discriminator's augmentation had after this step
            extra = {f"augment_p_{name[2:]}": a.p for name, a in self.augments.items()}
        return {
            **distributed.mean_of(values, self.ctx, self.run.device),
            **self.last_reg,
            "add_weight": [round(float(a), 6) for a in self.g.add_weight.detach().flatten()],
            **extra,
        }

    def postfix(self, record):
        return {"d": f"{record['d_total']:.3f}", "g": f"{record['g_total']:.3f}"}

    def after_snapshot(self, step, kimg, snapshot_path):
        """--metrics of g_ema at this snapshot (every process takes part; the main one writes metric-*.jsonl);
        returns {name: value}."""
        if self.measure:
            return self.measure(self.g_ema, step, kimg, snapshot_path)
        return {}

    def sample(self):
        return sample_grid(self.g_ema, self.cfg, self.codes, self.styles, self.run.device, self.run.dtype)

    def data_sizes(self):
        return {"faces": len(self.faces), "styles": len(self.styles)}

    def state(self):
        g, g_ema, ds = self.g, self.g_ema, self.ds
        with torch.no_grad():
            latent_avg = g_ema.mean_latent(LATENT_AVG_SAMPLES, generator=_fixed_generator(g_ema, self.cfg.seed))
        return {
            # inference entries (blendgan.pt layout): every inference command takes this file as --ckpt
            "g_ema": {k: v.detach().cpu() for k, v in inference_state_dict(g_ema, self.embedder).items()},
            "latent_avg": latent_avg.float().cpu(),
            # training state
            "g": {k: v.detach().cpu() for k, v in g.state_dict().items()},
            **{name: {k: v.detach().cpu() for k, v in ds[name].state_dict().items()} for name in D_NAMES},
            "g_optim": self.g_optim.state_dict(),
            **{f"{name}_optim": self.d_optims[name].state_dict() for name in D_NAMES},
            "g_scaler": self.g_scaler.state_dict(),
            "d_scaler": self.d_scaler.state_dict(),
            "mean_path_length": self.mean_path_length,
            "last_regularization": dict(self.last_reg),
            **({"augment": {k: a.state_dict() for k, a in self.augments.items()}} if self.augments else {}),
        }


# ----------------------------------------------------------------------------- the run
def train_generator(cfg: GeneratorConfig, log_file=None, given: set[str] | None = None) -> int:
    """Run (or resume) a generator training run as configured; returns the final step. `given`: the settings
    the user gave (on resume only those change the saved run-time ones; default: those unlike the defaults)."""
    return loop.train(GeneratorTrainer, cfg, given, log_file)


def _step(modules, optims, scaler, loss):
    """zero grads, backward (DDP averages the gradients over processes meanwhile), optimiser step(s)."""
    for m in modules:
        m.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    for opt in optims:
        scaler.step(opt)
    scaler.update()


def _on_device(embedder, device):
    """The style encoder on `device` for computing codes; on the CPU the (memory-mapped) module itself, else
    a device copy made tensor by tensor, so the CPU copy that the snapshots write is never duplicated."""
    if device.type == "cpu":
        return embedder
    from ..models import StyleEncoder
    from ..models.loading import from_state_dict

    return from_state_dict(
        lambda: StyleEncoder(width=embedder.width), {k: v.to(device) for k, v in embedder.state_dict().items()}
    )


def _fixed_generator(g, seed):
    return torch.Generator(device=g.input.input.device).manual_seed(int(seed) + 12345)


def _snapshot_embedder(snapshot, folder):
    from .. import weights

    return (
        weights.style_encoder_from_checkpoint(snapshot, source=str(folder.checkpoints), dtype=None)
        .eval()
        .requires_grad_(False)
    )
