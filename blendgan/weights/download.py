"""Download the published weights from an ordered list of sources, check what arrived, record it in a manifest.

The sources (`blendgan.weights.sources`: Google Drive by default, HTTP(S) mirrors, Hugging Face Hub
repositories) are tried in order for each file; the first that gives a usable file wins, and each failure
is one line naming the source and the reason. From Drive and mirrors a file is fetched into
`<name>.download` beside its destination (gdown keeps partial data in a `.part` file and resumes from it
with a Range request, within one call via `retries` and across calls); from the Hub through
huggingface_hub's cache (resumable too) and copied. What arrived is checked (the sha256 recorded in the
local manifest, else the one the source publishes in its manifest.json; not a web page; readable; the
right kind with the right keys and shapes), then moved into place and recorded in `manifest.json`
(file name -> sha256, size, kind, url) which the loaders verify on later loads.

`fetch_if_missing` is the first-use path of the commands: a published file missing from the weights folder
is downloaded this way before it is loaded. Offline (`BLENDGAN_OFFLINE=1` or `HF_HUB_OFFLINE=1`) nothing
is contacted: only the Hugging Face cache is looked at, and a missing file is one line naming where to put it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BlendGANError, CheckpointError
from .describe import format_bytes
from .home import OFFICIAL_WEIGHTS, OFFLINE_ENV, offline, offline_reason, weight_file, weights_dir
from .hub import hub_download
from .layouts import check_checkpoint
from .manifest import manifest_entry, read_manifest, sha256_file, update_manifest
from .reading import html_page_kind, read_checkpoint, retry_later, sniff_file
from .sources import DRIVE_URL, URL_ENV, Source, parse_source, weight_sources

if TYPE_CHECKING:
    from typing import Callable, Sequence

    from ..io.files import PathLike


__all__ = ["DRIVE_URL", "OFFLINE_ENV", "URL_ENV", "Source", "offline", "parse_source", "weight_sources"]
STAGING_SUFFIX = ".download"


def weight_url(name: str, url_template: str | None = None) -> str:
    """The URL (or hf:// name) one file is fetched from first."""
    return weight_sources([url_template] if url_template else None)[0].url(weight_file(name))


def download_weights(
    names: Sequence[str] | None = None,
    directory: PathLike | None = None,
    *,
    force: bool = False,
    url_template: str | None = None,
    sources: Sequence[str] | None = None,
    retries: int = 3,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Fetch the published weight files that are missing or damaged -> {name: path}.

    Files already present are kept when they match their manifest entry (or, without one, pass the
    structural check, after which an entry is written). `force` downloads again regardless. `sources`
    (specs or Source objects, tried in order) default to `weight_sources()`; `url_template` is one source.
    Raises CheckpointError with the reason and a fix when no source gives a usable file.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    directory = Path(directory) if directory is not None else weights_dir()
    directory.mkdir(parents=True, exist_ok=True)
    sources = _sources(sources, url_template)
    published = {}  # source -> its manifest.json (fetched once per call)
    paths = {}
    for name in names or list(OFFICIAL_WEIGHTS):
        w = weight_file(name)
        target = directory / w.filename
        if target.exists() and not force:
            try:
                entry = _verified_entry(target, w)
                log(f"{target}: present, {w.kind}, {format_bytes(entry['size'])}, sha256 {entry['sha256'][:16]}...")
                paths[name] = target
                continue
            except CheckpointError as err:
                log(f"{target} is not usable ({err}); downloading it again")
        paths[name] = download_one(
            name, directory, force=force, sources=sources, retries=retries, quiet=quiet, log=log, _published=published
        )
    return paths


def _sources(sources, url_template=None):
    given = list(sources or []) + ([url_template] if url_template else [])
    if given:
        return [s if isinstance(s, Source) else parse_source(s) for s in given]
    return weight_sources()


def _verified_entry(path, w):
    """The manifest entry of a present file, checking it (and writing the entry when there is none)."""
    entry = read_manifest(path.parent).get(path.name)
    ckpt = read_checkpoint(path, prefer_safetensors=False)  # verifies the manifest entry when there is one
    check_checkpoint(ckpt, w.kind, source=path)
    if isinstance(entry, dict) and "sha256" in entry:
        return entry
    return _record(path, w, url=None)


def download_one(
    name: str,
    directory: PathLike | None = None,
    *,
    force: bool = False,
    url_template: str | None = None,
    sources: Sequence[str] | None = None,
    retries: int = 3,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
    _published: dict | None = None,
) -> Path:
    """Download one published file into `directory` from the first source that gives a usable one, check
    it, record it in the manifest -> its path. With one source its error is raised as it is; with several,
    each failure is logged as one line and the error names them all."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    w = weight_file(name)
    sources = _sources(sources, url_template)
    published = {} if _published is None else _published
    directory = Path(directory) if directory is not None else weights_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / w.filename
    staging = directory / (w.filename + STAGING_SUFFIX)
    if staging.exists():
        staging.unlink()  # a finished but unchecked download from an interrupted run: fetch it anew
    if force:
        for part in _partial_files(staging):
            part.unlink()
    browser = f"download {w.filename} in a browser from {w.drive_link} and save it as {target}"
    reason = offline_reason()
    tried = [s for s in sources if s.kind == "hub"] if reason else sources  # offline: the Hub's cache only
    failures = []
    for source in tried:
        try:
            url = _fetch(source, w, staging, force=force, retries=retries, quiet=quiet, log=log, browser=browser)
            _check_sha256(staging, w, directory, source, published)
            _check_arrival(staging, w, browser)
        except BlendGANError as err:  # also a UsageError: no huggingface_hub for a hf:// source
            staging.unlink(missing_ok=True)
            if len(tried) == 1 and not reason:
                raise
            failures.append(str(source))
            log(f"{w.filename} from {source}: {err}")
            continue
        os.replace(staging, target)
        for part in _partial_files(staging):  # partial data an earlier source left behind
            part.unlink()
        entry = _record(target, w, url)
        log(f"{target}: ok, {w.kind}, {format_bytes(entry['size'])}, sha256 {entry['sha256'][:16]}...")
        return target
    if reason:
        raise CheckpointError(
            f"{target} not found and downloads are off ({reason}); put {w.filename} there (from "
            f"{w.drive_link} or a mirror), or unset {reason.split('=')[0]} to download it"
        )
    raise CheckpointError(
        f"no source gave a usable {w.filename} (tried {', '.join(failures)}: see the lines above); "
        f"try again later, add a mirror with --source URL or hf://owner/repo, or {browser}"
    )


def _fetch(source, w, staging, *, force, retries, quiet, log, browser):
    """Bring one file from `source` into `staging` -> the URL (or hf:// name) it came from."""
    url = source.url(w)
    log(f"downloading {w.filename} from {url}")
    if source.kind == "hub":
        cached = hub_download(source.hub, w.filename, quiet=quiet, force=force)
        # a copy, not a link: a file later damaged in the weights folder must not damage the cache
        shutil.copyfile(cached, staging)
        return url
    _fetch_http(url, w, staging, retries=retries, quiet=quiet, browser=browser, is_drive=source.kind == "drive")
    return url


def _fetch_http(url, w, staging, *, retries, quiet, browser, is_drive):
    """gdown: Drive's confirmation pages for Drive links, plain resumable streaming otherwise."""
    import gdown
    import requests
    from gdown.exceptions import DownloadError, FileURLRetrievalError

    name = w.name
    try:
        gdown.download(url, str(staging), quiet=quiet, resume=True, retries=retries, use_cookies=is_drive, timeout=60)
    except FileURLRetrievalError as err:
        reason = " ".join(str(err).split())[:300]
        raise CheckpointError(
            f"Google Drive would not serve {w.filename} ({reason}); this usually means its "
            f"download quota is used up: try again later, or {browser}"
        ) from None
    except DownloadError as err:
        reason = str(err).splitlines()[0]
        if "byte range" in reason or "temporary files" in reason:  # resuming cannot work: start over
            raise CheckpointError(
                f"download of {w.filename} could not resume ({reason}); run `blendgan download "
                f"--force --only {name}` to start it over"
            ) from None
        have = sum(p.stat().st_size for p in _partial_files(staging))
        if have == 0:  # nothing arrived at all: no connection rather than an interrupted download
            raise CheckpointError(
                f"could not download {w.filename} from {url} ({reason[:200]}); check the "
                f"connection and run `blendgan download --only {name}` again, or {browser}"
            ) from None
        raise CheckpointError(
            f"download of {w.filename} was interrupted ({reason}); run `blendgan download "
            f"--only {name}` again to resume from the {format_bytes(have)} received"
        ) from None
    except requests.RequestException as err:
        raise CheckpointError(
            f"could not download {w.filename} from {url} ({type(err).__name__}: "
            f"{str(err)[:200]}); check the connection and run `blendgan download --only "
            f"{name}` again (partial data is kept and resumed), or {browser}"
        ) from None


def _check_sha256(staging, w, directory, source, published):
    """Refuse a file whose sha256 is not the one recorded in the local manifest (an earlier download of this
    file) or, without a record, the one the source publishes in its manifest.json (when it has one)."""
    entry = read_manifest(directory).get(w.filename)
    where = f"the record in {directory / 'manifest.json'}"
    if not (isinstance(entry, dict) and entry.get("sha256")):
        if source not in published:
            published[source] = _published_manifest(source)
        entry, where = published[source].get(w.filename), f"the manifest.json of {source}"
    if not (isinstance(entry, dict) and entry.get("sha256")):
        return
    digest = sha256_file(staging)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"refused: its sha256 {digest[:16]}... is not {str(entry['sha256'])[:16]}... of {where} "
            "(a different or damaged file)"
        )


def _published_manifest(source) -> dict:
    """The manifest.json a mirror or Hub repository holds beside the files ({} when it has none)."""
    try:
        if source.kind == "hub":
            text = hub_download(source.hub, "manifest.json", quiet=True).read_text()
        elif source.manifest_url():
            import requests

            response = requests.get(source.manifest_url(), timeout=60)
            if response.status_code != 200:
                return {}
            text = response.text
        else:
            return {}
        data = json.loads(text)
    except (BlendGANError, OSError, ValueError, ImportError):  # requests' errors are OSErrors
        return {}  # no published manifest: the file is still checked structurally
    return data if isinstance(data, dict) else {}


def _partial_files(staging):
    # gdown names partial data <output name> + 8 random characters + ".part"
    prefix, n = staging.name, len(staging.name) + 8 + len(".part")
    return [p for p in staging.parent.glob(prefix + "*.part") if len(p.name) == n]


def _check_arrival(staging, w, browser):
    """Refuse what is not the expected checkpoint: a web page, a damaged file, the wrong kind or layout."""
    if sniff_file(staging) == "html":
        page = html_page_kind(staging)
        raise CheckpointError(
            f"the server sent {page} instead of {w.filename}; try again{retry_later(page) or ' later'}, or {browser}"
        )
    try:
        check_checkpoint(read_checkpoint(staging, prefer_safetensors=False), w.kind, source=staging)
    except CheckpointError as err:
        reason = str(err).replace(str(staging), "it").split("; ")[0]
        raise CheckpointError(
            f"the downloaded {w.filename} is not usable ({reason}); run `blendgan download "
            f"--force --only {w.name}` again, or {browser}"
        ) from None


def _record(path, w, url):
    entry = manifest_entry(path, kind=w.kind, **({"url": url} if url else {}))
    update_manifest(path.parent, path.name, entry)
    return entry


def fetch_if_missing(name, *, allow=True, log=None):
    """The default path of a published file, downloaded into the weights folder first when it is missing.

    A file counts as present when it or its `.safetensors` sibling exists (the loaders then check it).
    Nothing is fetched when `allow` is false or `$BLENDGAN_OFFLINE` is set: the loader then names the
    missing file and how to get it. A failed download raises CheckpointError with the reason and a fix.
    """
    w = weight_file(name)
    path = weights_dir() / w.filename
    if path.exists() or path.with_suffix(".safetensors").exists() or not allow or offline():
        return path
    log = log or (lambda msg: print(msg, file=sys.stderr))
    log(f"{path} not found: downloading it once (--no_download or {OFFLINE_ENV}=1 turns this off)")
    return download_weights([name], path.parent, log=log)[name]
