"""The metrics over folders of images, or over images a generator makes on the fly.

    from blendgan.metrics.evaluate import Options, evaluate_folders
    values = evaluate_folders("faces/", "results/", ["fid", "kid", "id"], Options(inception="inception-2015-12-05.pt"))

Unpaired metrics compare the two sets (fid, kid) or one set with itself (diversity); paired ones (id, style,
recon) pair a real file with the fake file of the same name (stem). Work is shared over torchrun processes
(sharing.py) with the same numbers for 1 or N processes. Unreadable images are reported and skipped.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import distributed
from ..errors import InputImageError, UsageError
from . import cache, sharing, stats

UNPAIRED = ("fid", "kid", "diversity")
PAIRED = ("id", "style", "recon")
METRICS = UNPAIRED + PAIRED
# what each metric reports (recon gives two numbers); lower is better for these, higher for the others
LOWER_IS_BETTER = {"fid", "kid", "recon_l2", "recon_perceptual"}
CONVENTION = "clean-fid: per-channel float32 PIL bicubic (antialiased) to 299, clip, no rounding"


@dataclass
class Options:
    inception: str = ""  # inception-2015-12-05.pt ('' = $BLENDGAN_HOME)
    inception_sha256: str = ""  # '' = the published file's
    arcface: str = ""  # model_ir_se50.pth ('' = dlib's model)
    style_encoder: str = ""  # blendgan.pt / style_encoder.pt for style codes
    vgg: str = ""  # blendgan.pt / style_encoder.pt / vgg19 file for perceptual distances
    device: str = "cpu"
    batch: int = 16
    cache_dir: str = ""  # '' = cache.default_cache_dir(); 'off' = no cache
    real_size: int = 0  # resize real images to this square size first (training data's way)
    kid_subsets: int = stats.KID_SUBSETS
    kid_subset_size: int = stats.KID_SUBSET_SIZE
    diversity_pairs: int = 1000
    seed: int = 0
    log: object = None  # where skip notes go (stderr)
    notes: list = field(default_factory=list)
    networks: object = None  # the loaded networks, kept for the next call with these options


def parse_metrics(text):
    """'fid,kid,id' -> ['fid', 'kid', 'id'] (checked)."""
    names = [m.strip().lower() for m in str(text).split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if not names or bad:
        raise UsageError(
            f"--metrics {text!r}: unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(METRICS)}"
        )
    return list(dict.fromkeys(names))


def list_folder(path, flag):
    """Image files of a folder (non-images ignored); UsageError for a missing or empty folder."""
    from ..io.images import list_images

    if not path:
        raise UsageError(f"{flag} DIR is required for these metrics")
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"{flag} {p}: no such folder; pass a folder of images")
    files, _ = list_images(p)
    if not files:
        raise UsageError(f"{flag} {p}: no images found (jpg, png, bmp, webp, tif)")
    return files


def read_rgb(path, size=0):
    """uint8 RGB pixels of an image file (InputImageError names an unreadable one); squared to `size` if set."""
    from ..io.images import read_image_bgr, resize_square

    img = read_image_bgr(path)
    if size:
        img = resize_square(img, size)
    return np.ascontiguousarray(img[:, :, ::-1])


def pair_by_name(real_files, fake_files):
    """[(real, fake)] of the files whose names (without extension) match, in the fake folder's order."""
    by_stem = {}
    for f in real_files:
        by_stem.setdefault(f.stem, f)
    pairs = [(by_stem[f.stem], f) for f in fake_files if f.stem in by_stem]
    if not pairs:
        raise UsageError(
            f"no file of --fake ({fake_files[0].parent}) has a namesake in --real "
            f"({real_files[0].parent}); paired metrics (id, style, recon) pair files by name"
        )
    return pairs


def _ok(rows):
    return rows[~np.isnan(rows).any(axis=1)]


def _need(rows, n, what):
    if len(rows) < n:
        raise UsageError(f"{what}: only {len(rows)} usable images, at least {n} are needed")
    return rows


class _Networks:
    """The networks the chosen metrics need, loaded once, on first use."""

    def __init__(self, opts):
        self.opts, self._cache = opts, {}

    def get(self, name):
        if name not in self._cache:
            o = self.opts
            if name == "inception":
                from .inception import InceptionFeatures

                net = InceptionFeatures.load(o.inception or None, o.device, o.inception_sha256 or None)
            elif name == "identity":
                from .identity import ArcFaceEmbedder, DlibFaceEmbedder

                net = ArcFaceEmbedder(o.arcface, o.device) if o.arcface else DlibFaceEmbedder()
            elif name == "style":
                from .style import StyleCodes

                net = StyleCodes(_weights(o.style_encoder, "--style_encoder", "style codes"), o.device)
            else:
                from .perceptual import PerceptualDistance

                net = PerceptualDistance(_weights(o.vgg, "--vgg", "perceptual distances"), o.device)
            self._cache[name] = net
        return self._cache[name]


def _networks(opts):
    if opts.networks is None:
        opts.networks = _Networks(opts)
    return opts.networks


def _weights(path, flag, what):
    from ..weights.home import default_weight_path

    p = Path(path).expanduser() if path else default_weight_path("blendgan")
    if not p.is_file():
        raise UsageError(
            f"{flag} {p}: file not found; {what} use the VGG19/style encoder inside a blendgan.pt or "
            f"style_encoder.pt: pass {flag} FILE (or --ckpt), or run `blendgan download`"
        )
    return str(p)


def real_inception_features(files, nets, opts, ctx):
    """Inception features of a reference folder's files, from the content-keyed cache when possible."""
    net = nets.get("inception")
    use_cache = opts.cache_dir != "off"
    cache_dir = opts.cache_dir or cache.default_cache_dir()
    key = cache.content_key(files, net.digest, {"convention": CONVENTION, "real_size": opts.real_size})
    hit = cache.load(cache_dir, key) if use_cache else None
    # every process must take the same branch (the computation is collective): use the cache only if all have it
    if ctx.all_reduce_max(int(hit is None)) == 0:
        features, skipped = hit
        if ctx.is_main:
            for s in skipped:
                print(f"skipped (cached): {s}", file=opts.log or sys.stderr)
        opts.notes.append(f"reference features read from the cache ({len(files)} files)")
        return features
    features = sharing.map_rows(lambda f: read_rgb(f, opts.real_size), net, files, ctx, opts.batch, "real", opts.log)
    if use_cache and ctx.is_main:
        skipped = [f"{f}: unreadable" for f, r in zip(files, features) if np.isnan(r).any()]
        try:
            cache.save(cache_dir, key, features, skipped)
        except OSError as err:
            print(
                f"note: cannot write the feature cache in {cache_dir} ({err.strerror or err})",
                file=opts.log or sys.stderr,
            )
    return features


def fid_kid(real, fake, metrics, opts):
    out = {}
    real, fake = _need(_ok(real), 2, "real images"), _need(_ok(fake), 2, "fake images")
    if "fid" in metrics:
        out["fid"] = stats.fid(stats.Moments.of(real), stats.Moments.of(fake))
    if "kid" in metrics:
        out["kid"] = stats.kid(real, fake, opts.kid_subsets, opts.kid_subset_size, opts.seed)
    return out


def diversity_pairs(n, opts):
    """Disjoint pairs of a seeded shuffle of range(n), at most opts.diversity_pairs."""
    perm = np.random.default_rng(opts.seed).permutation(n)
    k = min(n // 2, opts.diversity_pairs)
    return [(int(perm[2 * i]), int(perm[2 * i + 1])) for i in range(k)]


def evaluate_folders(real_dir, fake_dir, metrics, opts=None, ctx=None):
    """{metric name: value} for folders of real and fake images."""
    opts = opts or Options()
    ctx = ctx or distributed.Context()
    metrics = parse_metrics(",".join(metrics))
    fake_files = list_folder(fake_dir, "--fake")
    needs_real = [m for m in metrics if m != "diversity"]
    real_files = list_folder(real_dir, "--real") if needs_real else []
    nets = _networks(opts)
    out = {}
    if {"fid", "kid"} & set(metrics):
        real = real_inception_features(real_files, nets, opts, ctx)
        fake = sharing.map_rows(read_rgb, nets.get("inception"), fake_files, ctx, opts.batch, "fake", opts.log)
        out.update(fid_kid(real, fake, metrics, opts))
    if "diversity" in metrics:
        pairs = [(fake_files[a], fake_files[b]) for a, b in diversity_pairs(len(fake_files), opts)]
        out["diversity"] = _paired_distance(pairs, nets, opts, ctx, column=1, what="diversity")
    paired = [m for m in metrics if m in PAIRED]
    if paired:
        pairs = pair_by_name(real_files, fake_files)
        opts.notes.append(f"{len(pairs)} pairs by name ({len(fake_files) - len(pairs)} fake files without one)")
        if "id" in paired:
            out["id"] = _cosine(pairs, nets.get("identity"), opts, ctx, "id")
            undetected = ctx.all_reduce_sum([getattr(nets.get("identity"), "undetected", 0)])[0]
            if undetected:
                opts.notes.append(f"id: no face detected in {undetected} images; the aligned-face box was used")
        if "style" in paired:
            out["style"] = _cosine(pairs, nets.get("style"), opts, ctx, "style")
        if "recon" in paired:
            rows = _ok(_pair_rows(pairs, nets.get("perceptual"), opts, ctx, "recon"))
            _need(rows, 1, "recon pairs")
            out["recon_l2"], out["recon_perceptual"] = float(rows[:, 0].mean()), float(rows[:, 1].mean())
    return out


def _read_pair(p):
    return read_rgb(p[0]), read_rgb(p[1])


def _pair_rows(pairs, fn, opts, ctx, label, load=_read_pair):
    return sharing.map_rows(load, fn, pairs, ctx, opts.batch, label, opts.log)


def _cosine(pairs, embed, opts, ctx, label, load=_read_pair):
    from .identity import cosine

    def both(loaded):
        n = len(loaded)
        e = embed([a for a, _ in loaded] + [b for _, b in loaded])
        return cosine(e[:n], e[n:])[:, None]

    rows = _need(_ok(_pair_rows(pairs, both, opts, ctx, label, load)), 1, f"{label} pairs")
    return float(rows.mean())


def _paired_distance(pairs, nets, opts, ctx, column, what):
    rows = _need(_ok(_pair_rows(pairs, nets.get("perceptual"), opts, ctx, what)), 1, f"{what} pairs")
    return float(rows[:, column].mean())


# ----------------------------------------------------------------------------- panels: [face | (style |) result]
PANEL_METRICS = ("fid", "kid", "id", "style", "diversity")


def split_panel(path):
    """The squares of a panel file (a row of k >= 2 equal squares, as `blendgan transfer` writes [face | style |
    result] and `blendgan pairs` [face | stylized]); InputImageError for an image of another shape."""
    rgb = read_rgb(path)
    h, w = rgb.shape[:2]
    k = w // h
    if k < 2 or w != k * h:
        raise InputImageError(f"{path}: {w} x {h} is not a row of square panels (width = k x height, k >= 2)")
    return [rgb[:, i * h : (i + 1) * h] for i in range(k)]


def evaluate_panels(panel_dir, metrics, opts=None, ctx=None, real_dir=None):
    """{metric: value} over panel files: id between the first square (the input face) and the last (the result),
    style between the middle square of 3-square panels (the reference) and the last; fid, kid and diversity on
    the last squares (fid and kid against `real_dir`)."""
    opts = opts or Options()
    ctx = ctx or distributed.Context()
    metrics = parse_metrics(",".join(metrics))
    bad = [m for m in metrics if m not in PANEL_METRICS]
    if bad:
        raise UsageError(f"{', '.join(bad)}: not computed from panels (--panels takes {', '.join(PANEL_METRICS)})")
    files = list_folder(panel_dir, "--panels")
    nets = _networks(opts)
    out = {}

    def result(f):
        return split_panel(f)[-1]

    if {"fid", "kid"} & set(metrics):
        real = real_inception_features(list_folder(real_dir, "--real"), nets, opts, ctx)
        fake = sharing.map_rows(result, nets.get("inception"), files, ctx, opts.batch, "panels", opts.log)
        out.update(fid_kid(real, fake, metrics, opts))
    if "id" in metrics:
        out["id"] = _cosine(files, nets.get("identity"), opts, ctx, "id", lambda f: (split_panel(f)[0], result(f)))

    def style_pair(f):
        squares = split_panel(f)
        if len(squares) != 3:
            raise InputImageError(f"{f}: {len(squares)} squares; the style metric needs [face | style | result]")
        return squares[1], squares[2]

    if "style" in metrics:
        out["style"] = _cosine(files, nets.get("style"), opts, ctx, "style", style_pair)
    if "diversity" in metrics:
        pairs = [(files[a], files[b]) for a, b in diversity_pairs(len(files), opts)]
        rows = _pair_rows(pairs, nets.get("perceptual"), opts, ctx, "diversity", lambda p: (result(p[0]), result(p[1])))
        out["diversity"] = float(_need(_ok(rows), 1, "diversity pairs")[:, 1].mean())
    if "id" in metrics:
        undetected = ctx.all_reduce_sum([getattr(nets.get("identity"), "undetected", 0)])[0]
        if undetected:
            opts.notes.append(f"id: no face detected in {undetected} images; the aligned-face box was used")
    return out


# ----------------------------------------------------------------------------- images made on the fly
def sample_latent(seed, index, dim=512):
    """z of sample `index`: a function of (seed, index) only, so any sharing of the samples draws the same."""
    import torch

    return torch.randn(dim, generator=torch.Generator().manual_seed(seed * 1_000_003 + index))


def generated_rgb(generator, indices, seed, device="cpu", dtype=None):
    """uint8 RGB faces G(z_i) (stored noise maps, no truncation), quantised as saved images are."""
    import torch

    from ..io.images import tensors_to_bgr

    dtype = dtype or next(generator.parameters()).dtype
    z = torch.stack([sample_latent(seed, i, generator.style_dim) for i in indices]).to(device, dtype)
    with torch.inference_mode():
        images, _ = generator([z], randomize_noise=False)
    return [np.ascontiguousarray(b[:, :, ::-1]) for b in tensors_to_bgr(images.float().cpu())]


def evaluate_generator(generator, n, real_dir, metrics, opts=None, ctx=None, device="cpu"):
    """{metric: value} for `n` images generator makes (fid, kid against `real_dir`; diversity among them)."""
    opts = opts or Options()
    ctx = ctx or distributed.Context()
    metrics = parse_metrics(",".join(metrics))
    paired = [m for m in metrics if m in PAIRED]
    if paired:
        raise UsageError(
            f"{', '.join(paired)}: paired metrics need --real and --fake folders of named pairs, not generated images"
        )
    if n < 2:
        raise UsageError(f"--n {n}: at least 2 generated images are needed")
    nets = _networks(opts)
    out = {}
    if {"fid", "kid"} & set(metrics):
        real = real_inception_features(list_folder(real_dir, "--real"), nets, opts, ctx)
        net = nets.get("inception")
        fake = sharing.map_rows(
            lambda i: i,
            lambda idx: net(generated_rgb(generator, idx, opts.seed, device)),
            list(range(n)),
            ctx,
            opts.batch,
            "generated",
            opts.log,
        )
        out.update(fid_kid(real, fake, metrics, opts))
    if "diversity" in metrics:
        pairs = diversity_pairs(n, opts)
        dist = nets.get("perceptual")

        def rows(loaded):
            flat = [i for p in loaded for i in p]
            imgs = generated_rgb(generator, flat, opts.seed, device)
            return dist(list(zip(imgs[0::2], imgs[1::2])))

        r = _need(
            _ok(sharing.map_rows(lambda p: p, rows, pairs, ctx, opts.batch, "diversity", opts.log)),
            1,
            "diversity pairs",
        )
        out["diversity"] = float(r[:, 1].mean())
    return out
