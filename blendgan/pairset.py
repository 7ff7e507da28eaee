"""Paired data sets (natural face, stylized face): what pair i is, where it goes, and the manifest.

Every random choice of pair i is drawn from its own CPU `torch.Generator`, seeded from
`(--seed, i, stream)` alone (`derive_seed`), so pair i is the same whatever the batch size, the
number of processes, the device or the point a run resumed from. The streams:

    face              z = randn(1, 512)                        (unless --sample_zs gives it)
    style             latent-guided style code randn(1, 512)   (per pair, or once per run: derive_seed(seed, "style"))
    style_image       index of the style image, randint(0, n)  (--style_img_path DIR)
    add_weight_index  randint(lo, hi + 1)                      (--add_weight_index lo-hi)
    strength          lo + (hi - lo) * rand(1) in float64      (--strength lo-hi)
    noise             one randn(1, 1, r, r) per layer          (--random_noise)

Outputs: loose files (`{key}.jpg` = [face | stylized] as in the original, and/or `face/{key}.jpg` +
`stylized/{key}.jpg`) or tar shards of N consecutive pairs in WebDataset naming
(`pairs-000000.tar` holding `{key}.face.jpg`, `{key}.stylized.jpg`, `{key}.json`). Every file is
written atomically. `manifest.jsonl` holds one JSON record per pair, sorted by index.
"""

import hashlib
import heapq
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UsageError
from .io import images
from .io.files import open_atomic, write_bytes_atomic

SEED_DOMAIN = "blendgan.pairs.v1"
LAYOUTS = ("pairs", "split", "both")
MANIFEST = "manifest.jsonl"
SHARD_PATTERN = "pairs-{:06d}.tar"


def derive_seed(seed, *parts):
    """64-bit seed of one random stream: the first 8 bytes (little endian) of
    BLAKE2b-64("blendgan.pairs.v1|seed|part|part..."), top bit cleared (torch seeds are < 2^63).
    E.g. `derive_seed(0, 5, "face")` seeds the face code of pair 5 of `--seed 0`."""
    text = "|".join([SEED_DOMAIN, str(int(seed)), *(str(p) for p in parts)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def generator_for(seed):
    return torch.Generator().manual_seed(seed)


def parse_add_weight_index(text):
    """'6' -> (6, 6); '4-8' -> (4, 8) (both ends included, drawn per pair)."""
    value = str(text).strip()
    match = re.fullmatch(r"(\d+)-(\d+)", value)
    try:
        lo, hi = (int(match[1]), int(match[2])) if match else (int(value), int(value))
    except ValueError:
        raise UsageError(f"--add_weight_index {text!r}: give a layer count like 6 or a range like 4-8") from None
    if lo > hi:
        raise UsageError(f"--add_weight_index {text!r}: the range must go from low to high (e.g. 4-8)")
    return lo, hi


@dataclass(frozen=True)
class PairRecipe:
    """How every pair is drawn; identical on every rank.

    style: ("image", name) one reference image for all pairs; ("folder", names) one image per pair
    drawn from the sorted, readable images of a folder; ("latent", per_pair) random style codes;
    ("mix", (names, weights)) a mix of reference images for all pairs.

    strength (low, high), layer_weights, preserve_color: the stylization controls (`blendgan.controls`); a
    strength range is drawn per pair. They are recorded only when not at their defaults, so a default run's
    manifest is the original one."""

    seed: int
    truncation: float
    add_weight_index: tuple
    style: tuple
    sample_zs: str = None
    random_noise: bool = False
    strength: tuple = (1.0, 1.0)
    layer_weights: object = None
    preserve_color: bool = False
    edit: dict = None  # {"amounts": {name: amount}, "key": digest}: recorded only for an edit that moves the codes

    def draws(self, index):
        """The manifest fields of pair `index` (everything that decides its pixels besides the weights)."""
        seed = self.seed
        rec = {"index": index, "key": pair_key(index)}
        if self.sample_zs is None:
            rec["face_seed"] = derive_seed(seed, index, "face")
        else:
            rec["face_seed"] = None
            rec["face_z"] = f"{Path(self.sample_zs).name}[{index}]"
        kind, value = self.style
        rec["style_image"] = None
        rec["style_seed"] = None
        if kind == "image":
            rec["style_image"] = value
        elif kind == "mix":
            rec["style_images"], rec["style_weights"] = list(value[0]), list(value[1])
        elif kind == "folder":
            g = generator_for(derive_seed(seed, index, "style_image"))
            rec["style_image"] = value[int(torch.randint(0, len(value), (1,), generator=g))]
        elif value:  # latent-guided, one code per pair
            rec["style_seed"] = derive_seed(seed, index, "style")
        else:  # latent-guided, one code for the whole run (the original's behaviour)
            rec["style_seed"] = derive_seed(seed, "style")
        lo, hi = self.add_weight_index
        if lo == hi:
            rec["add_weight_index"] = lo
        else:
            g = generator_for(derive_seed(seed, index, "add_weight_index"))
            rec["add_weight_index"] = int(torch.randint(lo, hi + 1, (1,), generator=g))
        lo, hi = self.strength
        if (lo, hi) != (1.0, 1.0) or self.layer_weights is not None or self.preserve_color:
            if lo == hi:
                rec["strength"] = lo
            else:
                g = generator_for(derive_seed(seed, index, "strength"))
                rec["strength"] = lo + (hi - lo) * float(torch.rand(1, generator=g, dtype=torch.float64))
            lw = self.layer_weights
            rec["layer_weights"] = lw if lw is None or isinstance(lw, str) else list(lw)
            rec["preserve_color"] = bool(self.preserve_color)
        rec["truncation"] = self.truncation
        rec["noise_seed"] = derive_seed(seed, index, "noise") if self.random_noise else None
        if self.edit is not None:
            rec["edit"] = self.edit
        return rec


def face_code(record):
    return torch.randn(1, 512, generator=generator_for(record["face_seed"]))


def style_code(record):
    return torch.randn(1, 512, generator=generator_for(record["style_seed"]))


def noise_maps(records, shapes):
    """Per-layer noise [N, 1, r, r] for the records (each pair's maps drawn in layer order)."""
    per_pair = []
    for rec in records:
        g = generator_for(rec["noise_seed"])
        per_pair.append([torch.randn(shape, generator=g) for shape in shapes])
    return [torch.cat(layer) for layer in zip(*per_pair)]


def pair_key(index):
    return f"{index:06d}"


# --------------------------------------------------------------------------- outputs


class Outputs:
    """Where pairs go. Work is cut into units: one pair (loose files) or one tar shard of N pairs."""

    def __init__(self, outdir, layout="pairs", shard_size=0, pics=0):
        if layout not in LAYOUTS:
            raise UsageError(f"--layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
        if shard_size < 0:
            raise UsageError(f"--shard_size {shard_size}: give a number of pairs per tar shard (0: no shards)")
        self.outdir = Path(outdir)
        self.layout = layout
        self.shard_size = int(shard_size)
        self.pics = int(pics)

    def units(self):
        """Lists of consecutive pair indices, each made and committed as a whole."""
        step = self.shard_size or 1
        return [list(range(s, min(s + step, self.pics))) for s in range(0, self.pics, step)]

    def names(self, index):
        """File names of pair `index`: relative to outdir, or members of its shard."""
        key = pair_key(index)
        names = []
        if self.shard_size:
            if self.layout in ("pairs", "both"):
                names.append(f"{key}.pair.jpg")
            if self.layout in ("split", "both"):
                names += [f"{key}.face.jpg", f"{key}.stylized.jpg"]
            return names + [f"{key}.json"]
        if self.layout in ("pairs", "both"):
            names.append(f"{key}.jpg")
        if self.layout in ("split", "both"):
            names += [f"face/{key}.jpg", f"stylized/{key}.jpg"]
        return names

    def shard_name(self, index):
        return SHARD_PATTERN.format(index // self.shard_size) if self.shard_size else None

    def locate(self, record):
        """Add the file names (and shard) of a record, in place; returns it."""
        if self.shard_size:
            record["shard"] = self.shard_name(record["index"])
        record["files"] = self.names(record["index"])
        return record

    def unit_done(self, unit):
        if self.shard_size:
            return (self.outdir / self.shard_name(unit[0])).exists()
        return all((self.outdir / n).exists() for n in self.names(unit[0]))

    def prepare(self):
        if not self.shard_size and self.layout in ("split", "both"):
            for sub in ("face", "stylized"):
                (self.outdir / sub).mkdir(parents=True, exist_ok=True)

    def open_unit(self, unit):
        return ShardWriter(self, unit) if self.shard_size else LooseWriter(self)


class LooseWriter:
    """Each image its own file, written atomically as soon as it is made."""

    def __init__(self, outputs):
        self.outputs = outputs

    def add(self, record, face, styled):
        out = self.outputs
        for name in out.names(record["index"]):
            if name.startswith("face/"):
                img = face
            elif name.startswith("stylized/"):
                img = styled
            else:
                img = images.hconcat([face, styled])
            images.write_image_atomic(out.outdir / name, img)

    def commit(self):
        pass

    def abort(self):
        pass


class ShardWriter:
    """One tar shard streamed into a hidden temporary file, renamed into place when complete.

    Members carry fixed metadata (mtime 0, uid/gid 0, mode 0644) so that a shard is byte-identical
    whichever process or run made it."""

    def __init__(self, outputs, unit):
        self.target = outputs.outdir / outputs.shard_name(unit[0])
        self.outputs = outputs
        self._ctx = open_atomic(self.target)
        self._file = self._ctx.__enter__()
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)

    def _member(self, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def add(self, record, face, styled):
        for name in self.outputs.names(record["index"]):
            if name.endswith(".json"):
                self._member(name, (json.dumps(record, separators=(",", ":")) + "\n").encode())
                continue
            img = {"face.jpg": face, "stylized.jpg": styled}.get(name.split(".", 1)[1])
            if img is None:
                img = images.hconcat([face, styled])
            self._member(name, images.encode_image(name, img))

    def commit(self):
        self._tar.close()
        try:
            self._ctx.__exit__(None, None, None)
        except OSError as err:
            raise UsageError(f"{self.target}: cannot write the shard ({err.strerror or err})") from None

    def abort(self):
        self._tar.close()
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass


# --------------------------------------------------------------------------- manifest


def record_line(record):
    return json.dumps(record, separators=(",", ":")) + "\n"


def part_path(outdir, rank, world_size):
    return Path(outdir) / f".manifest.part-{rank:05d}-of-{world_size:05d}.jsonl"


def write_part(outdir, rank, world_size, lines):
    """This rank's records (already sorted by index), atomically."""
    path = part_path(outdir, rank, world_size)
    try:
        with open_atomic(path) as f:
            for line in lines:
                f.write(line.encode())
    except OSError as err:
        raise UsageError(f"{path}: cannot write the manifest part ({err.strerror or err})") from None


def merge_parts(outdir, world_size):
    """manifest.jsonl = all ranks' parts merged by index (streamed), written atomically; parts removed."""
    parts = [part_path(outdir, r, world_size) for r in range(world_size)]
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise UsageError(f"{missing[0]}: a manifest part is missing; rerun with --skip_existing")
    files = [open(p, encoding="utf-8") for p in parts]
    try:
        keyed = [((json.loads(line)["index"], line) for line in f) for f in files]
        target = Path(outdir) / MANIFEST
        with open_atomic(target) as out:
            for _, line in heapq.merge(*keyed):
                out.write(line.encode())
    finally:
        for f in files:
            f.close()
    for p in parts:
        p.unlink()
    for stale in Path(outdir).glob(".manifest.part-*.jsonl"):  # left by an interrupted run with other ranks
        stale.unlink(missing_ok=True)


def check_earlier_manifest(outdir, expected):
    """With --skip_existing: refuse to mix pairs drawn with other settings into the same folder.

    `expected` maps index -> record this run would write (this rank's share)."""
    path = Path(outdir) / MANIFEST
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                old = json.loads(line)
            except ValueError:
                raise UsageError(f"{path}: not a manifest (unreadable line); move it away to resume") from None
            new = expected.get(old.get("index"))
            if new is not None and old != new:
                raise UsageError(
                    f"{path}: pair {old.get('index')} was made with other settings (seed, style, "
                    "add_weight_index, truncation, layout); resume with the same flags or use a "
                    "new --outdir"
                )


def write_manifest_single(outdir, lines):
    """One process: manifest.jsonl straight from the records."""
    write_bytes_atomic(Path(outdir) / MANIFEST, "".join(lines).encode())
