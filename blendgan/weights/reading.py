"""The one safe door for reading weight files: sniffing, `.pt` via weights_only, `.safetensors`.

`.pt` files are opened with ``torch.load(weights_only=True, mmap=True, map_location="cpu")`` (only tensors,
plain containers and the one harmless class training scripts store, ``argparse.Namespace``; anything that
would run code is refused), `.safetensors` files through `safetensors_file` (validated header, no pickle at
all). Both are memory-mapped, so nothing is read from disk before it is used. A `.safetensors` file written
by `blendgan convert` is given back in the layout of the `.pt` it came from:

  blendgan.pt       {'g_ema': generator state dict, optional 'latent_avg' [1, 512], optional 'truncation'}
  psp_encoder.pt    {'state_dict': {'encoder.<key>': ...}, 'latent_avg': [n, 512] | [1, 512] | [512]}
  style_encoder.pt  the style encoder's weights (see pretrained_models/README.md for the accepted layouts)
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import torch

from ..errors import CheckpointError
from . import safetensors_file
from .home import how_to_get, how_to_redownload, official_weight
from .hub import is_hub_name, resolve_path
from .manifest import verify_manifest

PathLike = Union[str, "os.PathLike[str]"]

# The only non-tensor class unpickled: training scripts store their flags as `opts`/`args` Namespaces.
SAFE_GLOBALS = (argparse.Namespace,)
META_PREFIX = "blendgan."  # keys of our metadata in .safetensors files


class CheckpointWarning(UserWarning):
    """A usable but imperfect checkpoint situation (e.g. a stale .safetensors sibling that was skipped)."""


def sniff_file(path: PathLike) -> str:
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


def html_page_kind(path: PathLike) -> str:
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
    return (
        f"{path} is {kind}, not a checkpoint (an HTML page was saved instead of the weights); delete it and "
        f"run {again} again{retry_later(kind)}{browser}"
    )


def retry_later(page_kind: str) -> str:
    """' tomorrow (...)' advice when Drive's daily quota is the problem, '' otherwise."""
    return " tomorrow (Drive's download quota resets daily)" if "quota" in page_kind else ""


def resolve_checkpoint_path(path: PathLike, prefer_safetensors: bool = True) -> Path:
    """The file a loader will read for `path`: its `.safetensors` sibling when that is present and valid.
    `path` may be a Hub name, hf://owner/repo/file[@revision] (fetched into the Hugging Face cache).

    A sibling is skipped (with a CheckpointWarning) when it is older than the `.pt` file, unreadable, or
    fails its manifest entry. Raises CheckpointError naming how to get the weights when nothing exists.
    """
    if path is None or str(path) == "":
        raise CheckpointError(f"no checkpoint file given; {how_to_get(None)}")
    if is_hub_name(str(path)):  # hf://owner/repo/file[@revision]: the file in the Hugging Face cache
        path = resolve_path(str(path))
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
        raise CheckpointError(
            f"{p} is a directory, not a checkpoint file; pass the file itself (e.g. {p / 'blendgan.pt'})"
        )
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found; {how_to_get(p)}")
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
        recorded = (meta.get(META_PREFIX + "source_size"), meta.get(META_PREFIX + "source_mtime_ns"))
        if None not in recorded:  # written by convert_to_safetensors: it names the .pt it came from
            if recorded != (str(st.st_size), str(st.st_mtime_ns)):
                return f"was converted from an earlier {original.name} ({refresh})"
        elif st.st_mtime > sibling.stat().st_mtime:
            return f"is older than {original.name} ({refresh})"
    return None


def read_checkpoint(path: PathLike, prefer_safetensors: bool = True) -> dict:
    """Read any checkpoint file safely and return its top-level dict (tensors memory-mapped, on the CPU).

    `.safetensors` files come back in the layout of the original `.pt` they were converted from. Raises
    CheckpointError with a one-line reason and fix for a missing, HTML, truncated, corrupt or unsafe file,
    or one that fails its manifest entry.
    """
    return open_checkpoint(path, prefer_safetensors)[1]


def open_checkpoint(path: PathLike, prefer_safetensors: bool = True) -> tuple[Path, dict]:
    """(path actually read, its dict): `read_checkpoint` that also says which file it read."""
    p = resolve_checkpoint_path(path, prefer_safetensors)
    verify_manifest(p)
    return p, read_file(p)


def read_file(p):
    """Read exactly the file `p` (no sibling substitution, no manifest check) -> its top-level dict."""
    try:
        fmt = sniff_file(p)
    except OSError as err:
        raise CheckpointError(f"{p} cannot be read ({err.strerror or err})") from None
    if fmt == "empty":
        raise CheckpointError(f"{p} is empty (0 bytes), probably an interrupted download; {how_to_redownload(p)}")
    if fmt == "html":
        raise CheckpointError(_html_message(p))
    if fmt == "safetensors" or p.suffix == ".safetensors":
        return _read_safetensors(p)
    if fmt == "unknown":
        with open(p, "rb") as f:
            head = f.read(8)
        raise CheckpointError(f"{p} is not a PyTorch checkpoint (it starts with {head!r}); {how_to_redownload(p)}")
    if fmt == "zip" and not zipfile.is_zipfile(p):  # no end-of-archive record: the file was cut short
        raise CheckpointError(f"{p} is truncated or corrupt (an incomplete download?); {how_to_redownload(p)}")
    obj = _torch_load(p, mmap=fmt == "zip")  # the legacy (pre-1.6) format cannot be memory-mapped
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{p} holds a {type(obj).__name__}, not a dict of weights; pass a BlendGAN "
            "checkpoint (blendgan.pt, psp_encoder.pt or style_encoder.pt)"
        )
    return obj


def _torch_load(p, mmap):
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)), warnings.catch_warnings():
            # a plain pickle (not torch.save's protocol 2) draws a two-line UserWarning before our verdict
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        msg = str(err)
        m = re.search(r"GLOBAL (\S+)", msg)
        if m or "Weights only load failed" in msg:
            what = f" (it references {m.group(1)})" if m else ""
            raise CheckpointError(
                f"{p} was refused: loading it would run Python code{what}, which weights never need and a "
                "malicious file would use; only tensors, plain containers and argparse.Namespace are accepted. "
                "Use the official weights (`blendgan download`) or re-save just the tensors"
            ) from None
        raise CheckpointError(
            f"{p} is corrupt ({msg.splitlines()[0] if msg else 'unpickling failed'}); {how_to_redownload(p)}"
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if isinstance(err, (EOFError, OSError)) or "zip archive" in first or "central directory" in first:
            reason = "is truncated or corrupt (an incomplete download?)"
        else:
            reason = f"could not be read as a PyTorch checkpoint ({first[:200]})"
        raise CheckpointError(f"{p} {reason}; {how_to_redownload(p)}") from None


def _read_safetensors(p):
    try:
        tensors, meta = safetensors_file.read(p)
    except safetensors_file.SafetensorsFormatError as err:
        raise CheckpointError(
            f"{p} is not a valid safetensors file ({err}); convert the .pt again with `blendgan convert` or delete it"
        ) from None
    return _unflatten(tensors, meta, p)


def _unflatten(tensors, meta, p):
    """safetensors tensors + metadata -> the original .pt layout of that kind."""
    kind = meta.get(META_PREFIX + "kind")
    if kind == "generator":
        out = {"g_ema": {k: v for k, v in tensors.items() if k != "latent_avg"}}
        if "latent_avg" in tensors:
            out["latent_avg"] = tensors["latent_avg"]
        if META_PREFIX + "truncation" in meta:
            try:
                out["truncation"] = float(meta[META_PREFIX + "truncation"])
            except ValueError:
                raise CheckpointError(
                    f"{p}: metadata truncation={meta[META_PREFIX + 'truncation']!r} is not a "
                    "number; convert the .pt again with `blendgan convert`"
                ) from None
        return out
    if kind == "psp_encoder":
        out = {"state_dict": {k: v for k, v in tensors.items() if k != "latent_avg"}}
        if "latent_avg" in tensors:
            out["latent_avg"] = tensors["latent_avg"]
        return out
    return dict(tensors)  # style encoder, or a third-party file: a flat state dict
