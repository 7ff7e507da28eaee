"""Optimisation over a frozen generator, for what the encoders miss: `refine` (a face's W+ codes, starting from
pSp's), `style_code` and `adapter` (a style fitted to references: its code, and a low-rank adapter of the
synthesis convolutions; trained by blendgan.training.fit_style_loop), and their `losses`.

Functions here take models and tensors and return tensors; they do not import the pipeline (which owns the
device, dtype and caches and calls them lazily)."""
