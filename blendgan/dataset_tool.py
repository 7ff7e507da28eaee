"""`blendgan dataset`: raw photos or artworks -> a clean, sharded training set with a report (docs/dataset.md).

Three phases, each resumable and shared over `torchrun` processes with the same output for any number of them:

1. examine   every source file (sorted, dealt round-robin over the processes): decoded with its EXIF orientation
             (`io.images.read_image_bgr`: 16-bit, grey, alpha, CMYK as the other commands read them), then
             faces:  every detected face FFHQ-aligned (`blendgan.align`), one candidate per face; faces below
                     --min_score or whose crop is smaller than --min_resolution photo pixels are rejected;
             styles: the centred largest square, resized to --size (with --align_style_faces a detected face
                     is FFHQ-aligned instead, as AAHQ was made);
             each candidate gets a 64-bit perceptual hash (pHash of the output crop). The result of a source
             is written to OUTDIR/.work/ (its PNGs and a JSON), so a killed run resumes with --skip_existing.
2. decide    (every process, from the gathered results, in source order) exact duplicate files and near
             duplicates (pHash Hamming distance <= --dup_threshold to a candidate kept before) are rejected;
             the kept candidates are numbered and cut into shards.
3. write     tar shards in WebDataset naming ({kind}-NNNNNN.tar holding {key}.png and {key}.json; the shard
             writer of `blendgan pairs`), dealt round-robin; then the main process writes manifest.jsonl (one
             record per image: source, face, score, hashes, shard), dataset.json (settings, counts, rejections
             with reasons, shards with their SHA-256) and contact_sheet.jpg (a seeded random sample).

Every output file is written atomically and does not depend on the process that made it (PNG encoding and tar
members are deterministic), so 1 and N processes, or a killed and resumed run, give byte-identical shards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .align import FaceAligner
    from .io.files import PathLike

import hashlib
import json
import math
import shutil
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from . import distributed, pairset
from .errors import BlendGANError, InputImageError, UsageError
from .io import images
from .io.files import write_bytes_atomic

KINDS = ("faces", "styles")
WORK = ".work"
DATASET_JSON = "dataset.json"
CONTACT_SHEET = "contact_sheet.jpg"
SHARD_PATTERN = "{kind}-{index:06d}.tar"
RECORDS_PER_SHARD = 1000  # default shard size when --shards is 0
SHEET_TILES, SHEET_TILE = 36, 128
# the reasons a file or a face is rejected (dataset.json counts them)
REASONS = ("unreadable", "too_small", "no_face", "low_score", "small_face", "duplicate_file", "near_duplicate")


@dataclass(frozen=True)
class DatasetOptions:
    """What decides the data set's contents (recorded in dataset.json; a resumed run must use the same)."""

    kind: str
    size: int = 1024
    shards: int = 0  # number of tar shards; 0: one per RECORDS_PER_SHARD images
    min_resolution: int = 0  # 0: size // 2 (an image is upscaled at most twice)
    min_score: float = 0.3
    dup_threshold: int = 3
    align_style_faces: bool = False
    transform_size: int = 4096  # the FFHQ alignment's intermediate warp
    seed: int = 0  # the contact sheet's sample

    @property
    def min_side(self) -> int:
        return self.min_resolution or self.size // 2

    def check(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"--kind {self.kind}: choose one of {', '.join(KINDS)}")
        if self.size & (self.size - 1) or not 8 <= self.size <= 4096:
            raise UsageError(f"--size {self.size}: must be a power of two between 8 and 4096")
        if self.shards < 0 or self.min_resolution < 0 or not 0 <= self.dup_threshold <= 64:
            raise UsageError("--shards and --min_resolution must not be negative, --dup_threshold is 0 to 64")


# ----------------------------------------------------------------------------- sources
def list_sources(sources: Sequence[PathLike]) -> list[Path]:
    """Every image file under the given files and folders (folders recursively, hidden entries skipped), each
    folder's files in sorted order of their relative path; a path given twice counts once."""
    out, seen = [], set()
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found = sorted(
                (f for f in p.rglob("*") if f.is_file() and images.is_image_file(f)),
                key=lambda f: f.relative_to(p).as_posix(),
            )
            found = [f for f in found if not any(part.startswith(".") for part in f.relative_to(p).parts)]
        elif p.is_file():
            if not images.is_image_file(p):
                raise UsageError(f"{p}: not an image file name (expected one of {', '.join(images.IMAGE_EXTENSIONS)})")
            found = [p]
        else:
            raise UsageError(f"{p}: no such file or folder; check the path")
        for f in found:
            if f not in seen:
                seen.add(f)
                out.append(f)
    if not out:
        raise UsageError(f"{', '.join(map(str, sources))}: no image files found; point SRC at photos or artworks")
    return out


# ----------------------------------------------------------------------------- phase 1: examine
def phash(img_bgr: np.ndarray) -> str:
    """64-bit perceptual hash (imagehash's pHash: DCT of a 32 px grey image) as 16 hex digits."""
    import imagehash

    return str(imagehash.phash(images.to_pil(img_bgr)))


def square_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The styles rule: the centred largest square, resized to size (area averaging when shrinking, Lanczos
    when enlarging)."""
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = img[y : y + s, x : x + s]
    if s == size:
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LANCZOS4)


def examine(path: Path, opts: DatasetOptions, aligner: FaceAligner | None) -> tuple[dict, list[bytes]]:
    """(result, PNG bytes of each candidate) for one source file; never raises for a bad input."""
    result = {"source": str(path), "sha256": None, "candidates": [], "rejected": []}

    def reject(reason, detail, face=None):
        result["rejected"].append({"source": str(path), "face": face, "reason": reason, "detail": detail})

    try:
        data = path.read_bytes()
    except OSError as err:
        reject("unreadable", f"cannot read the file ({err.strerror or err})")
        return result, []
    result["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        img = images.read_image_bgr(path)
    except InputImageError as err:
        reject("unreadable", str(err).removeprefix(f"{path}: "))
        return result, []
    h, w = img.shape[:2]
    if min(h, w) < opts.min_side:
        reject("too_small", f"{w}x{h} px, the shorter side is below {opts.min_side}")
        return result, []
    crops = []
    if opts.kind == "faces" or opts.align_style_faces:
        from .align import ffhq_quad

        faces = aligner.detect(img)
        if not faces and opts.kind == "faces":
            reject("no_face", "no face detected")
        if opts.kind == "styles":  # one face per artwork at most: the largest
            faces = [aligner.choose(faces)] if faces else []
        for k, face in enumerate(faces):
            side = ffhq_quad(face.landmarks.astype(np.float64))[1]
            if face.score < opts.min_score or side < opts.min_side:
                if opts.kind == "faces":  # (an artwork whose face is unusable keeps the square rule)
                    if face.score < opts.min_score:
                        reject("low_score", f"detector score {face.score:.3f} < {opts.min_score}", k)
                    else:
                        reject("small_face", f"face crop of {side:.0f} px < {opts.min_side}", k)
            else:
                crop, _ = aligner.align_face(img, face, opts.size, opts.transform_size)
                crops.append((k, {"box": list(face.box), "score": round(face.score, 6)}, crop))
    if opts.kind == "styles" and not crops:
        crops.append((None, {}, square_crop(img, opts.size)))
    pngs = []
    for k, extra, crop in crops:
        png = images.encode_image("x.png", crop)
        pngs.append(png)
        cand = {"face": k, **extra, "phash": phash(crop), "png_sha256": hashlib.sha256(png).hexdigest()}
        result["candidates"].append(cand)
    return result, pngs


def _work_paths(outdir: Path, i: int) -> tuple[Path, str]:
    return outdir / WORK / f"{i:07d}.json", f"{i:07d}-{{}}.png"


def examine_cached(i, path, outdir, opts, aligner, skip_existing):
    """examine() of source i, through OUTDIR/.work (PNGs first, the JSON last: a JSON means complete)."""
    json_path, png_name = _work_paths(outdir, i)
    # what the examination depends on (not the shard count, the duplicate threshold or the sheet's seed)
    examined = {k: v for k, v in asdict(opts).items() if k not in ("shards", "dup_threshold", "seed")}
    key = {"options": examined, "source": str(path)}
    if skip_existing and json_path.is_file():
        try:
            saved = json.loads(json_path.read_text())
            if saved.get("key") == key:
                return saved["result"]
        except ValueError:
            pass  # a damaged entry is made again
    result, pngs = examine(path, opts, aligner)
    for k, png in enumerate(pngs):
        write_bytes_atomic(json_path.parent / png_name.format(k), png)
    write_bytes_atomic(json_path, json.dumps({"key": key, "result": result}).encode())
    return result


# ----------------------------------------------------------------------------- phase 2: decide
def decide(results: list[dict], opts: DatasetOptions) -> tuple[list[dict], list[dict]]:
    """(kept records, rejections), in source order: exact duplicate files and near duplicates of an earlier
    kept candidate are dropped; the kept ones are numbered 0, 1, ... and given their shard."""
    kept, rejected, seen_files = [], [], {}
    hashes = np.zeros(0, dtype=np.uint64)
    for i, res in enumerate(results):
        rejected += res["rejected"]
        if res["sha256"] is not None and res["sha256"] in seen_files and res["candidates"]:
            for c in res["candidates"]:
                detail = f"same bytes as {seen_files[res['sha256']]}"
                rejected.append(
                    {"source": res["source"], "face": c["face"], "reason": "duplicate_file", "detail": detail}
                )
            continue
        if res["sha256"] is not None:
            seen_files.setdefault(res["sha256"], res["source"])
        for k, c in enumerate(res["candidates"]):
            h = np.uint64(int(c["phash"], 16))
            if hashes.size:
                dist = np.bitwise_count(hashes ^ h)
                j = int(np.argmin(dist))
                if int(dist[j]) <= opts.dup_threshold:
                    other = kept[j]
                    detail = f"pHash distance {int(dist[j])} to {other['source']}" + (
                        f" face {other['face']}" if other["face"] is not None else ""
                    )
                    rejected.append(
                        {"source": res["source"], "face": c["face"], "reason": "near_duplicate", "detail": detail}
                    )
                    continue
            hashes = np.append(hashes, h)
            kept.append({"source": res["source"], "source_sha256": res["sha256"], **c, "_work": (i, k)})
    per_shard = shard_size(len(kept), opts)
    for n, rec in enumerate(kept):
        rec["index"], rec["key"] = n, f"{n:08d}"
        rec["shard"] = SHARD_PATTERN.format(kind=opts.kind, index=n // per_shard)
    return kept, rejected


def shard_size(kept: int, opts: DatasetOptions) -> int:
    shards = opts.shards or max(1, math.ceil(kept / RECORDS_PER_SHARD))
    return max(1, math.ceil(kept / shards))


def public(rec: dict) -> dict:
    """A record as the manifest and the shard's JSON member hold it (fixed key order)."""
    keys = ("index", "key", "shard", "source", "source_sha256", "face", "box", "score", "phash", "png_sha256")
    return {k: rec[k] for k in keys if k in rec}


# ----------------------------------------------------------------------------- phase 3: write
class RecordShardWriter(pairset.ShardWriter):
    """`blendgan pairs`' shard writer (atomic, fixed member metadata) for named members."""

    def __init__(self, outdir: Path, name: str):
        class _Where:
            pass

        where = _Where()
        where.outdir, where.shard_name = Path(outdir), lambda _: name
        super().__init__(where, [0])

    def add_member(self, name: str, data: bytes) -> None:
        self._member(name, data)


def shard_holds(path: Path, records: list[dict]) -> bool:
    """True when the shard at `path` is complete and holds exactly these records (a shard left by a run with
    other inputs or settings is written again)."""
    try:
        with tarfile.open(path) as tar:
            found = [json.loads(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
    except (OSError, tarfile.TarError, ValueError, AttributeError):
        return False
    return found == [public(r) for r in records]


def write_shard(outdir: Path, name: str, records: list[dict]) -> None:
    writer = RecordShardWriter(outdir, name)
    try:
        for rec in records:
            i, k = rec["_work"]
            png = (outdir / WORK / _work_paths(outdir, i)[1].format(k)).read_bytes()
            if hashlib.sha256(png).hexdigest() != rec["png_sha256"]:
                raise UsageError(
                    f"{outdir / WORK}: an image changed since it was examined; rerun without --skip_existing"
                )
            writer.add_member(f"{rec['key']}.png", png)
            writer.add_member(f"{rec['key']}.json", (json.dumps(public(rec), separators=(",", ":")) + "\n").encode())
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def contact_sheet(outdir: Path, kept: list[dict], seed: int) -> np.ndarray | None:
    """Up to SHEET_TILES kept images, a seeded random sample in index order, SHEET_TILE px each."""
    if not kept:
        return None
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(kept), size=min(SHEET_TILES, len(kept)), replace=False).tolist())
    cols = min(6, len(pick))
    rows = math.ceil(len(pick) / cols)
    sheet = np.full((rows * SHEET_TILE, cols * SHEET_TILE, 3), 255, np.uint8)
    for n, idx in enumerate(pick):
        i, k = kept[idx]["_work"]
        png = np.frombuffer((outdir / WORK / _work_paths(outdir, i)[1].format(k)).read_bytes(), np.uint8)
        tile = cv2.resize(cv2.imdecode(png, cv2.IMREAD_COLOR), (SHEET_TILE, SHEET_TILE), interpolation=cv2.INTER_AREA)
        r, c = divmod(n, cols)
        sheet[r * SHEET_TILE : (r + 1) * SHEET_TILE, c * SHEET_TILE : (c + 1) * SHEET_TILE] = tile
    return sheet


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- the job
def make_dataset(
    sources: Sequence[PathLike],
    outdir: PathLike,
    opts: DatasetOptions,
    *,
    skip_existing: bool = False,
    ctx: distributed.Context | None = None,
    progress: bool = True,
    predictor: str | None = None,
) -> dict:
    """Build the data set in `outdir` from the image files under `sources`; returns dataset.json's content
    (the same on every process). `ctx`: this process's share under torchrun (default: one process)."""
    opts.check()
    ctx = ctx or distributed.Context()
    outdir = Path(outdir)
    files = list_sources(sources)
    earlier = outdir / DATASET_JSON
    if not skip_existing and (earlier.exists() or any(outdir.glob(f"{opts.kind}-*.tar"))):
        raise UsageError(f"{outdir} already holds a data set; resume it with --skip_existing or pass another --outdir")
    if ctx.is_main:
        try:
            (outdir / WORK).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create {outdir}: {err.strerror}; pass a writable --outdir") from None
    ctx.barrier()

    aligner = None
    if opts.kind == "faces" or opts.align_style_faces:
        from .align import FaceAligner

        aligner = FaceAligner(predictor)

    # 1. examine (round-robin over the processes)
    mine, error = {}, None
    try:
        from tqdm import tqdm

        share = range(ctx.rank, len(files), ctx.world_size)
        for i in tqdm(share, desc="examine", unit="file", disable=not (progress and ctx.is_main)):
            mine[i] = examine_cached(i, files[i], outdir, opts, aligner, skip_existing)
    except BlendGANError as err:
        error = err
    _stop_if_any_failed(ctx, error)
    results = {}
    for part in distributed.all_gather_objects(mine, ctx):
        results.update(part)
    results = [results[i] for i in range(len(files))]

    # 2. decide (the same on every process)
    kept, rejected = decide(results, opts)

    # 3. write the shards (round-robin), then the manifest, summary and contact sheet (main process)
    by_shard = {}
    for rec in kept:
        by_shard.setdefault(rec["shard"], []).append(rec)
    names = sorted(by_shard)
    error = None
    try:
        for name in names[ctx.rank :: ctx.world_size]:
            if skip_existing and shard_holds(outdir / name, by_shard[name]):
                continue
            write_shard(outdir, name, by_shard[name])
    except BlendGANError as err:
        error = err
    _stop_if_any_failed(ctx, error)
    ctx.barrier()

    counts = {reason: 0 for reason in REASONS}
    for r in rejected:
        counts[r["reason"]] += 1
    summary = {
        "kind": opts.kind,
        "size": opts.size,
        "options": asdict(opts),
        "sources": [str(s) for s in sources],
        "counts": {"files": len(files), "kept": len(kept), "rejected": sum(counts.values()), **counts},
        "shards": [{"name": n, "records": len(by_shard[n])} for n in names],
        "rejected": rejected,
    }
    if ctx.is_main:
        for entry in summary["shards"]:
            entry["sha256"] = file_sha256(outdir / entry["name"])
        pairset.write_manifest_single(outdir, [pairset.record_line(public(r)) for r in kept])
        sheet = contact_sheet(outdir, kept, opts.seed)
        if sheet is not None:
            images.write_image_atomic(outdir / CONTACT_SHEET, sheet)
        write_bytes_atomic(earlier, (json.dumps(summary, indent=1) + "\n").encode())
        # the examined images are all in the shards now
        shutil.rmtree(outdir / WORK, ignore_errors=True)
    summary = distributed.broadcast_object(summary, ctx)
    ctx.barrier()
    return summary


def _stop_if_any_failed(ctx, error):
    failed = ctx.all_reduce_sum([error is not None])[0]
    if error is not None:
        raise error
    if failed:
        raise UsageError("dataset: stopped because another process failed (its error is printed above)")


def read_summary(outdir: PathLike) -> dict:
    """dataset.json of a finished data set."""
    path = Path(outdir) / DATASET_JSON
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(
            f"{path}: cannot read the data set's summary ({err}); is this a `blendgan dataset` folder?"
        ) from None


__all__ = ["DatasetOptions", "KINDS", "REASONS", "decide", "examine", "list_sources", "make_dataset", "read_summary"]
