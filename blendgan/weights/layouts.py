"""What a checkpoint dict holds: its kind, and its keys and shapes checked against the models.

Keys and shapes come from meta-device instances of the models (no memory allocated), so a file is judged
by exactly what `load_state_dict` would accept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

import torch

from ..errors import CheckpointError
from ..models import Generator, PSPEncoder, StyleEncoder
from ..models.generator import SUPPORTED_SIZES, n_latent_for_size, size_for_n_latent
from ..models.psp_encoder import IR_SE50_WIDTH
from ..models.style_encoder import VGG19_WIDTH
from .home import how_to_redownload


def few(names, n=3):
    """'a, b, c, ...': the first `n` names, for one-line messages."""
    names = list(names)
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def guess_kind(ckpt: object) -> str:
    """'generator', 'psp_encoder', 'style_encoder' or 'unknown', judging by the keys of a checkpoint dict."""
    if not isinstance(ckpt, Mapping):
        return "unknown"
    if isinstance(ckpt.get("g_ema"), Mapping):
        return "generator"
    sd = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), Mapping) else ckpt
    keys = [k for k in sd if isinstance(k, str)]
    if any(k.startswith(("encoder.input_layer.", "encoder.body.", "input_layer.", "body.0.")) for k in keys):
        return "psp_encoder"
    if any(k == "add_weight" or k.startswith(("style.1.", "to_rgb1.", "conv1.conv.")) for k in keys):
        return "generator"
    if any(k.startswith(("embedder_mlp.", "embedder.embedder_mlp.")) for k in keys) or isinstance(
        ckpt.get("embedder"), Mapping
    ):
        return "style_encoder"
    return "unknown"


_KIND_HINTS = {
    "generator": "this looks like a BlendGAN generator checkpoint (blendgan.pt); pass it as --ckpt",
    "psp_encoder": "this looks like a pSp encoder checkpoint (psp_encoder.pt); pass it as --psp_encoder_ckpt",
    "style_encoder": "this looks like a standalone style encoder checkpoint (style_encoder.pt); pass it as "
    "--style_encoder_ckpt",
}


def kind_hint(ckpt, wanted):
    kind = guess_kind(ckpt)
    if kind == "generator" and wanted == "generator":
        sd = ckpt.get("g_ema") if isinstance(ckpt.get("g_ema"), Mapping) else ckpt
        if "add_weight" not in sd and not any(str(k).startswith("embedder.") for k in sd):
            return (
                "; this looks like a plain StyleGAN2 generator without BlendGAN's style branch "
                "(no add_weight / embedding / embedder weights)"
            )
    if kind in (wanted, "unknown"):
        return ""
    return "; " + _KIND_HINTS[kind]


def _check_state_dict(expected, got, source, what, hint=""):
    """Raise one CheckpointError line when `got` does not have exactly the keys and shapes of `expected`."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        parts = [f"{len(missing)} missing ({few(missing)})"] if missing else []
        parts += [f"{len(unexpected)} unexpected ({few(unexpected)})"] if unexpected else []
        raise CheckpointError(f"{source} does not hold {what}: keys {' and '.join(parts)}{hint}")
    not_tensors = [k for k in expected if not isinstance(got[k], torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{source} does not hold {what}: {len(not_tensors)} entries are not tensors ({few(not_tensors)}){hint}"
        )
    no_data = [k for k in expected if got[k].is_meta]
    if no_data:
        raise CheckpointError(
            f"{source} holds no data for {len(no_data)} tensors ({few(no_data)}): they were "
            f"saved from the meta device; {how_to_redownload(source)}"
        )
    wrong = [(k, list(got[k].shape), list(s)) for k, s in expected.items() if tuple(got[k].shape) != s]
    if wrong:
        shown = "; ".join(f"{k}: file {a}, model {b}" for k, a, b in wrong[:3])
        raise CheckpointError(
            f"{source} does not hold {what}: {len(wrong)} tensors have the wrong shape "
            f"({shown}{'; ...' if len(wrong) > 3 else ''}){hint}"
        )


@cache
def _expected_shapes(kind, arg, width, channel_multiplier=2, max_channels=512):
    """{key: shape} of a model's state dict, from a meta-device instance (no memory allocated).

    `width`: the encoder's first-layer width (VGG19's for a generator or style encoder, IR-SE50's for pSp)."""
    with torch.device("meta"):
        if kind == "generator":
            model = Generator(arg, channel_multiplier=channel_multiplier, max_channels=max_channels, style_width=width)
        elif kind == "psp_encoder":
            model = PSPEncoder(arg, width)
        else:
            model = StyleEncoder(width=width)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _first_conv_width(sd, key, published, step):
    """Output channels of the first conv `key` when it is a narrower multiple of `step`, else `published`
    (also when the entry is missing or odd: the key/shape check then says what is wrong)."""
    t = sd.get(key)
    if isinstance(t, torch.Tensor) and t.ndim == 4 and 0 < t.shape[0] < published and t.shape[0] % step == 0:
        return int(t.shape[0])
    return published


def style_encoder_width(sd, prefix=""):
    """VGG19's first-layer width in a style encoder state dict (64, the published one, when not narrower);
    `prefix` is 'embedder.' inside a generator."""
    return _first_conv_width(sd, f"{prefix}embedder.feature_extractor.vgg_layers.0.weight", VGG19_WIDTH, 1)


def psp_encoder_width(sd, prefix="encoder."):
    """IR-SE50's input-layer width in a pSp state dict (64, the published one, when not narrower); `prefix` is
    '' for the inner encoder's keys."""
    return _first_conv_width(sd, f"{prefix}input_layer.0.weight", IR_SE50_WIDTH, 16)


def _size_from_n_latent(n):
    size = size_for_n_latent(n)
    return size if n % 2 == 0 and size in SUPPORTED_SIZES else None


# ---- generator
def generator_parts(ckpt, source, size=None, channel_multiplier=2):
    """(state dict, size) of a generator checkpoint, checked against the model's keys and shapes."""
    sd = ckpt.get("g_ema")
    if not isinstance(sd, Mapping):
        if guess_kind(ckpt) != "generator":
            entries = few([str(k) for k in ckpt], 4)
            raise CheckpointError(
                f"{source} has no 'g_ema' generator weights (entries: {entries}){kind_hint(ckpt, 'generator')}"
            )
        sd = ckpt  # a bare generator state dict
    inferred = _generator_size(sd)
    if size is not None and inferred is not None and int(size) != inferred:
        raise CheckpointError(
            f"{source} is a {inferred} generator but --size {size} was given; pass --size {inferred} (or omit it)"
        )
    size = int(size) if size is not None else inferred
    if size is None:
        raise CheckpointError(
            f"{source}: cannot tell the generator's output size (no add_weight or to_rgbs.* "
            f"entries); pass --size{kind_hint(ckpt, 'generator')}"
        )
    hint = kind_hint(ckpt, "generator")
    cm = _channel_multiplier(sd)
    if cm is not None and cm != channel_multiplier:
        hint += f"; its layer widths are those of channel multiplier {cm}: pass --channel_multiplier {cm}"
    max_channels = generator_max_channels(sd)
    width = style_encoder_width(sd, "embedder.")
    what = (
        f"a {size}x{size} BlendGAN generator (channel multiplier {channel_multiplier}"
        + (f", at most {max_channels} channels" if max_channels != 512 else "")
        + (f", a style encoder {width} channels wide)" if width != VGG19_WIDTH else ")")
    )
    _check_state_dict(
        _expected_shapes("generator", size, width, channel_multiplier, max_channels), sd, source, what, hint
    )
    return sd, size


def _generator_size(sd):
    aw = sd.get("add_weight")
    if isinstance(aw, torch.Tensor) and aw.ndim == 3:
        return _size_from_n_latent(aw.shape[1])  # add_weight is [1, n_latent, 1]
    levels = {m.group(1) for k in sd if isinstance(k, str) and (m := re.match(r"to_rgbs\.(\d+)\.", k))}
    return 2 ** (len(levels) + 2) if levels else None  # one ToRGB per resolution 8 ... size


def generator_max_channels(sd):
    """The width cap of a narrow generator trained with `max_channels` (the constant input's channels);
    512 (the official networks) when absent or not narrower."""
    t = sd.get("input.input")
    if isinstance(t, torch.Tensor) and t.ndim == 4 and 0 < t.shape[1] < 512:
        return int(t.shape[1])
    return 512


def _channel_multiplier(sd):
    w = sd.get("to_rgbs.3.conv.weight")  # ToRGB of the 64x64 level: [1, 3, 256·cm, 1, 1]
    if isinstance(w, torch.Tensor) and w.ndim == 5 and w.shape[2] % 256 == 0:
        return w.shape[2] // 256
    return None


# ---- pSp encoder
def psp_parts(ckpt, source, size=None):
    """(PSPEncoder state dict incl. latent_avg [n_styles, 512], n_styles, size), checked."""
    sd = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), Mapping) else ckpt
    # The original keeps keys whose first len('encoder') characters are 'encoder' and drops
    # len('encoder') + 1 characters; other prefixes are ignored.
    n = len("encoder")
    inner = {k[n + 1 :]: v for k, v in sd.items() if isinstance(k, str) and k[:n] == "encoder"}
    hint = kind_hint(ckpt, "psp_encoder")
    if not inner:
        raise CheckpointError(
            f"{source} has no 'encoder.*' pSp weights (entries: {few([str(k) for k in sd], 4)}){hint}"
        )
    blocks = {int(m.group(1)) for k in inner if (m := re.match(r"styles\.(\d+)\.", k))}
    inferred = _size_from_n_latent(max(blocks) + 1) if blocks else None
    if size is not None and inferred is not None and int(size) != inferred:
        raise CheckpointError(
            f"{source} is a pSp encoder for {inferred}x{inferred} generators ({max(blocks) + 1} "
            f"styles) but the size in use is {size} (--size / the generator's size); use the "
            f"pSp encoder that matches the generator, or --size {inferred}"
        )
    size = int(size) if size is not None else inferred
    if size is None:
        raise CheckpointError(f"{source}: cannot tell the pSp encoder's output size (no styles.* blocks){hint}")
    n_styles = n_latent_for_size(size)
    width = psp_encoder_width(inner, prefix="")
    expected = _expected_shapes("psp_encoder", n_styles, width)
    narrow = f", {width} channels wide" if width != IR_SE50_WIDTH else ""
    _check_state_dict(
        {k[n + 1 :]: s for k, s in expected.items() if k.startswith("encoder.")},
        inner,
        source,
        f"a pSp encoder for {size}x{size} generators ({n_styles} styles{narrow})",
        hint,
    )
    out = {f"encoder.{k}": v for k, v in inner.items()}
    out["latent_avg"] = _psp_latent_avg(ckpt, n_styles, source)
    return out, n_styles, size


def _psp_latent_avg(ckpt, n_styles, source):
    la = ckpt.get("latent_avg")
    if not isinstance(la, torch.Tensor):
        raise CheckpointError(
            f"{source} has no 'latent_avg' tensor; the pSp codes are offsets from it, so the "
            f"file is incomplete (expected shape [{n_styles}, 512]); {how_to_redownload(source)}"
        )
    shape = list(la.shape)
    if shape in ([n_styles, 512], [1, 512], [512]):
        return la.reshape(-1, 512).expand(n_styles, 512)  # broadcasts like the original's .repeat(N, 1, 1)
    raise CheckpointError(f"{source}: latent_avg has shape {shape}; expected [{n_styles}, 512], [1, 512] or [512]")


# ---- style encoder
def style_parts(ckpt, source):
    """The StyleEncoder state dict (keys without the generator's `embedder.` prefix), checked."""
    if isinstance(ckpt.get("g_ema"), Mapping):
        sd = ckpt["g_ema"]
    elif isinstance(ckpt.get("state_dict"), Mapping):
        sd = ckpt["state_dict"]
    elif isinstance(ckpt.get("embedder"), Mapping):
        sd = ckpt["embedder"]
    else:
        sd = ckpt
    # Prefixed form (as inside the generator): embedder.embedder.* and embedder.embedder_mlp.*; the bare
    # form's own keys are embedder.feature_extractor.* and embedder_mlp.*.
    if any(isinstance(k, str) and k.startswith("embedder.embedder_mlp.") for k in sd):
        sd = {k[len("embedder.") :]: v for k, v in sd.items() if isinstance(k, str) and k.startswith("embedder.")}
    hint = kind_hint(ckpt, "style_encoder") if guess_kind(ckpt) != "generator" else ""
    width = style_encoder_width(sd)
    what = "a BlendGAN style encoder" + (f" ({width} channels wide)" if width != VGG19_WIDTH else "")
    _check_state_dict(_expected_shapes("style_encoder", 0, width), sd, source, what, hint)
    return sd


def check_checkpoint(ckpt: Mapping, kind: str, source: object = "checkpoint", size: int | None = None) -> dict:
    """Check a checkpoint dict's keys and shapes for `kind` without building a model.

    Returns {'kind', 'size' (None for a style encoder), 'n_tensors'}; raises CheckpointError otherwise.
    """
    if kind == "generator":
        sd, size = generator_parts(ckpt, source, size)
    elif kind == "psp_encoder":
        sd, _, size = psp_parts(ckpt, source, size)
    elif kind == "style_encoder":
        sd, size = style_parts(ckpt, source), None
    else:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    return {"kind": kind, "size": size, "n_tensors": len(sd)}


def read_truncation(ckpt, source):
    """The checkpoint's 'truncation' entry as a float (None when absent)."""
    t = ckpt.get("truncation")
    if t is None:
        return None
    try:
        return float(t)  # a float, an int or a one-element tensor
    except (TypeError, ValueError, RuntimeError):
        raise CheckpointError(
            f"{source}: its 'truncation' entry ({type(t).__name__}) is not a number; {how_to_redownload(source)}"
        ) from None
