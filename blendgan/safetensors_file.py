"""Kept for code that imports `blendgan.safetensors_file`: the format lives in `blendgan.weights.safetensors_file`."""
from .weights.safetensors_file import SafetensorsFormatError, metadata, read, read_header, write  # noqa: F401
