"""Download the published weights (Google Drive, via gdown), check what arrived, and record it in a manifest.

Each file is fetched into `<name>.download` beside its destination (gdown keeps partial data in a `.part`
file and resumes from it with a Range request, within one call via `retries` and across calls), checked
(not a web page, readable, the right kind with the right keys and shapes), then moved into place and
recorded in `manifest.json` (file name -> sha256, size, kind) which the loaders verify on later loads.

The URL is a template with `{id}` (Google Drive file id), `{name}` and `{filename}` fields: Google Drive by
default, `$BLENDGAN_WEIGHTS_URL` or the `url_template` argument otherwise (e.g. a mirror, or a local server
in tests). gdown handles both: the Drive confirmation pages for Drive links, plain streaming otherwise.

`fetch_if_missing` is the first-use path of the commands: a published file missing from the weights folder
is downloaded this way before it is loaded, unless `$BLENDGAN_OFFLINE` is set.
"""

import os
import sys
from pathlib import Path

from ..errors import CheckpointError
from .describe import format_bytes
from .home import OFFICIAL_WEIGHTS, weight_file, weights_dir
from .layouts import check_checkpoint
from .manifest import manifest_entry, read_manifest, update_manifest
from .reading import html_page_kind, read_checkpoint, retry_later, sniff_file

URL_ENV = "BLENDGAN_WEIGHTS_URL"
DRIVE_URL = "https://drive.google.com/uc?id={id}"
STAGING_SUFFIX = ".download"


def weight_url(name, url_template=None):
    """The URL one file is fetched from."""
    w = weight_file(name)
    template = url_template or os.environ.get(URL_ENV) or DRIVE_URL
    return template.format(id=w.drive_id, name=w.name, filename=w.filename)


def download_weights(names=None, directory=None, *, force=False, url_template=None, retries=3, quiet=False, log=None):
    """Fetch the published weight files that are missing or damaged -> {name: path}.

    Files already present are kept when they match their manifest entry (or, without one, pass the
    structural check, after which an entry is written). `force` downloads again regardless.
    Raises CheckpointError with the reason and a fix when a download fails or what arrived is unusable.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    directory = Path(directory) if directory is not None else weights_dir()
    directory.mkdir(parents=True, exist_ok=True)
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
            name, directory, force=force, url_template=url_template, retries=retries, quiet=quiet, log=log
        )
    return paths


def _verified_entry(path, w):
    """The manifest entry of a present file, checking it (and writing the entry when there is none)."""
    entry = read_manifest(path.parent).get(path.name)
    ckpt = read_checkpoint(path, prefer_safetensors=False)  # verifies the manifest entry when there is one
    check_checkpoint(ckpt, w.kind, source=path)
    if isinstance(entry, dict) and "sha256" in entry:
        return entry
    return _record(path, w, url=None)


def download_one(name, directory=None, *, force=False, url_template=None, retries=3, quiet=False, log=None):
    """Download one published file into `directory`, check it, record it in the manifest -> its path."""
    import gdown
    import requests
    from gdown.exceptions import DownloadError, FileURLRetrievalError

    log = log or (lambda msg: print(msg, file=sys.stderr))
    w = weight_file(name)
    directory = Path(directory) if directory is not None else weights_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / w.filename
    staging = directory / (w.filename + STAGING_SUFFIX)
    if staging.exists():
        staging.unlink()  # a finished but unchecked download from an interrupted run: fetch it anew
    if force:
        for part in _partial_files(staging):
            part.unlink()
    url = weight_url(name, url_template)
    is_drive = "drive.google.com" in url or "docs.google.com" in url
    browser = f"download {w.filename} in a browser from {w.drive_link} and save it as {target}"
    log(f"downloading {w.filename} from {url}")
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
    try:
        _check_arrival(staging, w, browser)
    except CheckpointError:
        staging.unlink(missing_ok=True)
        raise
    os.replace(staging, target)
    entry = _record(target, w, url)
    log(f"{target}: ok, {w.kind}, {format_bytes(entry['size'])}, sha256 {entry['sha256'][:16]}...")
    return target


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


OFFLINE_ENV = "BLENDGAN_OFFLINE"


def offline():
    """True when `$BLENDGAN_OFFLINE` asks for no downloads (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


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
