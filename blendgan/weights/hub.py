"""The Hugging Face Hub as a place files come from: `hf://` names and downloads through `huggingface_hub`.

    hf://owner/repo[@revision]            a repository (a source of the released weights)
    hf://owner/repo/path/file[@revision]  one file in it (wherever a command takes a file by path)

`huggingface_hub` is an optional extra (`pip install 'blendgan[hub]'`); nothing here imports it until a
`hf://` name is used. Files are fetched through its cache (resumable, shared with other libraries) and the
path inside the cache is returned. `HF_ENDPOINT`, `HF_HUB_CACHE` and `HF_HOME` are read at each call, not
when huggingface_hub was imported, so that a program that sets them later (a notebook, a test) is honoured.
Offline (`BLENDGAN_OFFLINE=1` or `HF_HUB_OFFLINE=1`) only the cache is looked at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointError, UsageError
from .home import offline_reason

if TYPE_CHECKING:
    from ..io.files import PathLike


SCHEME = "hf://"
INSTALL = "pip install 'blendgan[hub]'"


@dataclass(frozen=True)
class HubName:
    """A repository on the Hub, and optionally one file in it."""

    repo_id: str
    filename: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        tail = f"/{self.filename}" if self.filename else ""
        return f"{SCHEME}{self.repo_id}{tail}" + (f"@{self.revision}" if self.revision else "")

    @property
    def repo(self) -> HubName:
        return HubName(self.repo_id, None, self.revision)


def is_hub_name(value: object) -> bool:
    """True for a string that starts with hf://."""
    return isinstance(value, str) and value.startswith(SCHEME)


def parse_hub_name(value: str, *, file: bool) -> HubName:
    """'hf://owner/repo[@rev]' (file=False) or 'hf://owner/repo/file[@rev]' (file=True) -> HubName."""
    body = value[len(SCHEME) :] if is_hub_name(value) else value
    body, _, revision = body.partition("@")
    parts = [p for p in body.split("/") if p]
    want = "hf://owner/repo/path/to/file[@revision]" if file else "hf://owner/repo[@revision]"
    if len(parts) < 2 or (file and len(parts) < 3) or (not file and len(parts) > 2) or "@" in revision:
        raise UsageError(f"{value}: not a Hub name; write {want}")
    if any(p in (".", "..") for p in parts):
        raise UsageError(f"{value}: a Hub name has no '.' or '..' parts; write {want}")
    return HubName("/".join(parts[:2]), "/".join(parts[2:]) or None, revision or None)


def _client():
    try:
        import huggingface_hub
    except ImportError:
        raise UsageError(f"hf:// names need huggingface_hub: {INSTALL}") from None
    return huggingface_hub


def hub_settings() -> dict:
    """endpoint and cache_dir for huggingface_hub, from the environment as it is now."""
    cache = os.environ.get("HF_HUB_CACHE") or (
        os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None
    )
    return {"endpoint": os.environ.get("HF_ENDPOINT") or None, "cache_dir": cache}


def _quiet_bar():
    from tqdm.auto import tqdm

    class Quiet(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Quiet


def hub_download(name: HubName, filename: str | None = None, *, quiet: bool = False, force: bool = False) -> Path:
    """One file of a Hub repository, through huggingface_hub's cache -> its path in the cache.

    Offline only the cache is looked at. Raises CheckpointError with one line naming the file and why.
    """
    hf = _client()
    from huggingface_hub import errors

    filename = filename or name.filename
    where = str(HubName(name.repo_id, filename, name.revision))
    reason = offline_reason()
    local_only = reason is not None
    try:
        path = hf.hf_hub_download(
            name.repo_id,
            filename,
            revision=name.revision,
            local_files_only=local_only,
            force_download=force and not local_only,
            tqdm_class=_quiet_bar() if quiet else None,
            **hub_settings(),
        )
    except errors.LocalEntryNotFoundError as err:
        if local_only:
            raise CheckpointError(
                f"{where} is not in the Hugging Face cache and downloads are off ({reason}); "
                f"fetch it once online, or pass the file by path"
            ) from None
        raise CheckpointError(f"could not download {where} ({_reason(err.__cause__ or err)})") from None
    except (errors.HfHubHTTPError, errors.EntryNotFoundError, errors.HFValidationError, OSError, ValueError) as err:
        raise CheckpointError(f"could not download {where} ({_reason(err)})") from None
    return Path(path)


def _reason(err) -> str:
    """A short reason for a failed Hub request, without the client's multi-line advice."""
    from huggingface_hub import errors

    if isinstance(err, errors.RevisionNotFoundError):
        return "no such revision"
    if isinstance(err, errors.EntryNotFoundError):
        return "no such file in the repository"
    if isinstance(err, errors.GatedRepoError):
        return "the repository is gated: accept its terms on the Hub and log in with `hf auth login`"
    if isinstance(err, errors.RepositoryNotFoundError):
        return "no such repository, or it is private: check the name, or log in with `hf auth login`"
    status = getattr(getattr(err, "response", None), "status_code", None)
    first = " ".join(str(err).split())[:200]
    return f"HTTP {status}" if status else f"{type(err).__name__}: {first}"


def resolve_path(value: PathLike) -> PathLike:
    """A file named by path or `hf://owner/repo/file[@revision]` -> the local path to read.

    Anything that is not a hf:// name is returned unchanged (a str stays a str), so callers may pass every
    value through; a hf:// name is downloaded into (or found in) the Hugging Face cache.
    """
    if not is_hub_name(value):
        return value
    return hub_download(parse_hub_name(value, file=True))
