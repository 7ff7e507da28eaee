"""The public names of the weight-file package `blendgan.weights`, in one place.

    from blendgan.checkpoints import load_generator, load_psp_encoder, load_style_encoder, read_checkpoint

Each name lives in the `blendgan.weights` module that does that one job (see its docstring).
"""
from .errors import CheckpointError
from .weights.building import (generator_from_checkpoint, load_generator, load_psp_encoder, load_style_encoder,
                               psp_encoder_from_checkpoint, style_encoder_from_checkpoint)
from .weights.convert import convert_to_safetensors
from .weights.describe import describe_checkpoint, format_bytes
from .weights.download import download_one, download_weights, weight_url
from .weights.home import (HOME_ENV, KINDS, OFFICIAL_WEIGHTS, WeightFile, default_weight_path, official_weight,
                           weights_dir)
from .weights.layouts import check_checkpoint, guess_kind
from .weights.manifest import MANIFEST_NAME, manifest_entry, read_manifest, sha256_file, update_manifest, verify_manifest
from .weights.reading import (SAFE_GLOBALS, CheckpointWarning, html_page_kind, read_checkpoint,
                              resolve_checkpoint_path, retry_later, sniff_file)

__all__ = [
    "CheckpointError", "CheckpointWarning", "HOME_ENV", "KINDS", "MANIFEST_NAME", "OFFICIAL_WEIGHTS", "SAFE_GLOBALS",
    "WeightFile", "check_checkpoint", "convert_to_safetensors", "default_weight_path", "describe_checkpoint",
    "download_one", "download_weights", "format_bytes", "generator_from_checkpoint", "guess_kind", "html_page_kind",
    "load_generator", "load_psp_encoder", "load_style_encoder", "manifest_entry", "official_weight",
    "psp_encoder_from_checkpoint", "read_checkpoint", "read_manifest", "resolve_checkpoint_path", "retry_later",
    "sha256_file", "sniff_file", "style_encoder_from_checkpoint", "update_manifest", "verify_manifest",
    "weight_url", "weights_dir",
]
