"""The three original programs as functions over a `BlendGAN` pipeline.

Each job takes already-resolved inputs (paths, numbers), writes its outputs atomically with the
original names and layouts, and records what happened in a report object (`written`, `skipped`,
`fail(path, reason)`, `note(msg)`); the commands in `blendgan.cli` only parse flags and call these.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence, Union

import cv2
import numpy as np
import torch
from tqdm import tqdm

from . import distributed, pairset
from .defaults import ADD_WEIGHT_INDEX, LATENT_AVG_SAMPLES, VIDEO_ADD_WEIGHT_INDEX, VIDEO_FPS
from .errors import BlendGANError, UsageError
from .io import images
from .pipeline import video_alphas

if TYPE_CHECKING:
    from .align import FaceAligner
    from .pipeline import BlendGAN

PathLike = Union[str, "os.PathLike[str]"]
# aligner(image_bgr, path) -> the FFHQ-aligned face (blendgan.cli._common.make_aligner)
Aligner = Callable[[np.ndarray, Path], np.ndarray]


class Report(Protocol):
    """What a job records (blendgan.cli._common.RunReport is the commands' one)."""

    written: int
    skipped: int

    def fail(self, path: PathLike, reason: str) -> None: ...

    def note(self, message: str) -> None: ...


VIDEO_STYLES_PER_FACE = 8
VIDEO_HOLD_FRAMES = 10


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress(iterable=None, **kwargs):
    """tqdm progress bar on stderr (stdout keeps the summary line)."""
    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kwargs)


# --------------------------------------------------------------------------- generate_image_pairs


def load_sample_zs(path: PathLike, pics: int) -> torch.Tensor:
    """The `--sample_zs` file: a [pics, 1, 512] / [pics, 512] tensor or a list of [1, 512] tensors."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise UsageError(f"{path}: --sample_zs file not found") from err
    except Exception as err:  # noqa: BLE001 - any unreadable file is a user error here
        raise UsageError(f"{path}: not a readable torch file of latent vectors ({err.__class__.__name__})") from err
    rows = list(data) if isinstance(data, (list, tuple)) or torch.is_tensor(data) else None
    if not rows or not all(torch.is_tensor(r) and r.numel() == 512 for r in rows):
        raise UsageError(f"{path}: expected a list/tensor of 512-d latent vectors ([pics, 1, 512])")
    if len(rows) < pics:
        raise UsageError(f"{path}: holds {len(rows)} latent vectors but --pics is {pics}; lower --pics")
    return torch.stack([r.reshape(512).float() for r in rows[:pics]])


def generate_image_pairs(
    bg: BlendGAN,
    outdir: PathLike,
    report: Report,
    *,
    pics: int = 20,
    truncation: float = 0.75,
    truncation_mean: int = LATENT_AVG_SAMPLES,
    style_img: PathLike | None = None,
    style_dir: PathLike | None = None,
    style_per_pair: bool = False,
    sample_zs: torch.Tensor | None = None,
    add_weight_index: int | tuple[int, int] | str = ADD_WEIGHT_INDEX,
    seed: int = 0,
    skip_existing: bool = False,
    layout: str = "pairs",
    shard_size: int = 0,
    random_noise: bool = False,
    ctx: distributed.Context | None = None,
    strength: tuple[float, float] = (1.0, 1.0),
    layer_weights=None,
    preserve_color: bool = False,
    style_weights: Sequence[float] | None = None,
) -> None:
    """`{i:06d}.jpg` = [face | stylized face] for `pics` random faces, at any scale.

    `add_weight_index`: an int, a (low, high) range or its text form '4-8' (drawn per pair).
    `style_img`: one image, or a list of images mixed with `style_weights` (normalised, one per image).
    `strength` (a value or a (low, high) range drawn per pair), `layer_weights`, `preserve_color`: the
    stylization controls of `BlendGAN.stylize`, recorded in the manifest when not at their defaults.

    Pair i is drawn from `(seed, i)` alone (`blendgan.pairset`), so the files do not depend on the batch
    size, the number of processes or where a run resumed. `ctx` (`blendgan.distributed.Context`) gives
    this process its share: units (pairs, or tar shards) dealt round-robin over the ranks. Also writes
    `manifest.jsonl` (one record per pair, merged from the ranks' parts by rank 0)."""
    ctx = ctx or distributed.Context(device=bg.device)
    outdir = Path(outdir)
    if bg.truncation is not None:
        truncation = float(bg.truncation)  # the checkpoint's value wins, as in the original
    if isinstance(add_weight_index, str):
        awi = pairset.parse_add_weight_index(add_weight_index)
    elif isinstance(add_weight_index, (tuple, list)):
        awi = (int(add_weight_index[0]), int(add_weight_index[1]))
    else:
        awi = (int(add_weight_index), int(add_weight_index))
    if style_img is not None and style_dir is not None:
        raise UsageError("give either --style_img (one image for every pair) or --style_img_path (a folder), not both")
    mean_latent = None
    if truncation < 1:
        if bg.latent_avg is not None:
            mean_latent = bg.latent_avg
        else:
            rng = pairset.generator_for(pairset.derive_seed(seed, "mean_latent"))
            mean_latent = bg.mean_latent(truncation_mean, rng)
        mean_latent = mean_latent.reshape(1, -1).float()
    if isinstance(style_img, (list, tuple)):
        if len(style_img) == 1 and style_weights is None:
            style_img = style_img[0]
        elif not style_img:
            style_img = None
    strength = (float(strength),) * 2 if isinstance(strength, (int, float)) else tuple(map(float, strength))
    style_codes = {}  # manifest style name -> z_embed [1, 512]
    if isinstance(style_img, (list, tuple)):  # reference-guided, a mix of images
        from .controls import Controls

        weights = Controls(style_weights=tuple(style_weights) if style_weights is not None else None).mix_weights(
            len(style_img)
        )
        for p in style_img:
            style_codes[str(p)] = bg.read_style(p)[1]
        style = ("mix", (tuple(str(p) for p in style_img), tuple(weights or [1.0])))
    elif style_img is not None:  # reference-guided, one image
        style_codes[str(style_img)] = bg.read_style(style_img)[1]
        style = ("image", str(style_img))
    elif style_dir is not None:  # reference-guided, one image of the folder per pair
        style = ("folder", _embed_style_folder(bg, style_dir, style_codes, report if ctx.is_main else None))
    else:  # latent-guided: the random vector is the z_embed
        style = ("latent", bool(style_per_pair))
    zs = load_sample_zs(sample_zs, pics) if sample_zs is not None else None
    recipe = pairset.PairRecipe(
        seed=seed,
        truncation=truncation,
        add_weight_index=awi,
        style=style,
        sample_zs=None if sample_zs is None else str(sample_zs),
        random_noise=random_noise,
        strength=strength,
        layer_weights=layer_weights,
        preserve_color=preserve_color,
    )
    outputs = pairset.Outputs(outdir, layout, shard_size, pics)
    outputs.prepare()

    mine = distributed.interleave(outputs.units(), ctx.rank, ctx.world_size)
    records = {i: outputs.locate(recipe.draws(i)) for unit in mine for i in unit}
    failure = None
    try:  # this rank's share only: the ranks agree before going on, so none waits forever
        if skip_existing:
            pairset.check_earlier_manifest(outdir, records)
    except BlendGANError as err:
        failure = err
    _stop_if_any_failed(ctx, failure)
    todo = [u for u in mine if not (skip_existing and outputs.unit_done(u))]
    report.skipped += len(records) - sum(len(u) for u in todo)

    # a step gathers enough pairs to batch each add_weight_index of a range, at most 32 (memory at 1024 px)
    window = min(bg.batch_size * (awi[1] - awi[0] + 1), max(bg.batch_size, 32))
    steps = _steps(todo, window, sharded=bool(outputs.shard_size))
    rounds = ctx.all_reduce_max(len(steps))  # every rank joins every round's count, even when out of work
    bar = _progress(
        total=ctx.all_reduce_sum([sum(map(len, todo))])[0], desc="pairs", unit="pair", disable=not ctx.is_main
    )
    shared_style = None
    if style == ("latent", False):  # the original: one random style code for the whole run
        shared_style = pairset.style_code({"style_seed": pairset.derive_seed(seed, "style")})
    writer = None
    started, cpu_started = time.perf_counter(), time.process_time()
    for r in range(rounds):
        made, error = 0, None
        if r < len(steps):
            unit, part, opens, closes = steps[r]
            try:
                if opens:
                    writer = outputs.open_unit(unit)
                recs = [records[i] for i in part]
                faces, styled = _make_pairs(bg, recs, zs, style_codes, shared_style, mean_latent, truncation)
                for rec, a, b in zip(recs, faces, styled):
                    writer.add(rec, a, b)
                if closes:
                    writer.commit()
                    writer = None
                made = len(part)
            except BaseException as err:  # noqa: BLE001 - told to the other ranks, then raised
                if writer is not None:
                    writer.abort()
                    writer = None
                error = err
        done, failures = ctx.all_reduce_sum([made, error is not None])
        if failures:
            bar.close()
        _stop_if_any_failed(ctx, error, reduced=failures)
        report.written += made
        bar.update(done)
    bar.close()
    seconds = time.perf_counter() - started
    made, cpu_ms = ctx.all_reduce_sum([report.written, round(1000 * (time.process_time() - cpu_started))])
    if ctx.is_main and made:
        report.note(
            f"pairs: generated {made} in {seconds:.1f}s on {ctx.world_size} process(es): "
            f"{made / seconds:.3f} pairs/s, {cpu_ms / 1000 / made:.2f} CPU s/pair"
        )
    lines = [pairset.record_line(records[i]) for i in sorted(records)]
    if ctx.world_size == 1:
        pairset.write_manifest_single(outdir, lines)
    else:
        pairset.write_part(outdir, ctx.rank, ctx.world_size, lines)
        ctx.barrier()
        if ctx.is_main:
            pairset.merge_parts(outdir, ctx.world_size)


def _steps(todo, window, sharded):
    """Work of one rank as (unit, pairs, opens unit, closes unit): up to `window` pairs a step. A tar shard
    is one unit spread over steps; loose pairs are packed into full windows across units."""
    if sharded:
        return [(u, u[s : s + window], s == 0, s + window >= len(u)) for u in todo for s in range(0, len(u), window)]
    flat = [i for u in todo for i in u]
    return [(flat[s : s + window], flat[s : s + window], True, True) for s in range(0, len(flat), window)]


def _stop_if_any_failed(ctx, error, reduced=None):
    """Raise this rank's error, or a note that another rank failed (`reduced`: the failure count already summed)."""
    failed = reduced if reduced is not None else ctx.all_reduce_sum([error is not None])[0]
    if error is not None:
        raise error
    if failed:
        raise UsageError("pairs: stopped because another process failed (its error is printed above)")


def _embed_style_folder(bg, folder, style_codes, report):
    """Sorted names of the readable images of a folder; their style codes into `style_codes` (once each)."""
    found, _ = images.list_images(folder)
    if not found:
        raise UsageError(f"--style_img_path {folder}: no images found (jpg, png, bmp, webp, tif)")
    root = Path(folder) if Path(folder).is_dir() else Path(folder).parent
    names = []
    for path in _progress(found, desc="styles", unit="img", disable=report is None):
        try:
            z = bg.embed_style_bgr(images.read_image_bgr(path))
        except BlendGANError as err:
            if report is not None:
                report.fail(path, err)
            continue
        name = Path(path).relative_to(root).as_posix()
        style_codes[name] = z.float().cpu()
        names.append(name)
    if not names:
        raise UsageError(f"--style_img_path {folder}: none of the images could be read")
    bg.clear_caches()  # the codes are kept here; the pipeline's cache would also hold them
    return tuple(names)


def _make_pairs(bg, recs, zs, style_codes, shared_style, mean_latent, truncation):
    """(faces, stylized) as BGR arrays for the records, in order; batched per add_weight_index."""
    z = torch.cat([zs[r["index"] : r["index"] + 1] if zs is not None else pairset.face_code(r) for r in recs])
    controls = {}
    if "strength" in recs[0]:  # the stylization controls (the same for every pair but the drawn strength)
        controls = {
            "strength": [r["strength"] for r in recs],
            "layer_weights": recs[0]["layer_weights"],
            "preserve_color": recs[0]["preserve_color"],
        }
    if recs[0].get("style_images"):  # a mix of style images: codes [N, J, 512]
        mixed = torch.cat([style_codes[name].float().cpu() for name in recs[0]["style_images"]])
        z_embed = mixed[None].expand(len(recs), -1, -1)
        controls["style_weights"] = recs[0]["style_weights"]
    elif recs[0]["style_image"] is not None:
        z_embed = torch.cat([style_codes[r["style_image"]].float().cpu() for r in recs])
    elif shared_style is not None:
        z_embed = shared_style.expand(len(recs), -1)
    else:
        z_embed = torch.cat([pairset.style_code(r) for r in recs])
    noise = pairset.noise_maps(recs, bg.noise_shapes()) if recs[0]["noise_seed"] is not None else None
    faces, styled = [None] * len(recs), [None] * len(recs)
    for awi in dict.fromkeys(r["add_weight_index"] for r in recs):
        pos = [k for k, r in enumerate(recs) if r["add_weight_index"] == awi]
        sel = torch.tensor(pos)
        chosen = dict(controls)
        if "strength" in chosen:
            chosen["strength"] = [chosen["strength"][k] for k in pos]
        plain, styl = bg.sample_pair(
            z[sel],
            z_embed[sel],
            truncation=truncation,
            truncation_latent=mean_latent,
            add_weight_index=awi,
            noise=None if noise is None else [m[sel] for m in noise],
            **chosen,
        )
        for k, a, b in zip(pos, images.tensors_to_bgr(plain), images.tensors_to_bgr(styl)):
            faces[k], styled[k] = a, b
    return faces, styled


# --------------------------------------------------------------------------- refined faces (issue 26)


def face_codes(bg: BlendGAN, image_bgr: np.ndarray, refine: int, name: str, report: Report) -> torch.Tensor:
    """pSp's codes of a face, or with `refine` > 0 its refined codes (`BlendGAN.refine_face_bgr`): a progress
    bar of the steps and one note per face with the seconds it took (or that it came from the cache)."""
    if not refine:
        return bg.encode_face_bgr(image_bgr)
    bar = _progress(total=int(refine), desc=f"refine {name}", unit="step", leave=False)

    def step(done, total, loss):
        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        bar.update(1)

    try:
        codes = bg.refine_face_bgr(image_bgr, refine, progress=step)
    finally:
        bar.close()
    r = bg.last_refine
    how = "from the cache" if r.cached else f"{r.steps} step{'s' * (r.steps != 1)} in {r.seconds:.1f}s"
    report.note(f"refine {name}: {how}, reconstruction loss {r.loss_before:.4g} -> {r.loss_after:.4g}")
    return codes


def _numbered_face_codes(bg, refine, photo_name, report):
    """`face_codes` for the faces of one photo, named '<photo> face k' in the notes."""
    count = iter(range(1 << 30))
    return lambda crop: face_codes(bg, crop, refine, f"{photo_name} face {next(count)}", report)


# --------------------------------------------------------------------------- style_transfer_folder


def _read_face(path, aligner):
    img = images.read_image_bgr(path)
    if aligner is not None:
        img = aligner(img, path)
    return img


def style_transfer_folder(
    bg: BlendGAN,
    faces: Sequence[Path],
    styles: Sequence[Path],
    outdir: PathLike,
    report: Report,
    *,
    add_weight_index: int = ADD_WEIGHT_INDEX,
    skip_existing: bool = False,
    aligner: Aligner | None = None,
    style_weights: Sequence[float] | None = None,
    refine: int = 0,
    **controls,
) -> None:
    """`{face}_v_{style}.jpg` = [face | style | stylized] for every face x style.

    `style_weights` (one per style): mix all the styles into one instead, `{face}_v_{a}+{b}.jpg` with the
    styles side by side in vertical stripes in the style panel. `controls`: strength, layer_weights,
    preserve_color as in `BlendGAN.stylize`. `refine` > 0: each face's codes are refined for that many steps
    (`face_codes`) and reused for every style.

    Each style is read and embedded once and each face encoded once; generation is batched over the
    styles of one face. Faces and styles are encoded at their own resolution, as in the original.
    Memory: the encoders are not needed once their codes are made, so the style encoder's pages are
    handed back after the styles, and the pSp encoder is dropped after every face is encoded (the
    faces are read again for their panels); the images are the same as encoding face by face."""
    outdir = Path(outdir)
    size = bg.size
    style_items = []  # (stem, display copy, z_embed)
    for path in _progress(styles, desc="styles", unit="img"):
        try:
            img, z = bg.read_style(path)  # an image, or a fitted style code with its reference's thumbnail
            style_items.append((Path(path).stem, images.resize_square(img, size), z))
        except BlendGANError as err:
            report.fail(path, err)
    if not style_items:
        return
    if style_weights is not None:
        if len(style_items) != len(styles):
            return  # a style of the mix could not be read (reported above): no partial mixes
        style_items = [_mixed_style_item(style_items, size)]
        controls["style_weights"] = style_weights
    bg.page_out_style_encoder()
    work = []  # (face path, targets, indices to make, codes)
    for face_path in _progress(faces, desc="faces", unit="img"):
        targets = [outdir / f"{Path(face_path).stem}_v_{stem}.jpg" for stem, _, _ in style_items]
        todo = [j for j, t in enumerate(targets) if not (skip_existing and t.exists())]
        report.skipped += len(targets) - len(todo)
        if not todo:
            continue
        try:
            codes = face_codes(bg, _read_face(face_path, aligner), refine, Path(face_path).name, report)
            work.append((face_path, targets, todo, codes))
        except BlendGANError as err:
            report.fail(face_path, err)
    bg.release_face_encoder()
    bg.release_refine_models()  # float32 copies a reduced-precision pipeline refined on, if any
    bar = _progress(total=sum(len(todo) for _, _, todo, _ in work), desc="stylize", unit="img")
    for face_path, targets, todo, codes in work:
        try:
            face_display = images.resize_square(_read_face(face_path, aligner), size)
        except BlendGANError as err:  # changed or removed since it was encoded
            report.fail(face_path, err)
            bar.update(len(todo))
            continue
        for chunk in _chunks(todo, bg.batch_size):
            z = torch.cat([style_items[j][2] for j in chunk])
            out = bg.stylize(codes, z, add_weight_index=add_weight_index, **controls)
            for j, result in zip(chunk, images.tensors_to_bgr(out)):
                images.write_image_atomic(targets[j], images.hconcat([face_display, style_items[j][1], result]))
                report.written += 1
            bar.update(len(chunk))
    bar.close()


def _mixed_style_item(items, size):
    """One (stem, panel, codes [1, J, 512]) for a mix of styles: stems joined by '+', the style panel cut
    into J vertical stripes, one from each style."""
    panel = items[0][1].copy()
    n = len(items)
    for j, (_, display, _) in enumerate(items):
        lo, hi = j * size // n, (j + 1) * size // n
        panel[:, lo:hi] = display[:, lo:hi]
    return "+".join(stem for stem, _, _ in items), panel, torch.stack([z.reshape(-1) for _, _, z in items])[None]


# --------------------------------------------------------------------------- gen_video


def video_frames(
    bg: BlendGAN,
    face_bgr: np.ndarray,
    style_bgrs: Sequence[np.ndarray],
    add_weight_index: int = VIDEO_ADD_WEIGHT_INDEX,
    **controls,
) -> Iterator[np.ndarray]:
    """gen_video's frames (H x 3W x 3 uint8 RGB) for one face and its chosen styles, streamed.

    `controls`: `space` and the controls of `BlendGAN.interpolate` (defaults: the original frames).

    `face_bgr` and `style_bgrs` are already resized to size x size; they are encoded as such."""
    size = bg.size
    face_panel = images.tensor_to_video_frame_rgb(images.bgr_to_tensor(face_bgr))
    style_panels = [images.tensor_to_video_frame_rgb(images.bgr_to_tensor(s)) for s in style_bgrs]
    zs = [bg.embed_style_bgr(s) for s in style_bgrs]
    codes = bg.encode_face_bgr(face_bgr)
    alphas = video_alphas()
    frame = None
    for t in range(len(style_bgrs) - 1):
        stacked = np.concatenate([style_panels[t], style_panels[t + 1]], axis=0)  # prev above next
        for chunk in _chunks(alphas, bg.batch_size):
            out = bg.interpolate(codes, zs[t], zs[t + 1], chunk, add_weight_index=add_weight_index, **controls)
            for alpha, result in zip(chunk, images.tensors_to_video_frames_rgb(out)):
                top = int(size * alpha)  # sliding window: alpha 0 shows prev, 1 shows next
                frame = np.concatenate([face_panel, stacked[top : top + size], result], axis=1)
                yield frame
    for _ in range(VIDEO_HOLD_FRAMES):
        yield frame


def frames_per_video(n_styles: int = VIDEO_STYLES_PER_FACE) -> int:
    return (n_styles - 1) * len(video_alphas()) + VIDEO_HOLD_FRAMES


def gen_video(
    bg: BlendGAN,
    faces: Sequence[Path],
    styles: Sequence[Path],
    outdir: PathLike,
    report: Report,
    *,
    add_weight_index: int = VIDEO_ADD_WEIGHT_INDEX,
    seed: int = 0,
    codec: str = "h264",
    frames_dir: PathLike | None = None,
    skip_existing: bool = False,
    aligner: Aligner | None = None,
    **controls,
) -> None:
    """`{face}.mp4`: 227 frames morphing through 8 randomly chosen styles per face.

    `controls`: `space` ('z' the original, 'w' the W-space mix) and strength, layer_weights, preserve_color."""
    from .io.video import FrameDumper, VideoWriter

    outdir = Path(outdir)
    size = bg.size
    rng = random.Random(seed)  # the original's global `random` seeded at import
    style_cache = {}

    def style_image(path):
        if path not in style_cache:
            style_cache[path] = images.resize_square(images.read_image_bgr(path), size)
        return style_cache[path]

    usable = []
    for path in styles:  # unreadable styles are reported once and never chosen
        try:
            style_image(path)
            usable.append(path)
        except BlendGANError as err:
            report.fail(path, err)
    if not usable:
        return
    n_frames = frames_per_video()
    for face_path in faces:
        choices = rng.choices(usable, k=VIDEO_STYLES_PER_FACE)  # drawn even when skipped: same stream
        target = outdir / f"{Path(face_path).stem}.mp4"
        if skip_existing and target.exists():
            report.skipped += 1
            continue
        try:
            face = images.resize_square(_read_face(face_path, aligner), size)
        except BlendGANError as err:
            report.fail(face_path, err)
            continue
        dumper = FrameDumper(Path(frames_dir) / Path(face_path).stem) if frames_dir else None
        frames = video_frames(bg, face, [style_image(p) for p in choices], add_weight_index, **controls)
        with VideoWriter(target, 3 * size, size, fps=VIDEO_FPS, codec=codec) as writer:
            for frame in _progress(frames, total=n_frames, desc=Path(face_path).name, unit="frame", leave=False):
                writer.write(frame)
                if dumper is not None:
                    dumper.write(frame)
        report.written += 1


# --------------------------------------------------------------------------- whole photos

PANEL_MAX_HEIGHT = 2048  # side-by-side panels of larger photos are shrunk to this height


def stylize_photos(
    bg: BlendGAN,
    photos: Sequence[Path],
    style_img,
    outdir: PathLike,
    report: Report,
    *,
    faces: str | int = "all",
    min_face: float | None = None,
    min_score: float | None = None,
    keep_faceless: bool = False,
    save_crops: bool = False,
    panel: bool = False,
    skip_existing: bool = False,
    aligner: FaceAligner | None = None,
    refine: int = 0,
    **controls,
) -> None:
    """`{photo}_v_{style}{ext}`: each photo at its own size and format with every face stylized and pasted back.

    `style_img`: the artwork's path, or several paths mixed with the `style_weights` control (the name then
    joins their stems with '+'). `controls` go to `BlendGAN.stylize` (e.g. `add_weight_index`). A photo in
    which no face is found is a failure unless `keep_faceless`, which writes it unchanged. `save_crops` also
    writes each face's aligned and stylized squares; `panel` a [photo | result] picture. `refine` > 0: each
    face's codes are refined for that many steps first (`face_codes`)."""
    from . import photo as photo_mod

    outdir = Path(outdir)
    style_imgs = list(style_img) if isinstance(style_img, (list, tuple)) else [style_img]
    try:
        codes = [bg.read_style(p)[1] for p in style_imgs]
    except BlendGANError as err:
        raise UsageError(f"--style_img {err}") from None
    z_embed = codes[0] if len(codes) == 1 else codes
    style_stem = "+".join(Path(p).stem for p in style_imgs)
    aligner = aligner or bg.face_aligner()
    options = {k: v for k, v in (("min_face", min_face), ("min_score", min_score)) if v is not None}
    for path in _progress(photos, desc="photos", unit="photo"):
        path = Path(path)
        target = outdir / f"{path.stem}_v_{style_stem}{path.suffix}"
        if skip_existing and target.exists():
            report.skipped += 1
            continue
        try:
            picture = images.read_image_bgr(path)
            records = photo_mod.find_faces(aligner, picture, faces, **options)
        except BlendGANError as err:
            report.fail(path, err)
            continue
        for item in records:
            if item.skipped and "--min_face" in item.skipped:
                report.note(f"{path}: skipped a {item.skipped}")
        if not any(item.aligned is not None for item in records):
            if not keep_faceless:
                report.fail(path, "no face found to stylize; pass --keep_faceless to write such photos unchanged")
                continue
            report.note(f"{path}: no face found; written unchanged (--keep_faceless)")
        result = photo_mod.stylize_faces(
            bg, picture, records, z_embed, face_codes=_numbered_face_codes(bg, refine, path.name, report), **controls
        )
        images.write_image_atomic(target, result)
        report.written += 1
        if save_crops:
            for k, item in enumerate(r for r in records if r.stylized is not None):
                stem = target.with_suffix("").name
                images.write_image_atomic(outdir / f"{stem}_face{k}_aligned.png", item.aligned)
                images.write_image_atomic(outdir / f"{stem}_face{k}_stylized.png", item.stylized)
        if panel:
            images.write_image_atomic(outdir / f"{target.stem}_panel.jpg", _side_by_side(picture, result))


def _side_by_side(left, right):
    """[left | right] at most PANEL_MAX_HEIGHT high."""
    pair = np.concatenate([left, right], axis=1)
    if pair.shape[0] > PANEL_MAX_HEIGHT:
        scale = PANEL_MAX_HEIGHT / pair.shape[0]
        pair = cv2.resize(pair, (round(pair.shape[1] * scale), PANEL_MAX_HEIGHT), interpolation=cv2.INTER_AREA)
    return pair
