"""Run chosen generator layers in float32 inside a reduced-precision (bfloat16 / float16) generator.

The synthesis layers chosen are cast to float32 and get a forward pre-hook that casts their
floating-point inputs to float32, so everything after the first such layer on the data path computes
in float32 too. The latent MLPs (`latents`: the mapping network and the style embedding, 8 small
linear layers each) compute in float32 and hand their output back in the input's dtype.
"""

import torch

from .layers import StyledConv, ToRGB


def _to_float32_inputs(module, args):
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _back_to_input_dtype(module, args, output):
    return output.to(module._input_dtype)


def _latent_mlp_inputs(module, args):
    module._input_dtype = args[0].dtype
    return _to_float32_inputs(module, args)


def keep_float32(generator, to_rgb=True, last_resolutions=0, latents=False):
    """Cast the ToRGB layers (`to_rgb`), every layer of the last `last_resolutions` resolutions and,
    with `latents`, the mapping network and the style embedding MLP of `generator` to float32 (after
    `generator.to(reduced_dtype)`). Returns the list of modules changed. Idempotent; state-dict keys and
    shapes are unchanged (dtypes of those modules become float32)."""
    done = []
    if latents:
        for m in (generator.style, generator.embedding):
            m.float()
            if not getattr(m, "_float32_inputs", False):
                m.register_forward_pre_hook(_latent_mlp_inputs)
                m.register_forward_hook(_back_to_input_dtype)
                m._float32_inputs = True
            done.append(m)
    chosen = []
    if to_rgb:
        chosen += [generator.to_rgb1, *generator.to_rgbs]
    if last_resolutions:
        n = len(generator.to_rgbs)
        for j in range(max(0, n - last_resolutions), n):
            chosen += [generator.convs[2 * j], generator.convs[2 * j + 1], generator.to_rgbs[j]]
    for m in chosen:
        if not isinstance(m, (StyledConv, ToRGB)) or m in done:
            continue
        m.float()
        if not getattr(m, "_float32_inputs", False):
            m.register_forward_pre_hook(_to_float32_inputs)
            m._float32_inputs = True
        done.append(m)
    return done
