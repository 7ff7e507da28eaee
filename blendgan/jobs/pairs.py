"""`blendgan pairs` (the original generate_image_pairs.py): (face, stylized face) pairs, 20 or millions, as
`{i:06d}.jpg` = [face | stylized face] or tar shards, with a manifest; shared over torchrun ranks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .. import distributed, pairset
from ..errors import BlendGANError, UsageError
from ..io import images
from .common import PathLike, Report, progress, split_options
from .options import PairsOptions

if TYPE_CHECKING:
    from ..pipeline import BlendGAN


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
    options: PairsOptions | None = None,
    *,
    ctx: distributed.Context | None = None,
    **kwargs,
) -> None:
    """`{i:06d}.jpg` = [face | stylized face] for `pics` random faces, at any scale.

    `add_weight_index`: an int, a (low, high) range or its text form '4-8' (drawn per pair).
    `style_img`: one image, or a list of images mixed with `style_weights` (normalised, one per image).
    `strength` (a value or a (low, high) range drawn per pair), `layer_weights`, `preserve_color`: the
    stylization controls of `BlendGAN.stylize`, recorded in the manifest when not at their defaults.
    `edit` (a `blendgan.editing.apply.Edits`): each face's W+ codes (mapping, truncation, repeated over the
    layers) are moved by it and both images of the pair are drawn from the moved codes with the generator's
    stored noise; with no edit, or every amount 0, the pairs are those of a run without it, byte for byte.

    Pair i is drawn from `(seed, i)` alone (`blendgan.pairset`), so the files do not depend on the batch
    size, the number of processes or where a run resumed. `ctx` (`blendgan.distributed.Context`) gives
    this process its share: units (pairs, or tar shards) dealt round-robin over the ranks. Also writes
    `manifest.jsonl` (one record per pair, merged from the ranks' parts by rank 0). `kwargs`: fields of
    `PairsOptions`, replacing those of `options`."""
    options, unknown = split_options(PairsOptions, options, kwargs)
    if unknown:
        raise TypeError(f"generate_image_pairs() got unexpected keyword arguments {sorted(unknown)}")
    o = options
    pics, truncation, truncation_mean = o.pics, o.truncation, o.truncation_mean
    style_img, style_dir, style_per_pair, sample_zs = o.style_img, o.style_dir, o.style_per_pair, o.sample_zs
    add_weight_index, seed, skip_existing, layout = o.add_weight_index, o.seed, o.skip_existing, o.layout
    shard_size, random_noise, strength, layer_weights = o.shard_size, o.random_noise, o.strength, o.layer_weights
    preserve_color, style_weights = o.preserve_color, o.style_weights
    edit = o.edit if o.edit is not None and o.edit.active else None  # amount 0: the original path, untouched
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
        from ..controls import Controls

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
        edit=None if edit is None else {"amounts": {k: v for k, v in edit.amounts.items() if v}, "key": edit.key()},
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
    bar = progress(
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
                faces, styled = _make_pairs(bg, recs, zs, style_codes, shared_style, mean_latent, truncation, edit)
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
    for path in progress(found, desc="styles", unit="img", disable=report is None):
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


def _make_pairs(bg, recs, zs, style_codes, shared_style, mean_latent, truncation, edit=None):
    """(faces, stylized) as BGR arrays for the records, in order; batched per add_weight_index. With `edit`,
    both images come from the edited face codes (`_edited_pair`)."""
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
        maps = None if noise is None else [m[sel] for m in noise]
        if edit is not None:
            plain, styl = _edited_pair(bg, z[sel], z_embed[sel], awi, chosen, mean_latent, truncation, edit, maps)
        else:
            plain, styl = bg.sample_pair(
                z[sel],
                z_embed[sel],
                truncation=truncation,
                truncation_latent=mean_latent,
                add_weight_index=awi,
                noise=maps,
                **chosen,
            )
        for k, a, b in zip(pos, images.tensors_to_bgr(plain), images.tensors_to_bgr(styl)):
            faces[k], styled[k] = a, b
    return faces, styled


def _edited_pair(bg, z, z_embed, awi, controls, mean_latent, truncation, edit, noise=None):
    """(faces, stylized) [N, 3, s, s] of latents z moved by `edit` in W+: w = mapping(z), truncated as
    `sample_pair` truncates it, repeated over the layers, moved; then the face (`reconstruct`) and the stylized
    face (`stylize`) of the same codes, both with the same noise maps (None: the generator's stored ones). A
    per-pair strength is a stylize call per distinct value (stylize takes one strength)."""
    codes = edit(bg.face_codes_from_z(z, truncation, mean_latent if truncation < 1 else None))
    plain = bg.reconstruct(codes, noise)
    strengths = controls.pop("strength", None)
    if not isinstance(strengths, (list, tuple)):
        return plain, bg.stylize(codes, z_embed, awi, noise=noise, **controls)
    styled = [None] * len(strengths)
    for value in dict.fromkeys(strengths):
        rows = [k for k, s in enumerate(strengths) if s == value]
        sel = torch.tensor(rows)
        maps = None if noise is None else [m[sel] for m in noise]
        out = bg.stylize(codes[sel], z_embed[sel], awi, strength=value, noise=maps, **controls)
        for k, image in zip(rows, out):
            styled[k] = image
    return plain, torch.stack(styled)
