"""Weight files: one module per job, importable without torch where the job does not need it.

    home             the published files, where they live ($BLENDGAN_HOME) and how to get them (no torch)
    safetensors_file the .safetensors format: validated, memory-mapped reading and aligned writing
    manifest         manifest.json beside downloaded files: sha256, size, verification
    reading          the one safe door for reading a file: sniffing, .pt via weights_only, .safetensors
    layouts          what a checkpoint dict holds: its kind, and key/shape checks against the models
    building         models built from checkpoint dicts and files (load_generator, ...)
    convert          .pt -> .safetensors
    describe         what `blendgan info` prints
    hub              hf:// names: files from the Hugging Face Hub through huggingface_hub's cache (no torch)
    sources          where the published files can come from: Drive, HTTP(S) mirrors, Hub repositories (no torch)
    download         fetching the published files, checked and recorded in the manifest

The modules import only downwards in this list (and never each other in a circle). This package is the one
door to the weights: every public name below can be imported from it,

    from blendgan.weights import load_generator, load_psp_encoder, load_style_encoder, read_checkpoint

and is only imported (with torch, where its module needs it) when first used, so that importing one
torch-free module of the package (`blendgan.weights.home`) stays torch-free.
"""

from __future__ import annotations

import importlib

# public name -> the module of this package that defines it
_EXPORTS = {
    "building": (
        "generator_from_checkpoint",
        "load_generator",
        "load_psp_encoder",
        "load_style_encoder",
        "psp_encoder_from_checkpoint",
        "style_encoder_from_checkpoint",
    ),
    "convert": ("convert_to_safetensors",),
    "describe": ("describe_checkpoint", "format_bytes"),
    "download": ("download_one", "download_weights", "weight_url"),
    "hub": ("HubName", "hub_download", "is_hub_name", "parse_hub_name", "resolve_path"),
    "sources": ("Source", "parse_source", "weight_sources"),
    "home": (
        "HOME_ENV",
        "KINDS",
        "OFFICIAL_WEIGHTS",
        "WeightFile",
        "default_weight_path",
        "official_weight",
        "offline",
        "weights_dir",
    ),
    "layouts": ("check_checkpoint", "guess_kind"),
    "manifest": (
        "MANIFEST_NAME",
        "manifest_entry",
        "read_manifest",
        "sha256_file",
        "update_manifest",
        "verify_manifest",
    ),
    "reading": (
        "SAFE_GLOBALS",
        "CheckpointWarning",
        "html_page_kind",
        "read_checkpoint",
        "resolve_checkpoint_path",
        "retry_later",
        "sniff_file",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "CheckpointError"])


def __getattr__(name: str):
    if name == "CheckpointError":
        from ..errors import CheckpointError

        return CheckpointError
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__():
    return sorted([*globals(), *__all__])
