"""Fitting what the encoders miss: a face's codes (refine), a style's code, and a style adapter (LoRA)."""
