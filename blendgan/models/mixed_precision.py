"""Run chosen generator layers in float32 inside a reduced-precision (bfloat16 / float16) generator.

The layers are cast to float32 and get a forward pre-hook that casts their floating-point inputs to
float32, so everything after the first such layer on the data path computes in float32 too.
"""
import torch

from .layers import StyledConv, ToRGB


def _to_float32_inputs(module, args):
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def keep_float32(generator, to_rgb=True, last_resolutions=0):
    """Cast the ToRGB layers (`to_rgb`) and every layer of the last `last_resolutions` resolutions of
    `generator` to float32 (after `generator.to(reduced_dtype)`). Returns the list of layers changed.
    Idempotent; state-dict keys and shapes are unchanged (dtypes of those layers become float32)."""
    chosen = []
    if to_rgb:
        chosen += [generator.to_rgb1, *generator.to_rgbs]
    if last_resolutions:
        n = len(generator.to_rgbs)
        for j in range(max(0, n - last_resolutions), n):
            chosen += [generator.convs[2 * j], generator.convs[2 * j + 1], generator.to_rgbs[j]]
    done = []
    for m in chosen:
        if not isinstance(m, (StyledConv, ToRGB)) or m in done:
            continue
        m.float()
        if not getattr(m, "_float32_inputs", False):
            m.register_forward_pre_hook(_to_float32_inputs)
            m._float32_inputs = True
        done.append(m)
    return done
