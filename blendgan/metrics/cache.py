"""Cache of a data set's features, keyed by its files' paths, sizes and modification times, so a reference folder
is read once.

The key is the sha256 of: the files (resolved path, size, modification time in ns), the feature network's file
hash, and the options that change the features (resize convention, a resize applied before it). The files'
contents are not read for the key: a change that alters a file's size or modification time, the network or an
option gives another key, but a file rewritten with the same size and modification time (a copy that keeps the
old mtime, `cp -p`, `rsync -t`) reuses the old entry. Entries are .npz files written atomically (float64
features, NaN rows for skipped files, and the skip messages, reported again when an entry is used).
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..io.files import open_atomic

FORMAT = "blendgan-metric-features/1"


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/blendgan/metrics` (or ~/.cache/blendgan/metrics)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "blendgan" / "metrics"


def content_key(files, network_digest: str, options: dict) -> str:
    """sha256 naming this list of files (by name, size and mtime), this network and these options."""
    entries = []
    for f in files:
        st = Path(f).stat()
        entries.append([str(Path(f).resolve()), st.st_size, st.st_mtime_ns])
    payload = json.dumps(
        {"format": FORMAT, "files": entries, "network": network_digest, "options": options}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def entry_path(cache_dir, key: str, kind: str = "inception") -> Path:
    return Path(cache_dir) / f"{kind}-{key[:40]}.npz"


def load(cache_dir, key, kind="inception"):
    """(features, skip messages) of a cached entry, or None."""
    p = entry_path(cache_dir, key, kind)
    if not p.is_file():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT or str(z["key"]) != key:
                return None
            return z["features"], [str(s) for s in z["skipped"]]
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is recomputed and overwritten


def save(cache_dir, key, features, skipped, kind="inception") -> Path:
    p = entry_path(cache_dir, key, kind)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open_atomic(p) as f:
        np.savez(
            f, format=FORMAT, key=key, features=np.asarray(features, np.float64), skipped=np.array(skipped, dtype=str)
        )
    return p
