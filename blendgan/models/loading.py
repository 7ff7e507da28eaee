"""Instantiate a model straight from a state dict, without allocating or initialising throw-away weights."""

import torch


def from_state_dict(factory, state_dict):
    """Build `factory()` on the meta device and adopt `state_dict`'s tensors (strict key/shape match).

    The module ends up holding the given tensors themselves (their dtype and device), so a memory-mapped
    checkpoint is never copied. Returns the module in eval mode.
    """
    with torch.device("meta"):
        model = factory()
    model.load_state_dict(state_dict, strict=True, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"tensors not provided by the state dict: {leftover[:5]}")
    return model.eval()
