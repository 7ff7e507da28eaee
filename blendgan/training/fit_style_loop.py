"""Fitting a style from one to a few references (`blendgan fit-style`, issue 26), read top to bottom:
`FitStyleTrainer` is the fit's part of a run on the shared skeleton (loop.py): run folder, config, log,
resumable snapshots, sample sheets, bf16 autocast, torchrun.

Stage 1, steps 0 ... --code_steps: the style code z_s alone (started from the style encoder's code of the
references) so that stylizing each reference's own face (its pSp codes) gives the reference back, under a
VGG19 perceptual and a Gram (style) loss; no weight changes.

Stage 2, the remaining steps: a low-rank adapter on the synthesis convolutions (blendgan/fitting/adapter.py
says which and why), with the fitted code fixed. JoJoGAN's recipe translated to BlendGAN: every sample is a
reference's face codes whose style layers (from --add_weight_index on, the layers the WBM hands to the style)
are mixed with a random face's by a random amount, and every sample is mapped to that reference. The face
layers below --add_weight_index keep the reference's, so the adapter learns the look, not one face.

After every snapshot the run folder holds style_code.safetensors and adapter.safetensors as of that step.
Every random draw is a function of the seed and the global sample position: a resumed fit continues exactly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..errors import UsageError
from ..fitting import adapter as adapter_mod
from ..fitting.style_code import save_style_code
from ..io import images
from ..io.files import write_bytes_atomic
from ..losses.style_fit import StyleFitLoss
from ..weights.manifest import sha256_file
from . import data, loop
from .config import FitStyleConfig

MIX_STREAM = 41
SHEET_FACES = 3
THUMBNAIL = 256


def check_settings(cfg, ctx):
    """The fit's own checks (after the shared ones of loop.check_settings)."""
    if not cfg.references:
        raise UsageError("give one or more reference images: blendgan fit-style REF.jpg ... --outdir RUN")
    missing = [p for p in cfg.references if not Path(p).is_file()]
    if missing:
        raise UsageError(f"{missing[0]}: reference image not found")
    if not cfg.ckpt:
        raise UsageError("--ckpt blendgan.pt is required (the base generator)")
    if not cfg.psp_encoder_ckpt:
        raise UsageError("--psp_encoder_ckpt psp_encoder.pt is required (the references' face codes)")
    if cfg.code_steps > cfg.iters:
        raise UsageError(f"--code_steps {cfg.code_steps}: at most --iters {cfg.iters}")


def default_sheet_faces():
    folder = Path(__file__).resolve().parents[2] / "test_imgs" / "face_imgs"
    return folder if folder.is_dir() else None


def read_square(path, size, what):
    try:
        return images.resize_square(images.read_image_bgr(path), size)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - an unreadable input is the user's file, said in one line
        raise UsageError(f"{path}: cannot read this {what} ({err})") from None


class FitStyleTrainer:
    """The fit's part of a run: base generator with attached low-rank deltas, the references, both stages."""

    check = staticmethod(check_settings)

    def __init__(self, run):
        from ..weights.building import load_generator, load_psp_encoder

        cfg, ctx = run.cfg, run.ctx
        self.run, self.cfg, self.ctx = run, cfg, ctx
        dev, dtype = run.device, run.dtype
        g, _ = load_generator(cfg.ckpt)
        if g.embedder is None:
            raise UsageError(f"--ckpt {cfg.ckpt}: holds no style encoder (embedder.*); pass a full blendgan.pt")
        self.fingerprint = adapter_mod.generator_fingerprint(g)
        g.requires_grad_(False).eval()
        for p in g.parameters():  # fresh memory: the file's mapping stays read-only and kernels see no offsets
            p.data = p.data.clone()
        self.g = g.to(dev, dtype)
        self.size, self.n_latent = g.size, g.n_latent
        if not cfg.add_weight_index < self.n_latent:
            raise UsageError(
                f"--add_weight_index {cfg.add_weight_index}: below {self.n_latent}, the "
                f"{self.size}px generator's number of layers"
            )
        refs = [read_square(p, self.size, "reference image") for p in cfg.references]
        self.reference_bgr = refs
        self.target = torch.cat([images.bgr_to_tensor(r) for r in refs]).to(dev, dtype)
        faces_dir = Path(cfg.sheet_faces) if cfg.sheet_faces else default_sheet_faces()
        sheet = []
        if faces_dir is not None:
            listed, _ = images.list_images(faces_dir)
            sheet = [read_square(p, self.size, "sheet face") for p in listed[:SHEET_FACES]]
        self.sheet_bgr = sheet
        psp = load_psp_encoder(cfg.psp_encoder_ckpt, size=self.size).to(dev, dtype).eval()
        with torch.no_grad():
            self.w_ref = psp(self.target).float()
            self.w_sheet = (
                psp(torch.cat([images.bgr_to_tensor(s) for s in sheet]).to(dev, dtype)).float() if sheet else None
            )
            self.z_encoder = g.embedder(self.target).float().mean(0, keepdim=True)  # the style encoder's code
            gen = torch.Generator().manual_seed(cfg.seed)
            self.w_mean = g.style(torch.randn(4096, g.style_dim, generator=gen).to(dev, dtype)).float().mean(0)
        del psp
        self.noise = [m.to(dev, dtype) for m in g.noises.maps()]  # fixed noise: the stored maps
        self.z = torch.nn.Parameter(self.z_encoder.clone())
        self.fit_resolution = cfg.fit_resolution if 0 < cfg.fit_resolution < self.size else None
        self.layers = [
            n
            for n in adapter_mod.select_layers(g, cfg.layers)
            if self.fit_resolution is None or adapter_mod.layer_resolution(n) <= self.fit_resolution
        ]
        if not self.layers:
            raise UsageError(f"--layers {cfg.layers}: no layer at or below --fit_resolution {cfg.fit_resolution}")
        self.deltas = adapter_mod.attach(g, self.layers, cfg.rank, cfg.seed)
        self.code_optim = torch.optim.Adam([self.z], lr=cfg.code_lr)
        self.adapter_optim = torch.optim.Adam(self.deltas.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
        self.loss = StyleFitLoss(g.embedder.embedder.feature_extractor.vgg_layers).to(dev)
        fit_target = self.target
        if self.fit_resolution is not None:  # compared with the generator's image at that resolution
            fit_target = torch.nn.functional.adaptive_avg_pool2d(self.target, self.fit_resolution)
        with run.cast:
            self.wanted = [self.loss.targets(fit_target[i : i + 1]) for i in range(len(refs))]  # fixed: once
        self.reference_hashes = [sha256_file(p) for p in cfg.references]
        self.base_sha256 = sha256_file(cfg.ckpt) if ctx.is_main else ""
        run.write_settings()

    # ------------------------------------------------------------------ skeleton hooks
    def restore(self, snapshot):
        with torch.no_grad():
            self.z.copy_(snapshot["z"].to(self.z))
            tensors = snapshot["adapter"]
            for key, lora in self.deltas.items():
                name = key.replace("/", ".")
                lora.a.copy_(tensors[f"{name}.lora_a"])
                lora.b.copy_(tensors[f"{name}.lora_b"])
        self.code_optim.load_state_dict(snapshot["code_optim"])
        self.adapter_optim.load_state_dict(snapshot["adapter_optim"])

    def parallel(self):
        pass  # several processes: the gradients are averaged by hand in `step` (two optimisers, one per stage)

    def _inputs(self, positions, mixed):
        """(face codes [B, n_latent, 512], targets) of the samples at these global positions."""
        cfg = self.cfg
        which = [p % len(self.reference_bgr) for p in positions]
        w = self.w_ref[which].clone()
        wanted = [self.wanted[i] for i in which]
        target = {
            "pixels": torch.cat([t["pixels"] for t in wanted]),
            "taps": [torch.cat(t) for t in zip(*[t["taps"] for t in wanted])],
            "grams": [torch.cat(t) for t in zip(*[t["grams"] for t in wanted])],
        }
        if mixed:
            k = cfg.add_weight_index
            rows = []
            for p in positions:
                gen = data.sample_generator(cfg.seed, MIX_STREAM, p)
                z = torch.randn(1, self.g.style_dim, generator=gen)
                alpha = float(torch.rand(1, generator=gen))
                rows.append((z, alpha))
            with torch.no_grad():
                wr = self.g.style(torch.cat([z for z, _ in rows]).to(self.w_ref.device, self.run.dtype)).float()
                wr = self.w_mean + cfg.mix_truncation * (wr - self.w_mean)
            alphas = torch.tensor([a for _, a in rows], device=w.device).reshape(-1, 1, 1)
            w[:, k:] = alphas * w[:, k:] + (1 - alphas) * wr[:, None]
        return w, target

    def _stylize(self, w, z, full=False):
        """The stylized images of codes w with style code z: at --fit_resolution for the losses (the layers above
        it only add detail finer than the 256 px the losses see), at full size for the sheet."""
        dtype = self.run.dtype
        img, _ = self.g(
            [w.to(dtype)],
            input_is_latent=True,
            noise=self.noise,
            z_embed=z.to(dtype),
            add_weight_index=self.cfg.add_weight_index,
            max_resolution=None if full else self.fit_resolution,
        )
        return img

    def step(self, step, positions):
        cfg, run = self.cfg, self.run
        stage = 1 if step < cfg.code_steps else 2
        w, target = self._inputs(positions, mixed=stage == 2)
        z = self.z.expand(w.shape[0], -1)
        if stage == 2:
            z = z.detach()
        optim = self.code_optim if stage == 1 else self.adapter_optim
        params = [self.z] if stage == 1 else list(self.deltas.parameters())
        for p in [self.z, *self.deltas.parameters()]:
            p.grad = None
        with run.cast:
            img = self._stylize(w, z)
            parts = self.loss(img, target)
        loss = (
            cfg.perceptual_lambda * parts["perceptual"]
            + cfg.style_lambda * parts["style"]
            + cfg.l1_lambda * parts["l1"]
        )
        loss.backward()
        for p in params:
            if p.grad is not None:
                distributed.all_reduce_mean_(p.grad, self.ctx)
        optim.step()
        return {
            "loss": loss.item(),
            "perceptual": parts["perceptual"].item(),
            "style": parts["style"].item(),
            "stage": float(stage),
        }

    def log_values(self, values):
        return distributed.mean_of(values, self.ctx, self.run.device)

    def postfix(self, record):
        return {"stage": int(record["stage"]), "loss": f"{record['loss']:.4f}"}

    COLUMNS = ("base", "code", "code+adapter")

    @torch.no_grad()
    def _sheet(self):
        """[(input BGR, [stylized tensors of COLUMNS])] for the references (their own faces), then the sheet faces:
        the base model with the style encoder's code, the fitted code, the fitted code with the adapter."""
        faces = [(r, self.w_ref[i : i + 1]) for i, r in enumerate(self.reference_bgr)]
        faces += [(s, self.w_sheet[i : i + 1]) for i, s in enumerate(self.sheet_bgr)]
        rows = []
        for bgr, w in faces:
            cells = []
            for z, scale in ((self.z_encoder, 0.0), (self.z.detach(), 0.0), (self.z.detach(), 1.0)):
                with adapter_mod.scaled(self.g, scale):
                    cells.append(self._stylize(w, z, full=True).float())
            rows.append((bgr, cells))
        return rows

    def sample(self):
        """Before/after sheet, BGR: rows = the references (with their own faces), then the sheet faces; columns
        = input | base model with the style encoder's code | fitted code | fitted code + adapter."""
        return np.concatenate(
            [images.hconcat([bgr] + [images.tensor_to_bgr(c.cpu()) for c in cells]) for bgr, cells in self._sheet()],
            axis=0,
        )

    @torch.no_grad()
    def style_taken(self):
        """The metrics' style measure (blendgan.metrics: cosine of style-encoder codes of result and reference),
        mean over the sheet faces (other faces than the references'), for each column of the sheet."""
        rows = self._sheet()
        rows = rows[len(self.reference_bgr) :] or rows  # the references' own faces only when there is no other
        ref = torch.nn.functional.normalize(self.g.embedder(self.target.float()).float().mean(0, keepdim=True), dim=1)
        out = {}
        for j, name in enumerate(self.COLUMNS):
            codes = torch.cat([self.g.embedder(cells[j]).float() for _, cells in rows])
            out[name] = float((torch.nn.functional.normalize(codes, dim=1) @ ref.t()).mean())
        return out

    def data_sizes(self):
        return {"references": len(self.reference_bgr)}

    def state(self):
        return {
            "z": self.z.detach().cpu().clone(),
            "adapter": adapter_mod.delta_tensors(self.deltas),
            "code_optim": self.code_optim.state_dict(),
            "adapter_optim": self.adapter_optim.state_dict(),
        }

    def after_snapshot(self, done, kimg, path):
        """style_code.safetensors and adapter.safetensors in the run folder, as of this snapshot."""
        if not self.ctx.is_main:
            return
        cfg = self.cfg
        meta = {
            "base_checkpoint": Path(cfg.ckpt).name,
            "base_sha256": self.base_sha256,
            "base_fingerprint": self.fingerprint,
            "size": str(self.size),
            "references": [Path(p).name for p in cfg.references],
            "reference_sha256": self.reference_hashes,
            "add_weight_index": str(cfg.add_weight_index),
            "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        folder = Path(cfg.outdir)
        if done == cfg.iters:
            report = {"step": done, "style_taken": self.style_taken()}
            write_bytes_atomic(folder / "report.json", (json.dumps(report, indent=2) + "\n").encode())
        thumb = images.resize_square(self.reference_bgr[0], THUMBNAIL)[:, :, ::-1]
        save_style_code(
            folder / "style_code.safetensors", self.z.detach(), thumb, {**meta, "steps": str(min(done, cfg.code_steps))}
        )
        adapter_mod.save_adapter(
            folder / "adapter.safetensors",
            adapter_mod.delta_tensors(self.deltas),
            {**meta, "rank": str(cfg.rank), "layers": self.layers, "steps": str(max(0, done - cfg.code_steps))},
        )


def fit_style(cfg: FitStyleConfig, log_file=None, given: set[str] | None = None) -> int:
    """Run (or resume) a style fit as configured; returns the final step. The run folder then holds
    style_code.safetensors (stage 1) and adapter.safetensors (stage 2) besides the snapshots."""
    return loop.train(FitStyleTrainer, cfg, given, log_file)
