"""Checkpoint files: the one safe door for reading weights, the model loaders, conversion and description.

Every file goes through `read_checkpoint`: `.pt` files are opened with
``torch.load(weights_only=True, mmap=True, map_location="cpu")`` (only tensors, plain containers and the
one harmless class training scripts store, ``argparse.Namespace``; anything that would run code is refused),
`.safetensors` files through `safetensors_file` (validated header, no pickle at all). Both are
memory-mapped and the loaders build the models on the meta device and adopt the file's tensors, so a
1.4 GB generator is never held twice and nothing is read from disk before it is used.

On-disk layouts (spec section 5, conformance/keys/checkpoint_formats.json):
  blendgan.pt       {'g_ema': generator state dict, optional 'latent_avg' [1, 512], optional 'truncation'}
  psp_encoder.pt    {'state_dict': {'encoder.<key>': ...}, 'latent_avg': [n, 512] | [1, 512] | [512]}
  style_encoder.pt  the style encoder's weights (see pretrained_models/README.md for the accepted layouts)
A `.safetensors` file written by `convert_to_safetensors` holds the same tensors flat (generator keys plus
`latent_avg`; `encoder.*` plus `latent_avg`; style encoder keys) and the rest in its metadata; it is read
back into the layouts above, so every loader accepts both formats.
"""
import argparse
import hashlib
import json
import math
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from . import safetensors_file
from .errors import BlendGANError, CheckpointError
from .files import write_bytes_atomic


@dataclass(frozen=True)
class WeightFile:
    """One of the published weight files."""

    name: str       # short name used by `blendgan download --only`
    filename: str
    drive_id: str
    kind: str       # generator | psp_encoder | style_encoder

    @property
    def drive_link(self):
        return f"https://drive.google.com/file/d/{self.drive_id}"


OFFICIAL_WEIGHTS = {w.name: w for w in (
    WeightFile("blendgan", "blendgan.pt", "1eF04jKMLAb9DvzI72m8Akn5ykWf3EafE", "generator"),
    WeightFile("psp_encoder", "psp_encoder.pt", "14nevG94hNkkwaoK5eJLF1iv78cv5O8fN", "psp_encoder"),
    WeightFile("style_encoder", "style_encoder.pt", "1EaM0ZYsAMdPkbRz0smLNIlJ1rxVAhbEz", "style_encoder"),
)}
KINDS = ("generator", "psp_encoder", "style_encoder")
MANIFEST_NAME = "manifest.json"
# The only non-tensor class unpickled: training scripts store their flags as `opts`/`args` Namespaces.
SAFE_GLOBALS = (argparse.Namespace,)
_META_PREFIX = "blendgan."  # safetensors metadata keys


class CheckpointWarning(UserWarning):
    """A usable but imperfect checkpoint situation (e.g. a stale .safetensors sibling that was skipped)."""


# --------------------------------------------------------------------------- paths and messages
def official_weight(path):
    """The `WeightFile` whose file name (or stem) matches `path`, or None."""
    p = Path(path)
    for w in OFFICIAL_WEIGHTS.values():
        if p.name == w.filename or p.stem == Path(w.filename).stem:
            return w
    return None


def _how_to_get(path):
    from .download import weights_dir  # late import: download imports this module

    w = official_weight(path) if path else None
    if w is not None:
        return (f"run `blendgan download --only {w.name}` (saves it in {weights_dir().resolve()}) "
                f"or download {w.filename} from {w.drive_link}")
    links = ", ".join(f"{w.filename} {w.drive_link}" for w in OFFICIAL_WEIGHTS.values())
    return (f"run `blendgan download` (saves the weights in {weights_dir().resolve()}) or download them from "
            f"Google Drive: {links}")


def _redownload(path):
    w = official_weight(path)
    if w is not None:
        return f"delete it and run `blendgan download --force --only {w.name}` (or get it from {w.drive_link})"
    return "download or save it again"


def _few(names, n=3):
    names = list(names)
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


# --------------------------------------------------------------------------- manifest (sha256 of downloads)
def read_manifest(directory):
    """The `manifest.json` in `directory` as {file name: {sha256, size, kind, ...}} ({} when absent)."""
    f = Path(directory) / MANIFEST_NAME
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{f} is not a valid manifest ({err}); delete it or run `blendgan download` "
                              "to write a new one") from None
    return data


def update_manifest(directory, filename, entry):
    """Set (or with entry=None remove) the manifest entry of `filename`; written atomically."""
    directory = Path(directory)
    data = read_manifest(directory)
    if entry is None:
        data.pop(filename, None)
    else:
        data[filename] = entry
    write_bytes_atomic(directory / MANIFEST_NAME, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def sha256_file(path, chunk_size=1 << 22):
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def manifest_entry(path, **fields):
    """A manifest entry for `path` as it is now: sha256, size, mtime_ns (when it was hashed) and `fields`."""
    st = Path(path).stat()
    return {"sha256": sha256_file(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, **fields}


_VERIFIED = set()  # (path, size, mtime_ns, sha256) already hashed by this process


def verify_manifest(path, *, rehash=False, digest=None):
    """Check `path` against the manifest beside it: True if it matches, None if there is no entry.

    A size or sha256 mismatch raises CheckpointError. Hashing the 1.47 GB generator takes ~3 s, so a file
    whose size and modification time still equal those recorded when it was last hashed is not hashed
    again (the stat check `make` and `git` use; `rehash=True`, as in `blendgan info`, always hashes; a
    caller that has just hashed the file passes `digest`). After a successful hash the new time is recorded
    when the folder is writable.
    """
    path = Path(path)
    entry = read_manifest(path.parent).get(path.name)
    if not isinstance(entry, dict) or "sha256" not in entry:
        return None
    st = path.stat()
    fix = (f"the file changed or was damaged after it was downloaded; {_redownload(path)}, "
           f"or remove its entry from {path.parent / MANIFEST_NAME} if you replaced it on purpose")
    if "size" in entry and st.st_size != entry["size"]:
        raise CheckpointError(f"{path} has {st.st_size} bytes but {MANIFEST_NAME} records {entry['size']}: {fix}")
    if not rehash and entry.get("mtime_ns") == st.st_mtime_ns:
        return True
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, entry["sha256"])
    if rehash or key not in _VERIFIED:
        digest = digest or sha256_file(path)
        if digest != entry["sha256"]:
            raise CheckpointError(f"{path} does not match {MANIFEST_NAME} (sha256 {digest[:16]}..., recorded "
                                  f"{str(entry['sha256'])[:16]}...): {fix}")
        _VERIFIED.add(key)
        if entry.get("mtime_ns") != st.st_mtime_ns:
            try:
                update_manifest(path.parent, path.name, {**entry, "mtime_ns": st.st_mtime_ns})
            except BlendGANError:  # a read-only folder: hash again next time
                pass
    return True


# --------------------------------------------------------------------------- reading files
def sniff_file(path):
    """What the first bytes of a file say it is: zip | pickle | safetensors | html | empty | unknown.

    zip = torch.save's default format, pickle = its legacy format, html = a web page saved as a file
    (Google Drive's quota / virus-scan pages).
    """
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 27:
        return "safetensors"  # u64 header length, then the JSON header
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text[:1024]:
        return "html"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def html_page_kind(path):
    """What an HTML file saved in place of weights is, e.g. "Google Drive's 'download quota exceeded' page"."""
    with open(path, "rb") as f:
        text = f.read(1 << 18).decode("utf-8", "replace").lower()
    if "quota" in text or "too many users" in text:
        return "Google Drive's 'download quota exceeded' page"
    if "virus" in text:
        return "Google Drive's 'cannot scan this file for viruses' confirmation page"
    return "a web page"


def _html_message(path):
    w = official_weight(path)
    browser = f", or download {w.filename} in a browser from {w.drive_link}" if w else ""
    again = f"`blendgan download --force --only {w.name}`" if w else "the download"
    kind = html_page_kind(path)
    return (f"{path} is {kind}, not a checkpoint (an HTML page was saved instead of the weights); delete it and "
            f"run {again} again{retry_later(kind)}{browser}")


def retry_later(page_kind):
    """' tomorrow (...)' advice when Drive's daily quota is the problem, '' otherwise."""
    return " tomorrow (Drive's download quota resets daily)" if "quota" in page_kind else ""


def resolve_checkpoint_path(path, prefer_safetensors=True):
    """The file a loader will read for `path`: its `.safetensors` sibling when that is present and valid.

    A sibling is skipped (with a CheckpointWarning) when it is older than the `.pt` file, unreadable, or
    fails its manifest entry. Raises CheckpointError naming how to get the weights when nothing exists.
    """
    if path is None or str(path) == "":
        raise CheckpointError(f"no checkpoint file given; {_how_to_get(None)}")
    p = Path(path).expanduser()
    if prefer_safetensors and p.suffix != ".safetensors":
        sibling = p.with_suffix(".safetensors")
        if sibling.is_file():
            problem = _sibling_problem(sibling, p)
            if problem is None:
                return sibling
            if not p.is_file():
                raise CheckpointError(f"{sibling} {problem}, and {p} does not exist")
            warnings.warn(f"ignoring {sibling}: it {problem}; reading {p}", CheckpointWarning, stacklevel=3)
    if p.is_dir():
        raise CheckpointError(f"{p} is a directory, not a checkpoint file; pass the file itself "
                              f"(e.g. {p / 'blendgan.pt'})")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found; {_how_to_get(p)}")
    return p


def _sibling_problem(sibling, original):
    """Why a .safetensors sibling must not stand in for `original` (None when it may)."""
    try:
        meta = safetensors_file.metadata(sibling)
        verify_manifest(sibling)
    except CheckpointError as err:
        return f"failed its check ({err})"
    except (safetensors_file.SafetensorsFormatError, OSError) as err:
        return f"is not a readable safetensors file ({err})"
    if original.is_file():
        st = original.stat()
        refresh = f"run `blendgan convert {original}` to refresh it"
        recorded = (meta.get(_META_PREFIX + "source_size"), meta.get(_META_PREFIX + "source_mtime_ns"))
        if None not in recorded:  # written by convert_to_safetensors: it names the .pt it came from
            if recorded != (str(st.st_size), str(st.st_mtime_ns)):
                return f"was converted from an earlier {original.name} ({refresh})"
        elif st.st_mtime > sibling.stat().st_mtime:
            return f"is older than {original.name} ({refresh})"
    return None


def read_checkpoint(path, prefer_safetensors=True):
    """Read any checkpoint file safely and return its top-level dict (tensors memory-mapped, on the CPU).

    `.safetensors` files come back in the layout of the original `.pt` they were converted from. Raises
    CheckpointError with a one-line reason and fix for a missing, HTML, truncated, corrupt or unsafe file,
    or one that fails its manifest entry.
    """
    return _open(path, prefer_safetensors)[1]


def _open(path, prefer_safetensors=True):
    p = resolve_checkpoint_path(path, prefer_safetensors)
    verify_manifest(p)
    return p, _read_file(p)


def _read_file(p):
    try:
        fmt = sniff_file(p)
    except OSError as err:
        raise CheckpointError(f"{p} cannot be read ({err.strerror or err})") from None
    if fmt == "empty":
        raise CheckpointError(f"{p} is empty (0 bytes), probably an interrupted download; {_redownload(p)}")
    if fmt == "html":
        raise CheckpointError(_html_message(p))
    if fmt == "safetensors" or p.suffix == ".safetensors":
        return _read_safetensors(p)
    if fmt == "unknown":
        with open(p, "rb") as f:
            head = f.read(8)
        raise CheckpointError(f"{p} is not a PyTorch checkpoint (it starts with {head!r}); {_redownload(p)}")
    if fmt == "zip" and not zipfile.is_zipfile(p):  # no end-of-archive record: the file was cut short
        raise CheckpointError(f"{p} is truncated or corrupt (an incomplete download?); {_redownload(p)}")
    obj = _torch_load(p, mmap=fmt == "zip")  # the legacy (pre-1.6) format cannot be memory-mapped
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{p} holds a {type(obj).__name__}, not a dict of weights; pass a BlendGAN "
                              "checkpoint (blendgan.pt, psp_encoder.pt or style_encoder.pt)")
    return obj


def _torch_load(p, mmap):
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        msg = str(err)
        m = re.search(r"GLOBAL (\S+)", msg)
        if m or "Weights only load failed" in msg:
            what = f" (it references {m.group(1)})" if m else ""
            raise CheckpointError(
                f"{p} was refused: loading it would run Python code{what}, which weights never need and a "
                "malicious file would use; only tensors, plain containers and argparse.Namespace are accepted. "
                "Use the official weights (`blendgan download`) or re-save just the tensors") from None
        raise CheckpointError(f"{p} is corrupt ({msg.splitlines()[0] if msg else 'unpickling failed'}); "
                              f"{_redownload(p)}") from None
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if isinstance(err, (EOFError, OSError)) or "zip archive" in first or "central directory" in first:
            reason = "is truncated or corrupt (an incomplete download?)"
        else:
            reason = f"could not be read as a PyTorch checkpoint ({first[:200]})"
        raise CheckpointError(f"{p} {reason}; {_redownload(p)}") from None


def _read_safetensors(p):
    try:
        tensors, meta = safetensors_file.read(p)
    except safetensors_file.SafetensorsFormatError as err:
        raise CheckpointError(f"{p} is not a valid safetensors file ({err}); convert the .pt again "
                              "with `blendgan convert` or delete it") from None
    return _unflatten(tensors, meta, p)


def _unflatten(tensors, meta, p):
    """safetensors tensors + metadata -> the original .pt layout of that kind."""
    kind = meta.get(_META_PREFIX + "kind")
    if kind == "generator":
        out = {"g_ema": {k: v for k, v in tensors.items() if k != "latent_avg"}}
        if "latent_avg" in tensors:
            out["latent_avg"] = tensors["latent_avg"]
        if _META_PREFIX + "truncation" in meta:
            try:
                out["truncation"] = float(meta[_META_PREFIX + "truncation"])
            except ValueError:
                raise CheckpointError(f"{p}: metadata truncation={meta[_META_PREFIX + 'truncation']!r} is not a "
                                      "number; convert the .pt again with `blendgan convert`") from None
        return out
    if kind == "psp_encoder":
        out = {"state_dict": {k: v for k, v in tensors.items() if k != "latent_avg"}}
        if "latent_avg" in tensors:
            out["latent_avg"] = tensors["latent_avg"]
        return out
    return dict(tensors)  # style encoder, or a third-party file: a flat state dict


# --------------------------------------------------------------------------- what a checkpoint holds
def guess_kind(ckpt):
    """'generator', 'psp_encoder', 'style_encoder' or 'unknown', judging by the keys of a checkpoint dict."""
    if not isinstance(ckpt, Mapping):
        return "unknown"
    if isinstance(ckpt.get("g_ema"), Mapping):
        return "generator"
    sd = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), Mapping) else ckpt
    keys = [k for k in sd if isinstance(k, str)]
    if any(k.startswith(("encoder.input_layer.", "encoder.body.", "input_layer.", "body.0.")) for k in keys):
        return "psp_encoder"
    if any(k == "add_weight" or k.startswith(("style.1.", "to_rgb1.", "conv1.conv.")) for k in keys):
        return "generator"
    if any(k.startswith(("embedder_mlp.", "embedder.embedder_mlp.")) for k in keys) or \
            isinstance(ckpt.get("embedder"), Mapping):
        return "style_encoder"
    return "unknown"


_KIND_HINTS = {
    "generator": "this looks like a BlendGAN generator checkpoint (blendgan.pt); pass it as --ckpt",
    "psp_encoder": "this looks like a pSp encoder checkpoint (psp_encoder.pt); pass it as --psp_encoder_ckpt",
    "style_encoder": "this looks like a standalone style encoder checkpoint (style_encoder.pt); pass it as "
                     "--style_encoder_ckpt",
}


def _kind_hint(ckpt, wanted):
    kind = guess_kind(ckpt)
    if kind == "generator" and wanted == "generator":
        sd = ckpt.get("g_ema") if isinstance(ckpt.get("g_ema"), Mapping) else ckpt
        if "add_weight" not in sd and not any(str(k).startswith("embedder.") for k in sd):
            return "; this looks like a plain StyleGAN2 generator without BlendGAN's style branch " \
                   "(no add_weight / embedding / embedder weights)"
    if kind in (wanted, "unknown"):
        return ""
    return "; " + _KIND_HINTS[kind]


def _check_state_dict(expected, got, source, what, hint=""):
    """Raise one CheckpointError line when `got` does not have exactly the keys and shapes of `expected`."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        parts = [f"{len(missing)} missing ({_few(missing)})"] if missing else []
        parts += [f"{len(unexpected)} unexpected ({_few(unexpected)})"] if unexpected else []
        raise CheckpointError(f"{source} does not hold {what}: keys {' and '.join(parts)}{hint}")
    not_tensors = [k for k in expected if not isinstance(got[k], torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{source} does not hold {what}: {len(not_tensors)} entries are not tensors "
                              f"({_few(not_tensors)}){hint}")
    no_data = [k for k in expected if got[k].is_meta]
    if no_data:
        raise CheckpointError(f"{source} holds no data for {len(no_data)} tensors ({_few(no_data)}): they were "
                              f"saved from the meta device; {_redownload(source)}")
    wrong = [(k, list(got[k].shape), list(s)) for k, s in expected.items() if tuple(got[k].shape) != s]
    if wrong:
        shown = "; ".join(f"{k}: file {a}, model {b}" for k, a, b in wrong[:3])
        raise CheckpointError(f"{source} does not hold {what}: {len(wrong)} tensors have the wrong shape "
                              f"({shown}{'; ...' if len(wrong) > 3 else ''}){hint}")


@lru_cache(maxsize=None)
def _expected_shapes(kind, arg, channel_multiplier=2, max_channels=512):
    """{key: shape} of a model's state dict, from a meta-device instance (no memory allocated)."""
    from .models import Generator, PSPEncoder, StyleEncoder

    with torch.device("meta"):
        if kind == "generator":
            model = Generator(arg, channel_multiplier=channel_multiplier, max_channels=max_channels)
        elif kind == "psp_encoder":
            model = PSPEncoder(arg)
        else:
            model = StyleEncoder()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _size_from_n_latent(n):
    from .models.generator import SUPPORTED_SIZES, size_for_n_latent

    size = size_for_n_latent(n)
    return size if n % 2 == 0 and size in SUPPORTED_SIZES else None


# ---- generator
def _generator_parts(ckpt, source, size=None, channel_multiplier=2):
    """(state dict, size) of a generator checkpoint, checked against the model's keys and shapes."""
    sd = ckpt.get("g_ema")
    if not isinstance(sd, Mapping):
        if guess_kind(ckpt) != "generator":
            entries = _few([str(k) for k in ckpt], 4)
            raise CheckpointError(f"{source} has no 'g_ema' generator weights (entries: {entries})"
                                  f"{_kind_hint(ckpt, 'generator')}")
        sd = ckpt  # a bare generator state dict
    inferred = _generator_size(sd)
    if size is not None and inferred is not None and int(size) != inferred:
        raise CheckpointError(f"{source} is a {inferred} generator but --size {size} was given; "
                              f"pass --size {inferred} (or omit it)")
    size = int(size) if size is not None else inferred
    if size is None:
        raise CheckpointError(f"{source}: cannot tell the generator's output size (no add_weight or to_rgbs.* "
                              f"entries); pass --size{_kind_hint(ckpt, 'generator')}")
    hint = _kind_hint(ckpt, "generator")
    cm = _channel_multiplier(sd)
    if cm is not None and cm != channel_multiplier:
        hint += f"; its layer widths are those of channel multiplier {cm}: pass --channel_multiplier {cm}"
    max_channels = _max_channels(sd)
    what = f"a {size}x{size} BlendGAN generator (channel multiplier {channel_multiplier}" + \
        (f", at most {max_channels} channels)" if max_channels != 512 else ")")
    _check_state_dict(_expected_shapes("generator", size, channel_multiplier, max_channels), sd, source, what, hint)
    return sd, size


def _max_channels(sd):
    """The width cap of a narrow generator trained with `max_channels` (the constant input's channels);
    512 (the official networks) when absent or not narrower."""
    t = sd.get("input.input")
    if isinstance(t, torch.Tensor) and t.ndim == 4 and 0 < t.shape[1] < 512:
        return int(t.shape[1])
    return 512


def _generator_size(sd):
    aw = sd.get("add_weight")
    if isinstance(aw, torch.Tensor) and aw.ndim == 3:
        return _size_from_n_latent(aw.shape[1])  # add_weight is [1, n_latent, 1] (spec 2.2)
    levels = {m.group(1) for k in sd if isinstance(k, str) and (m := re.match(r"to_rgbs\.(\d+)\.", k))}
    return 2 ** (len(levels) + 2) if levels else None  # one ToRGB per resolution 8 ... size


def _channel_multiplier(sd):
    w = sd.get("to_rgbs.3.conv.weight")  # ToRGB of the 64x64 level: [1, 3, 256·cm, 1, 1]
    if isinstance(w, torch.Tensor) and w.ndim == 5 and w.shape[2] % 256 == 0:
        return w.shape[2] // 256
    return None


# ---- pSp encoder
def _psp_parts(ckpt, source, size=None):
    """(PSPEncoder state dict incl. latent_avg [n_styles, 512], n_styles, size), checked."""
    sd = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), Mapping) else ckpt
    # The original keeps keys whose first len('encoder') characters are 'encoder' and drops
    # len('encoder') + 1 characters (spec 4.1); other prefixes are ignored.
    n = len("encoder")
    inner = {k[n + 1:]: v for k, v in sd.items() if isinstance(k, str) and k[:n] == "encoder"}
    hint = _kind_hint(ckpt, "psp_encoder")
    if not inner:
        raise CheckpointError(f"{source} has no 'encoder.*' pSp weights (entries: {_few([str(k) for k in sd], 4)})"
                              f"{hint}")
    blocks = {int(m.group(1)) for k in inner if (m := re.match(r"styles\.(\d+)\.", k))}
    inferred = _size_from_n_latent(max(blocks) + 1) if blocks else None
    if size is not None and inferred is not None and int(size) != inferred:
        raise CheckpointError(f"{source} is a pSp encoder for {inferred}x{inferred} generators ({max(blocks) + 1} "
                              f"styles) but the size in use is {size} (--size / the generator's size); use the "
                              f"pSp encoder that matches the generator, or --size {inferred}")
    size = int(size) if size is not None else inferred
    if size is None:
        raise CheckpointError(f"{source}: cannot tell the pSp encoder's output size (no styles.* blocks){hint}")
    from .models.generator import n_latent_for_size

    n_styles = n_latent_for_size(size)
    expected = _expected_shapes("psp_encoder", n_styles)
    _check_state_dict({k[n + 1:]: s for k, s in expected.items() if k.startswith("encoder.")}, inner, source,
                      f"a pSp encoder for {size}x{size} generators ({n_styles} styles)", hint)
    out = {f"encoder.{k}": v for k, v in inner.items()}
    out["latent_avg"] = _psp_latent_avg(ckpt, n_styles, source)
    return out, n_styles, size


def _psp_latent_avg(ckpt, n_styles, source):
    la = ckpt.get("latent_avg")
    if not isinstance(la, torch.Tensor):
        raise CheckpointError(f"{source} has no 'latent_avg' tensor; the pSp codes are offsets from it, so the "
                              f"file is incomplete (expected shape [{n_styles}, 512]); {_redownload(source)}")
    shape = list(la.shape)
    if shape in ([n_styles, 512], [1, 512], [512]):
        return la.reshape(-1, 512).expand(n_styles, 512)  # broadcasts like the original's .repeat(N, 1, 1)
    raise CheckpointError(f"{source}: latent_avg has shape {shape}; expected [{n_styles}, 512], [1, 512] or [512]")


# ---- style encoder
def _style_parts(ckpt, source):
    """The StyleEncoder state dict (keys without the generator's `embedder.` prefix), checked."""
    if isinstance(ckpt.get("g_ema"), Mapping):
        sd = ckpt["g_ema"]
    elif isinstance(ckpt.get("state_dict"), Mapping):
        sd = ckpt["state_dict"]
    elif isinstance(ckpt.get("embedder"), Mapping):
        sd = ckpt["embedder"]
    else:
        sd = ckpt
    # Prefixed form (as inside the generator): embedder.embedder.* and embedder.embedder_mlp.*; the bare
    # form's own keys are embedder.feature_extractor.* and embedder_mlp.*.
    if any(isinstance(k, str) and k.startswith("embedder.embedder_mlp.") for k in sd):
        sd = {k[len("embedder."):]: v for k, v in sd.items() if isinstance(k, str) and k.startswith("embedder.")}
    hint = _kind_hint(ckpt, "style_encoder") if guess_kind(ckpt) != "generator" else ""
    _check_state_dict(_expected_shapes("style_encoder", 0), sd, source, "a BlendGAN style encoder", hint)
    return sd


def check_checkpoint(ckpt, kind, source="checkpoint", size=None):
    """Check a checkpoint dict's keys and shapes for `kind` without building a model.

    Returns {'kind', 'size' (None for a style encoder), 'n_tensors'}; raises CheckpointError otherwise.
    """
    if kind == "generator":
        sd, size = _generator_parts(ckpt, source, size)
    elif kind == "psp_encoder":
        sd, _, size = _psp_parts(ckpt, source, size)
    elif kind == "style_encoder":
        sd, size = _style_parts(ckpt, source), None
    else:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    return {"kind": kind, "size": size, "n_tensors": len(sd)}


# --------------------------------------------------------------------------- building models
def _prepared(sd, dtype):
    """Tensors ready for assignment: floating ones in `dtype` (None keeps the file's), contiguous."""
    out = {}
    for k, v in sd.items():
        if dtype is not None and v.is_floating_point() and v.dtype != dtype:
            v = v.to(dtype)
        out[k] = v if v.is_contiguous() else v.contiguous()
    return out


def _build(factory, sd, dtype):
    from .models.loading import from_state_dict

    model = from_state_dict(factory, _prepared(sd, dtype))
    return model.requires_grad_(False)


def generator_from_checkpoint(ckpt, size=None, channel_multiplier=2, *, source="checkpoint", dtype=torch.float32):
    """(Generator, info) from an already-read checkpoint dict; see `load_generator`."""
    from .models import Generator

    sd, size = _generator_parts(ckpt, source, size, channel_multiplier)
    max_channels = _max_channels(sd)
    model = _build(lambda: Generator(size, channel_multiplier=channel_multiplier, max_channels=max_channels), sd,
                   dtype)
    latent_avg = ckpt.get("latent_avg") if isinstance(ckpt.get("g_ema"), Mapping) else None
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1:] != (512,) or latent_avg.ndim > 2:
            shape = list(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
            raise CheckpointError(f"{source}: latent_avg is {shape}, expected a [1, 512] tensor; {_redownload(source)}")
        latent_avg = _prepared({"x": latent_avg.reshape(1, 512) if latent_avg.ndim == 1 else latent_avg},
                               dtype)["x"]
    truncation = _truncation(ckpt, source)
    info = {"kind": "generator", "size": size, "channel_multiplier": channel_multiplier, "max_channels": max_channels,
            "latent_avg": latent_avg, "truncation": truncation, "path": source}
    return model, info


def _truncation(ckpt, source):
    t = ckpt.get("truncation")
    if t is None:
        return None
    try:
        return float(t)  # a float, an int or a one-element tensor
    except (TypeError, ValueError, RuntimeError):
        raise CheckpointError(f"{source}: its 'truncation' entry ({type(t).__name__}) is not a number; "
                              f"{_redownload(source)}") from None


def psp_encoder_from_checkpoint(ckpt, size=None, *, source="checkpoint", dtype=torch.float32):
    """PSPEncoder from an already-read checkpoint dict; see `load_psp_encoder`."""
    from .models import PSPEncoder

    sd, n_styles, _ = _psp_parts(ckpt, source, size)
    return _build(lambda: PSPEncoder(n_styles), sd, dtype)


def style_encoder_from_checkpoint(ckpt, *, source="checkpoint", dtype=torch.float32):
    """StyleEncoder from an already-read checkpoint dict; see `load_style_encoder`."""
    from .models import StyleEncoder

    return _build(StyleEncoder, _style_parts(ckpt, source), dtype)


def load_generator(path, size=None, channel_multiplier=2, *, dtype=torch.float32):
    """Load a BlendGAN generator (`blendgan.pt` or its .safetensors) -> (Generator in eval mode, info).

    The size is read from the file (add_weight's shape); a `size` that disagrees is an error. info holds
    `size`, `channel_multiplier`, `latent_avg` ([1, 512] tensor or None), `truncation` (float or None) and
    `path` (the file actually read). Floating tensors are cast to `dtype` (None keeps the file's).
    """
    src, ckpt = _open(path)
    return generator_from_checkpoint(ckpt, size, channel_multiplier, source=src, dtype=dtype)


def load_psp_encoder(path, size=None, *, dtype=torch.float32):
    """Load the pSp face encoder (`psp_encoder.pt` or its .safetensors) -> PSPEncoder in eval mode.

    Only `encoder.*` entries of `state_dict` (or of the top-level dict) are used; latent_avg may be
    [n_styles, 512], [1, 512] or [512]. The size (number of styles) is read from the file.
    """
    src, ckpt = _open(path)
    return psp_encoder_from_checkpoint(ckpt, size, source=src, dtype=dtype)


def load_style_encoder(path, *, dtype=torch.float32):
    """Load a standalone style encoder (`style_encoder.pt`; a `blendgan.pt` works too) -> StyleEncoder.

    Accepted layouts are listed in pretrained_models/README.md.
    """
    src, ckpt = _open(path)
    return style_encoder_from_checkpoint(ckpt, source=src, dtype=dtype)


# --------------------------------------------------------------------------- conversion and description
def convert_to_safetensors(path, out=None):
    """Write the weights of a `.pt` checkpoint as `.safetensors` (default: same folder and stem) -> its path.

    Tensors are copied bit for bit; entries the loaders ignore (optimizer states, training flags, ...)
    are dropped. When the folder has a manifest, the new file gets an entry too.
    """
    src = resolve_checkpoint_path(path, prefer_safetensors=False)
    if src.suffix == ".safetensors" or sniff_file(src) == "safetensors":
        raise CheckpointError(f"{src} is already a safetensors file")
    verify_manifest(src)
    ckpt = _read_file(src)
    kind = guess_kind(ckpt)
    if kind == "unknown":
        raise CheckpointError(f"{src} is not a BlendGAN checkpoint (entries: {_few([str(k) for k in ckpt], 4)}); "
                              "nothing to convert")
    st = src.stat()
    meta = {"format": "pt", _META_PREFIX + "kind": kind, _META_PREFIX + "source": src.name,
            _META_PREFIX + "source_size": str(st.st_size), _META_PREFIX + "source_mtime_ns": str(st.st_mtime_ns)}
    if kind == "generator":
        sd, size = _generator_parts(ckpt, src)
        tensors = dict(sd)
        if isinstance(ckpt.get("g_ema"), Mapping):
            if isinstance(ckpt.get("latent_avg"), torch.Tensor):
                tensors["latent_avg"] = ckpt["latent_avg"]
            if ckpt.get("truncation") is not None:
                meta[_META_PREFIX + "truncation"] = repr(_truncation(ckpt, src))
    elif kind == "psp_encoder":
        sd, _, size = _psp_parts(ckpt, src)
        tensors = {k: v for k, v in sd.items() if k != "latent_avg"}
        tensors["latent_avg"] = ckpt["latent_avg"]  # as stored; the loader expands it
    else:
        tensors, size = dict(_style_parts(ckpt, src)), None
    if size is not None:
        meta[_META_PREFIX + "size"] = str(size)

    dest = Path(out) if out is not None else src.with_suffix(".safetensors")
    if dest.is_dir():
        dest = dest / (src.stem + ".safetensors")
    try:
        safetensors_file.write(tensors, meta, dest)
    except safetensors_file.SafetensorsFormatError as err:
        raise CheckpointError(f"{src} cannot be converted: {err}") from None
    if (dest.parent / MANIFEST_NAME).is_file():
        update_manifest(dest.parent, dest.name, manifest_entry(dest, kind=kind, converted_from=src.name))
    return dest


def describe_checkpoint(path, *, sha256=True):
    """A dict describing one file (no sibling substitution): kind, size, tensors, extras, sha256, checks.

    Keys: path, format (pt | pt-legacy | safetensors), file_bytes, kind, size, n_tensors, n_params, dtypes,
    latent_avg (shape or None), truncation, extra_entries, sha256, manifest (ok | absent | the mismatch),
    check ('ok' or why the loaders would refuse it).
    """
    p = resolve_checkpoint_path(path, prefer_safetensors=False)
    fmt = sniff_file(p)
    ckpt = _read_file(p)
    kind = guess_kind(ckpt)
    tensors = list(_iter_tensors(ckpt))
    la = ckpt.get("latent_avg")
    info = {
        "path": str(p),
        "format": {"zip": "pt", "pickle": "pt-legacy"}.get(fmt, "safetensors"),
        "file_bytes": p.stat().st_size,
        "kind": kind,
        "size": None,
        "n_tensors": len(tensors),
        "n_params": sum(t.numel() for t in tensors),
        "dtypes": sorted({str(t.dtype).replace("torch.", "") for t in tensors}),
        "latent_avg": list(la.shape) if isinstance(la, torch.Tensor) else None,
        "truncation": None,
        "extra_entries": sorted(str(k) for k in ckpt if k not in ("g_ema", "state_dict", "latent_avg", "truncation")
                                and not isinstance(ckpt[k], torch.Tensor)),
        "sha256": sha256_file(p) if sha256 else None,
    }
    try:
        info["truncation"] = _truncation(ckpt, p)
    except CheckpointError as err:
        info["truncation"] = str(err)
    try:
        info["manifest"] = "ok" if verify_manifest(p, rehash=True, digest=info["sha256"]) else "absent"
    except CheckpointError as err:
        info["manifest"] = str(err)
    if kind == "unknown":
        info["check"] = "not a BlendGAN generator, pSp encoder or style encoder checkpoint"
        return info
    try:
        info["size"] = check_checkpoint(ckpt, kind, p)["size"]
        info["check"] = "ok"
    except CheckpointError as err:
        info["check"] = str(err)
    return info


def _iter_tensors(obj, depth=0):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping) and depth < 4:
        for v in obj.values():
            yield from _iter_tensors(v, depth + 1)
    elif isinstance(obj, (list, tuple)) and depth < 4:
        for v in obj:
            yield from _iter_tensors(v, depth + 1)


def format_bytes(n):
    """'1.45 GB' style size."""
    if n < 1000:
        return f"{n} B"
    exp = min(int(math.log(n, 1000)), 4)
    return f"{n / 1000 ** exp:.2f} {' kMGT'[exp]}B"
