"""`blendgan directions`: directions in W to edit faces with, found in the checkpoint itself.

`sefa`: the closed-form factorisation of the style affines of the layers before add_weight_index (no data).
`labels`: N faces sampled from the generator's face path (no style, its stored noise), measured by dlib's
landmarks (`blendgan.editing.labels`), and one ridge direction per measure (`blendgan.editing.boundaries`).
Face i is drawn from `(seed, i)` alone (`blendgan.pairset.derive_seed`) and faces are measured in fixed parts of
`chunk` faces, dealt round-robin over the torchrun ranks and written atomically: the result does not depend on
the process count, and a killed run resumes from the parts it wrote.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import cv2
import numpy as np
import torch

from .. import distributed, pairset
from ..editing import boundaries, sefa
from ..editing.apply import default_layers, mapped_samples, projection_std
from ..editing.directions_file import Direction, DirectionSet, save_directions
from ..errors import UsageError
from ..fitting.adapter import generator_fingerprint
from ..io.files import write_bytes_atomic
from .common import PathLike, Report, progress, split_options
from .options import DirectionsOptions

if TYPE_CHECKING:
    from ..pipeline import BlendGAN

FILE_NAME = "directions.safetensors"
# labeller(faces: list of H x W x 3 uint8 RGB, w: [N, 512]) -> [N, len(labeller.names)] (NaN rows: no face);
# one with `needs_images = False` (a stand-in reading w only) gets an empty list and no face is rendered
Labeller = Callable[[list, np.ndarray], np.ndarray]


def _mapping(bg):
    def run(z):
        with torch.inference_mode():
            return bg.generator.style(z.to(device=bg.device, dtype=bg.dtype)).detach().float().cpu()

    return run


def sample_codes(bg: BlendGAN, indices: list[int], seed: int, truncation: float, centre: torch.Tensor) -> torch.Tensor:
    """Mapped codes w [len(indices), 512] of faces `indices` of `seed` (each drawn from its own stream)."""
    z = torch.stack(
        [torch.randn(512, generator=pairset.generator_for(pairset.derive_seed(seed, i, "direction"))) for i in indices]
    )
    return bg.face_codes_from_z(z, truncation, centre)[:, 0]


def _truncation_centre(bg):
    if bg.latent_avg is not None:
        return bg.latent_avg.reshape(1, -1).float().cpu()
    return bg.mean_latent(4096, torch.Generator().manual_seed(0))


def _faces_rgb(bg, w, size):
    codes = w.unsqueeze(1).repeat(1, bg.n_latent, 1)
    out = []
    for rgb in bg.to_rgb(bg.reconstruct(codes)):
        if rgb.shape[0] != size:
            interp = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_CUBIC
            rgb = cv2.resize(rgb, (size, size), interpolation=interp)
        out.append(np.ascontiguousarray(rgb))
    return out


def compute_directions(
    bg: BlendGAN,
    outdir: PathLike,
    report: Report,
    options: DirectionsOptions | None = None,
    *,
    labeller: Optional[Labeller] = None,
    ctx: distributed.Context | None = None,
    **kwargs,
) -> Optional[Path]:
    """Write `outdir/directions.safetensors` (`blendgan.editing.directions_file`) and return its path (None on
    the other ranks). `labeller`: the measures of the sampled faces (default: `DlibLabeller`, at `label_size`
    pixels). `kwargs`: fields of `DirectionsOptions`, replacing those of `options`."""
    options, unknown = split_options(DirectionsOptions, options, kwargs)
    if unknown:
        raise TypeError(f"compute_directions() got unexpected keyword arguments {sorted(unknown)}")
    if options.method not in ("labels", "sefa"):
        raise UsageError(f"--method {options.method}: choose labels or sefa")
    ctx = ctx or distributed.Context(device=bg.device)
    outdir = Path(outdir)
    target = outdir / FILE_NAME
    if options.skip_existing and target.is_file():
        report.skipped += 1
        return target if ctx.is_main else None
    layers = default_layers(options.add_weight_index, bg.n_latent)
    fingerprint = generator_fingerprint(bg.generator)
    if options.method == "sefa":
        if not ctx.is_main:
            return None
        found = sefa.factorize(bg.generator, layers, options.top)
        samples = mapped_samples(_mapping(bg))
        directions = {}
        for k, (v, value) in enumerate(zip(found.directions, found.eigenvalues)):
            directions[f"sefa_{k}"] = Direction(
                f"sefa_{k}", v.clone(), found.layers, projection_std(samples, v), {"eigenvalue": float(value)}
            )
        save_directions(target, DirectionSet(directions, fingerprint, "sefa", 0, extra={"top": options.top}))
        report.written += 1
        report.note(f"directions: {len(directions)} SeFa directions on layers {list(found.layers)} -> {target}")
        return target
    return _label_directions(bg, target, report, options, labeller, ctx, layers, fingerprint)


def _label_directions(bg, target, report, options, labeller, ctx, layers, fingerprint):
    if options.n < 10:
        raise UsageError(f"--n {options.n}: sample at least 10 faces (thousands for useful directions)")
    if labeller is None:
        from ..editing.labels import DlibLabeller

        labeller = DlibLabeller()
    names = tuple(labeller.names)
    chunk = max(1, int(options.chunk))
    settings = {
        "base": fingerprint,
        "n": options.n,
        "seed": options.seed,
        "chunk": chunk,
        "truncation": options.truncation,
        "label_size": options.label_size,
        "labels": list(names),
        "precision": bg.precision,
    }
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    work = target.with_name(f".{target.stem}.work")
    if ctx.is_main:
        kept = work / "settings.json"
        same = options.skip_existing and kept.is_file() and json.loads(kept.read_text()).get("key") == key
        if not same:
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(kept, json.dumps({"key": key, **settings}).encode())
    ctx.barrier()
    parts = [list(range(lo, min(lo + chunk, options.n))) for lo in range(0, options.n, chunk)]
    mine = [k for k in distributed.interleave(range(len(parts)), ctx.rank, ctx.world_size)]
    todo = [k for k in mine if not (work / f"part_{k:05d}.npz").is_file()]
    centre = _truncation_centre(bg)
    bar = progress(total=sum(len(parts[k]) for k in todo), desc="faces", unit="face", disable=not ctx.is_main)
    error = None
    try:
        for k in todo:
            w = sample_codes(bg, parts[k], options.seed, options.truncation, centre)
            faces = _faces_rgb(bg, w, options.label_size) if getattr(labeller, "needs_images", True) else []
            labels = np.asarray(labeller(faces, w.numpy()), np.float64)
            _save_npz_atomic(work / f"part_{k:05d}.npz", index=np.array(parts[k]), w=w.numpy(), labels=labels)
            bar.update(len(parts[k]))
    except BaseException as err:  # noqa: BLE001 - told to the other ranks first, so that none waits forever
        error = err
    bar.close()
    if ctx.all_reduce_sum([error is not None])[0]:
        if error is not None:
            raise error
        raise UsageError("directions: another process failed (its error is above); run again with --skip_existing")
    if not ctx.is_main:
        return None
    data = []
    for k in range(len(parts)):
        with np.load(work / f"part_{k:05d}.npz") as part:
            data.append({name: part[name] for name in part.files})
    index = np.concatenate([d["index"] for d in data])
    w = np.concatenate([d["w"] for d in data]).astype(np.float64)
    labels = np.concatenate([d["labels"] for d in data])
    missed = int(np.isnan(labels).all(1).sum())
    directions = {}
    for j, name in enumerate(names):
        fit = boundaries.fit_boundary(w, labels[:, j], index)
        quality = {"r2_held_out": fit.r2, "n_train": fit.n_train, "n_test": fit.n_test}
        directions[name] = Direction(name, torch.from_numpy(fit.direction).float(), layers, fit.std, quality)
        report.note(f"directions: {name}: held-out R² {fit.r2:.3f} ({fit.n_train} faces fitted, {fit.n_test} held out)")
    fitted = [n for n in names if np.isfinite(directions[n].quality["r2_held_out"])]
    for name in fitted if len(fitted) > 1 else []:
        # InterFaceGAN's conditional edit: this measure's direction with the others' projected out
        others = [directions[o].vector.double().numpy() for o in fitted if o != name]
        v = boundaries.conditional(directions[name].vector.double().numpy(), *others)
        std = float(((w - w.mean(0)) @ v).std())
        cosine = float(v @ directions[name].vector.double().numpy())
        quality = {"conditional_on": [o for o in fitted if o != name], "cosine_to_plain": cosine}
        directions[f"{name}_only"] = Direction(f"{name}_only", torch.from_numpy(v).float(), layers, std, quality)
    extra = {**{k: v for k, v in settings.items() if k != "base"}, "missed": missed}
    save_directions(target, DirectionSet(directions, fingerprint, "labels", options.n, extra=extra))
    shutil.rmtree(work, ignore_errors=True)
    report.written += 1
    report.note(f"directions: {options.n} faces sampled, {missed} not found by the face detector (skipped) -> {target}")
    return target


def _save_npz_atomic(path, **arrays):
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())
