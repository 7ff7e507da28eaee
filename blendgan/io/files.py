"""Writing files atomically: a hidden temporary file in the target's folder, renamed over the target only
once it is complete, so an interrupted run never leaves a half-written output.
Files are created with mode 0o666 minus the umask, like any normal file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator, Union

from ..errors import UsageError

PathLike = Union[str, "os.PathLike[str]"]


def temp_sibling(path: PathLike) -> Path:
    """A fresh hidden temporary name in the folder of ``path``, keeping its suffix (encoders pick
    the format from it): ``dir/.<stem>.<random>.tmp<suffix>``. Raises ``UsageError`` if the folder
    does not exist."""
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"{target}: output folder {folder} does not exist")
    return folder / f".{target.stem}.{secrets.token_hex(4)}.tmp{target.suffix}"


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path (``temp_sibling``) for the caller to write and close; on a clean exit
    it is renamed over ``path``, on an exception it is deleted and ``path`` is left untouched."""
    target = Path(path)
    tmp = temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def open_atomic(path: PathLike) -> Iterator:
    """Open a binary file object that replaces ``path`` when the block exits cleanly (after fsync);
    on an exception the partial file is deleted and ``path`` is left untouched. OS errors propagate."""
    with atomic_output(path) as tmp:
        # O_EXCL: never clobber; mode 0o666 so the umask applies as for a normal file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).
    Any OS failure raises ``UsageError`` naming the file; the target is then unchanged."""
    try:
        with open_atomic(path) as f:
            f.write(data)
    except OSError as err:
        raise UsageError(f"{path}: cannot write the file ({err.strerror or err})") from None
