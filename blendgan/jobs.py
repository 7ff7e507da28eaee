"""The three original programs as functions over a `BlendGAN` pipeline.

Each job takes already-resolved inputs (paths, numbers), writes its outputs atomically with the
original names and layouts, and records what happened in a report object (`written`, `skipped`,
`fail(path, reason)`, `note(msg)`); the commands in `blendgan.cli` only parse flags and call these.
"""
import random
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import images
from .errors import BlendGANError, UsageError
from .pipeline import video_alphas

VIDEO_STYLES_PER_FACE = 8
VIDEO_FPS = 30
VIDEO_HOLD_FRAMES = 10


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _progress(iterable=None, **kwargs):
    """tqdm progress bar on stderr (stdout keeps the summary line)."""
    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kwargs)


# --------------------------------------------------------------------------- generate_image_pairs

def load_sample_zs(path, pics):
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


def generate_image_pairs(bg, outdir, report, *, pics=20, truncation=0.75, truncation_mean=4096, style_img=None,
                         sample_zs=None, add_weight_index=6, seed=0, skip_existing=False):
    """`{i:06d}.jpg` = [face | stylized face] for `pics` latent codes."""
    outdir = Path(outdir)
    rng = torch.Generator().manual_seed(seed)  # CPU stream: the same numbers on every device
    if bg.truncation is not None:
        truncation = float(bg.truncation)  # the checkpoint's value wins, as in the original
    mean_latent = None
    if truncation < 1:
        mean_latent = bg.latent_avg if bg.latent_avg is not None else bg.mean_latent(truncation_mean, rng)
        mean_latent = mean_latent.reshape(1, -1).float()
    if style_img is not None:
        style = bg.embed_style_bgr(images.read_image_bgr(style_img))  # reference-guided
    else:
        style = torch.randn(1, 512, generator=rng)  # latent-guided: the random vector is the z_embed
    if sample_zs is not None:
        zs = load_sample_zs(sample_zs, pics)
    else:
        zs = torch.cat([torch.randn(1, 512, generator=rng) for _ in range(pics)])
    targets = [outdir / f"{i:06d}.jpg" for i in range(pics)]
    todo = [i for i, t in enumerate(targets) if not (skip_existing and t.exists())]
    report.skipped += pics - len(todo)
    bar = _progress(total=len(todo), desc="pairs", unit="img")
    for chunk in _chunks(todo, bg.batch_size):
        plain, styled = bg.sample_pair(zs[chunk], style, truncation=truncation, truncation_latent=mean_latent,
                                       add_weight_index=add_weight_index)
        for i, a, b in zip(chunk, images.tensors_to_bgr(plain), images.tensors_to_bgr(styled)):
            images.write_image_atomic(targets[i], images.hconcat([a, b]))
            report.written += 1
        bar.update(len(chunk))
    bar.close()


# --------------------------------------------------------------------------- style_transfer_folder

def _read_face(path, aligner):
    img = images.read_image_bgr(path)
    if aligner is not None:
        img = aligner(img, path)
    return img


def style_transfer_folder(bg, faces, styles, outdir, report, *, add_weight_index=6, skip_existing=False,
                          aligner=None):
    """`{face}_v_{style}.jpg` = [face | style | stylized] for every face x style.

    Each style is read and embedded once and each face encoded once; generation is batched over the
    styles of one face. Faces and styles are encoded at their own resolution, as in the original."""
    outdir = Path(outdir)
    size = bg.size
    style_items = []  # (stem, display copy, z_embed)
    for path in _progress(styles, desc="styles", unit="img"):
        try:
            img = images.read_image_bgr(path)
            style_items.append((Path(path).stem, images.resize_square(img, size), bg.embed_style_bgr(img)))
        except BlendGANError as err:
            report.fail(path, err)
    if not style_items:
        return
    bar = _progress(total=len(faces) * len(style_items), desc="stylize", unit="img")
    for face_path in faces:
        targets = [outdir / f"{Path(face_path).stem}_v_{stem}.jpg" for stem, _, _ in style_items]
        todo = [j for j, t in enumerate(targets) if not (skip_existing and t.exists())]
        report.skipped += len(targets) - len(todo)
        bar.update(len(targets) - len(todo))
        if not todo:
            continue
        try:
            face = _read_face(face_path, aligner)
        except BlendGANError as err:
            report.fail(face_path, err)
            bar.update(len(todo))
            continue
        codes = bg.encode_face_bgr(face)
        face_display = images.resize_square(face, size)
        for chunk in _chunks(todo, bg.batch_size):
            z = torch.cat([style_items[j][2] for j in chunk])
            out = bg.stylize(codes, z, add_weight_index=add_weight_index)
            for j, result in zip(chunk, images.tensors_to_bgr(out)):
                images.write_image_atomic(targets[j], images.hconcat([face_display, style_items[j][1], result]))
                report.written += 1
            bar.update(len(chunk))
    bar.close()


# --------------------------------------------------------------------------- gen_video

def video_frames(bg, face_bgr, style_bgrs, add_weight_index=7):
    """gen_video's frames (H x 3W x 3 uint8 RGB) for one face and its chosen styles, streamed.

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
            out = bg.interpolate(codes, zs[t], zs[t + 1], chunk, add_weight_index=add_weight_index)
            for alpha, result in zip(chunk, images.tensors_to_video_frames_rgb(out)):
                top = int(size * alpha)  # sliding window: alpha 0 shows prev, 1 shows next
                frame = np.concatenate([face_panel, stacked[top:top + size], result], axis=1)
                yield frame
    for _ in range(VIDEO_HOLD_FRAMES):
        yield frame


def frames_per_video(n_styles=VIDEO_STYLES_PER_FACE):
    return (n_styles - 1) * len(video_alphas()) + VIDEO_HOLD_FRAMES


def gen_video(bg, faces, styles, outdir, report, *, add_weight_index=7, seed=0, codec="h264", frames_dir=None,
              skip_existing=False, aligner=None):
    """`{face}.mp4`: 227 frames morphing through 8 randomly chosen styles per face."""
    from .video import FrameDumper, VideoWriter

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
        frames = video_frames(bg, face, [style_image(p) for p in choices], add_weight_index)
        with VideoWriter(target, 3 * size, size, fps=VIDEO_FPS, codec=codec) as writer:
            for frame in _progress(frames, total=n_frames, desc=Path(face_path).name, unit="frame", leave=False):
                writer.write(frame)
                if dumper is not None:
                    dumper.write(frame)
        report.written += 1
