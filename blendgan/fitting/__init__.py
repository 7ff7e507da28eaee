"""Optimisation at inference time over a frozen generator: `refine` (a face's W+ codes, starting from pSp's).

Functions here take models and tensors and return tensors; they do not import the pipeline (which owns the
device, dtype and caches and calls them lazily)."""
