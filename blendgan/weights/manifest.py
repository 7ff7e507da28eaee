"""`manifest.json` beside downloaded weights: {file name: {sha256, size, mtime_ns, kind, ...}}, and checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BlendGANError, CheckpointError
from ..io.files import write_bytes_atomic
from .home import how_to_redownload

if TYPE_CHECKING:
    from ..io.files import PathLike


MANIFEST_NAME = "manifest.json"


def read_manifest(directory: PathLike) -> dict:
    """The `manifest.json` in `directory` as {file name: {sha256, size, kind, ...}} ({} when absent)."""
    f = Path(directory) / MANIFEST_NAME
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{f} is not a valid manifest ({err}); delete it or run `blendgan download` to write a new one"
        ) from None
    return data


def update_manifest(directory: PathLike, filename: str, entry: dict | None) -> None:
    """Set (or with entry=None remove) the manifest entry of `filename`; written atomically."""
    directory = Path(directory)
    data = read_manifest(directory)
    if entry is None:
        data.pop(filename, None)
    else:
        data[filename] = entry
    write_bytes_atomic(directory / MANIFEST_NAME, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def sha256_file(path: PathLike, chunk_size: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def manifest_entry(path: PathLike, **fields) -> dict:
    """A manifest entry for `path` as it is now: sha256, size, mtime_ns (when it was hashed) and `fields`."""
    st = Path(path).stat()
    return {"sha256": sha256_file(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, **fields}


_VERIFIED = set()  # (path, size, mtime_ns, sha256) already hashed by this process


def verify_manifest(path: PathLike, *, rehash: bool = False, digest: str | None = None) -> bool | None:
    """Check `path` against the manifest beside it: True if it matches, None if there is no entry.

    A size or sha256 mismatch raises CheckpointError. Hashing the 1.47 GB generator takes seconds, so a file
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
    fix = (
        f"the file changed or was damaged after it was downloaded; {how_to_redownload(path)}, "
        f"or remove its entry from {path.parent / MANIFEST_NAME} if you replaced it on purpose"
    )
    if "size" in entry and st.st_size != entry["size"]:
        raise CheckpointError(f"{path} has {st.st_size} bytes but {MANIFEST_NAME} records {entry['size']}: {fix}")
    if not rehash and entry.get("mtime_ns") == st.st_mtime_ns:
        return True
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, entry["sha256"])
    if rehash or key not in _VERIFIED:
        digest = digest or sha256_file(path)
        if digest != entry["sha256"]:
            raise CheckpointError(
                f"{path} does not match {MANIFEST_NAME} (sha256 {digest[:16]}..., recorded "
                f"{str(entry['sha256'])[:16]}...): {fix}"
            )
        _VERIFIED.add(key)
        if entry.get("mtime_ns") != st.st_mtime_ns:
            try:
                update_manifest(path.parent, path.name, {**entry, "mtime_ns": st.st_mtime_ns})
            except BlendGANError:  # a read-only folder: hash again next time
                pass
    return True
