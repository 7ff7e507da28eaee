"""Where the released weights can be fetched from: an ordered list of sources, tried in turn.

    drive                        Google Drive, the original links (the default)
    https://host/path            an HTTP(S) mirror holding the files: <base>/blendgan.pt, ... (a lab's server, a bucket)
    https://host/{filename}?k=v  a URL template with {filename}, {name} or {id} (the Drive id) fields
    hf://owner/repo[@revision]   a Hugging Face Hub repository holding the files (pip install 'blendgan[hub]')

The list is the `--source` flags of `blendgan download`, else `$BLENDGAN_WEIGHTS_URL` (several separated by
spaces), else Google Drive alone. A mirror or Hub repository that also holds the `manifest.json` of a
weights folder (copy the whole folder) publishes the sha256 of each file, which is checked on arrival.
Nothing here imports torch or a network client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError
from .hub import SCHEME, HubName, parse_hub_name

if TYPE_CHECKING:
    from typing import Sequence

    from .home import WeightFile


URL_ENV = "BLENDGAN_WEIGHTS_URL"
DRIVE_URL = "https://drive.google.com/uc?id={id}"
MANIFEST_NAME = "manifest.json"  # the same name as blendgan.weights.manifest's, which imports torch-free too


@dataclass(frozen=True)
class Source:
    """One place to fetch the released files from: kind drive | http (a URL template) | hub (a repository)."""

    kind: str
    template: str = ""
    hub: HubName | None = None

    def url(self, w: WeightFile) -> str:
        """Where the WeightFile `w` is fetched from (for hub: its hf:// name)."""
        if self.kind == "hub":
            return str(HubName(self.hub.repo_id, w.filename, self.hub.revision))
        return self.template.format(id=w.drive_id, name=w.name, filename=w.filename)

    def manifest_url(self) -> str | None:
        """Where a mirror publishes its manifest.json (None for Drive and templates without {filename})."""
        if self.kind != "http" or "{filename}" not in self.template:
            return None
        return self.template.format(id="", name="manifest", filename=MANIFEST_NAME)

    def __str__(self) -> str:
        if self.kind == "drive":
            return "Google Drive"
        return str(self.hub) if self.kind == "hub" else self.template


def parse_source(spec: str) -> Source:
    """`drive`, an http(s) base URL or template, or `hf://owner/repo[@revision]` -> Source."""
    spec = spec.strip()
    if spec.lower() in ("drive", "gdrive", "google-drive") or spec == DRIVE_URL:
        return Source("drive", DRIVE_URL)
    if spec.startswith(SCHEME):
        return Source("hub", hub=parse_hub_name(spec, file=False))
    if spec.startswith(("http://", "https://")):
        if "drive.google.com" in spec or "docs.google.com" in spec:
            return Source("drive", spec)
        if "{" in spec:
            return Source("http", spec)
        return Source("http", spec.rstrip("/") + "/{filename}")
    raise UsageError(
        f"--source {spec}: not a source; give `drive`, an http(s):// base URL of a mirror, or hf://owner/repo[@revision]"
    )


def weight_sources(specs: Sequence[str] | None = None) -> list[Source]:
    """The sources to try in order: `specs` (the --source flags), else $BLENDGAN_WEIGHTS_URL, else Google Drive."""
    given = list(specs or []) or os.environ.get(URL_ENV, "").split() or ["drive"]
    return [parse_source(s) for s in given]
