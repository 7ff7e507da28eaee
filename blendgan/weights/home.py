"""The published weight files, the folder they live in (`$BLENDGAN_HOME`) and how to get them.

Nothing here imports torch: the command line uses it to build its --help.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from ..io.files import PathLike


HOME_ENV = "BLENDGAN_HOME"
OFFLINE_ENV = "BLENDGAN_OFFLINE"
HUB_OFFLINE_ENV = "HF_HUB_OFFLINE"
KINDS = ("generator", "psp_encoder", "style_encoder")


@dataclass(frozen=True)
class WeightFile:
    """One of the published weight files."""

    name: str  # short name used by `blendgan download --only`
    filename: str
    drive_id: str
    kind: str  # generator | psp_encoder | style_encoder

    @property
    def drive_link(self):
        return f"https://drive.google.com/file/d/{self.drive_id}"


OFFICIAL_WEIGHTS = {
    w.name: w
    for w in (
        WeightFile("blendgan", "blendgan.pt", "1eF04jKMLAb9DvzI72m8Akn5ykWf3EafE", "generator"),
        WeightFile("psp_encoder", "psp_encoder.pt", "14nevG94hNkkwaoK5eJLF1iv78cv5O8fN", "psp_encoder"),
        WeightFile("style_encoder", "style_encoder.pt", "1EaM0ZYsAMdPkbRz0smLNIlJ1rxVAhbEz", "style_encoder"),
    )
}


def weights_dir() -> Path:
    """Where weights live by default: `$BLENDGAN_HOME` if set, else `./pretrained_models`."""
    return Path(os.environ.get(HOME_ENV) or "pretrained_models").expanduser()


def offline_reason():
    """The variable that turns downloads off (`BLENDGAN_OFFLINE` or `HF_HUB_OFFLINE` set to 1, true, yes, on),
    as `NAME=value`, or None when downloads are allowed."""
    for var in (OFFLINE_ENV, HUB_OFFLINE_ENV):
        value = os.environ.get(var, "").strip()
        if value.lower() in ("1", "true", "yes", "on"):
            return f"{var}={value}"
    return None


def offline() -> bool:
    """True when `$BLENDGAN_OFFLINE` or `$HF_HUB_OFFLINE` asks for no downloads."""
    return offline_reason() is not None


def weight_file(name):
    """The `WeightFile` called `name` (blendgan | psp_encoder | style_encoder); UsageError otherwise."""
    try:
        return OFFICIAL_WEIGHTS[name]
    except KeyError:
        raise UsageError(f"unknown weight file {name!r}; choose from {', '.join(OFFICIAL_WEIGHTS)}") from None


def default_weight_path(name: str) -> Path:
    """Default path of one published file: name is blendgan | psp_encoder | style_encoder."""
    return weights_dir() / weight_file(name).filename


def official_weight(path: PathLike) -> WeightFile | None:
    """The `WeightFile` whose file name (or stem) matches `path`, or None."""
    p = Path(path)
    for w in OFFICIAL_WEIGHTS.values():
        if p.name == w.filename or p.stem == Path(w.filename).stem:
            return w
    return None


def how_to_get(path):
    """The advice for a missing weight file: the download command, or the original links."""
    w = official_weight(path) if path else None
    if w is not None:
        return (
            f"run `blendgan download --only {w.name}` (saves it in {weights_dir().resolve()}) "
            f"or download {w.filename} from {w.drive_link}"
        )
    links = ", ".join(f"{w.filename} {w.drive_link}" for w in OFFICIAL_WEIGHTS.values())
    return (
        f"run `blendgan download` (saves the weights in {weights_dir().resolve()}) or download them from "
        f"Google Drive: {links}"
    )


def how_to_redownload(path):
    """The advice for a damaged weight file."""
    w = official_weight(path)
    if w is not None:
        return f"delete it and run `blendgan download --force --only {w.name}` (or get it from {w.drive_link})"
    return "download or save it again"
