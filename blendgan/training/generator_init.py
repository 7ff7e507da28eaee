"""Where the generator trainer's networks come from: random StyleGAN2 initialisation, a rosinality
StyleGAN2 checkpoint (`g` / `g_ema` / `d`), an existing `blendgan.pt` (fine-tuning) or one of our training
snapshots; and the frozen style encoder (`--style_encoder_ckpt`, or the `embedder.*` of the --init file)."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from .. import weights
from ..errors import CheckpointError, UsageError
from ..models import Generator
from ..models.discriminator import Discriminator, ProjectionDiscriminator

D_NAMES = ("d_face", "d_style", "d_style_latent")
EMBEDDER_PREFIX = "embedder."


def build_generator(cfg):
    """The trained generator: BlendGAN's layout without the frozen style encoder (no `embedder.*`)."""
    return Generator(
        cfg.size, channel_multiplier=cfg.channel_multiplier, max_channels=cfg.max_channels, with_style_encoder=False
    )


def build_discriminators(cfg):
    kw = dict(channel_multiplier=cfg.channel_multiplier, max_channels=cfg.max_channels)
    return {
        "d_face": Discriminator(cfg.size, **kw),
        "d_style": Discriminator(cfg.size, **kw),
        "d_style_latent": ProjectionDiscriminator(cfg.size, **kw),
    }


@dataclass
class InitWeights:
    """State dicts to start from (None: keep the random initialisation)."""

    kind: str = "random"  # random | stylegan2 | blendgan | snapshot
    g: dict = None
    g_ema: dict = None
    d: dict = field(default_factory=dict)  # name -> state dict (strict) ...
    d_trunk: dict = field(default_factory=dict)  # ... or name -> partial state dict (trunk only)
    checkpoint: Mapping = None  # the file's dict (for the style encoder)


def without_embedder(sd):
    return {k: v for k, v in sd.items() if not k.startswith(EMBEDDER_PREFIX)}


def _describe(sd):
    levels = {m.group(1) for k in sd if isinstance(k, str) and (m := re.match(r"to_rgbs\.(\d+)\.", k))}
    size = 2 ** (len(levels) + 2) if levels else None
    t = sd.get("input.input")
    width = int(t.shape[1]) if isinstance(t, torch.Tensor) and t.ndim == 4 else None
    return size, width


def _check_generator(sd, cfg, source, optional=()):
    size, width = _describe(sd)
    if size is not None and size != cfg.size:
        raise CheckpointError(
            f"{source} holds a {size}x{size} generator but --size {cfg.size} was given; "
            f"pass --size {size} (or an --init checkpoint of size {cfg.size})"
        )
    if width is not None and width != min(512, cfg.max_channels):
        raise CheckpointError(
            f"{source} holds a generator {width} channels wide but --max_channels "
            f"{cfg.max_channels} was given; pass --max_channels {width}"
        )
    with torch.device("meta"):
        expected = build_generator(cfg).state_dict()
    missing = [k for k in expected if k not in sd and not k.startswith(optional)]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        what = (
            f"{len(missing)} missing ({', '.join(missing[:3])})"
            if missing
            else f"{len(wrong)} of the wrong shape ({', '.join(wrong[:3])}); --channel_multiplier?"
        )
        raise CheckpointError(
            f"{source} does not hold a {cfg.size}x{cfg.size} StyleGAN2/BlendGAN generator: entries {what}"
        )


def load_init(cfg):
    """InitWeights for cfg.init (random when empty); one-line CheckpointError for a wrong kind or size."""
    if not cfg.init:
        return InitWeights()
    ckpt = weights.read_checkpoint(cfg.init, prefer_safetensors=False)
    src = cfg.init
    g_ema = ckpt.get("g_ema")
    if not isinstance(g_ema, Mapping):
        kind = weights.guess_kind(ckpt)
        raise CheckpointError(
            f"{src} is not a StyleGAN2 or BlendGAN generator checkpoint (no 'g_ema'; it looks "
            f"like: {kind}); --init takes rosinality's StyleGAN2 .pt (g/g_ema/d) or a blendgan.pt"
        )
    if ckpt.get("format", "").startswith("blendgan-training-snapshot"):
        kind = "snapshot"
    elif "add_weight" in g_ema:
        kind = "blendgan"
    else:
        kind = "stylegan2"
    g_sd = ckpt.get("g") if isinstance(ckpt.get("g"), Mapping) else g_ema
    init = InitWeights(kind=kind, checkpoint=ckpt)
    if kind == "stylegan2":
        # new parts: add_weight = 1 (pure face); the style mapping `embedding` copies `style` or stays random
        for name in ("g", "g_ema"):
            sd = dict(g_sd if name == "g" else g_ema)
            _check_generator(sd, cfg, src, optional=("add_weight", "embedding."))
            sd["add_weight"] = torch.ones(1, 2 * cfg.size.bit_length() - 4, 1)
            if cfg.init_embedding == "copy":
                sd.update({"embedding." + k[len("style.") :]: v for k, v in sd.items() if k.startswith("style.")})
            setattr(init, name, sd)
        d = ckpt.get("d")
        if isinstance(d, Mapping):
            init.d = {"d_face": dict(d), "d_style": dict(d)}
            init.d_trunk = {"d_style_latent": {k: v for k, v in d.items() if not k.startswith("final_linear.")}}
        return init
    init.g, init.g_ema = without_embedder(g_sd), without_embedder(g_ema)
    for name in ("g", "g_ema"):
        _check_generator(getattr(init, name), cfg, src)
    if kind == "snapshot":
        init.d = {n: ckpt[n] for n in D_NAMES if isinstance(ckpt.get(n), Mapping)}
    return init


def apply_init(init, g, g_ema, discriminators, source="--init"):
    """Load InitWeights into freshly built modules (strict where whole, partial for a trunk)."""

    def load(module, sd, strict=True):
        try:
            result = module.load_state_dict(sd, strict=strict)
        except RuntimeError as err:
            raise CheckpointError(
                f"{source}: weights do not fit ({str(err).splitlines()[0][:200]}); "
                "check --size, --channel_multiplier and --max_channels"
            ) from None
        return result

    if init.g is not None:
        for module, sd in ((g, init.g), (g_ema, init.g_ema)):
            result = load(module, sd, strict=init.kind != "stylegan2")
            if init.kind == "stylegan2":  # only the new `embedding` may stay random
                left = [k for k in result.missing_keys if not k.startswith("embedding.")] + result.unexpected_keys
                if left:
                    raise CheckpointError(f"{source}: entries that do not fit a StyleGAN2 generator: {left[:3]}")
    for name, sd in init.d.items():
        load(discriminators[name], sd)
    for name, sd in init.d_trunk.items():
        load(discriminators[name], sd, strict=False)


def load_style_encoder(cfg, init):
    """The frozen style encoder, in the file's dtypes (memory-mapped; a low-precision style matrix stays
    low-precision): --style_encoder_ckpt, else the `embedder.*` entries of the --init file."""
    if cfg.style_encoder_ckpt:
        enc = weights.load_style_encoder(cfg.style_encoder_ckpt, dtype=None)
    elif init.checkpoint is not None and init.kind != "stylegan2":
        enc = weights.style_encoder_from_checkpoint(init.checkpoint, source=cfg.init, dtype=None)
    else:
        why = f"{cfg.init} is a plain StyleGAN2 checkpoint without one" if cfg.init else "no --init was given"
        raise UsageError(
            f"the frozen style encoder is needed and {why}: pass --style_encoder_ckpt "
            "style_encoder.pt (or a blendgan.pt)"
        )
    return enc.eval().requires_grad_(False)


def inference_state_dict(g_ema, embedder):
    """g_ema's state dict with the style encoder under `embedder.`, in the original key order (blendgan.pt)."""
    sd = g_ema.state_dict()
    out = {"add_weight": sd["add_weight"]}
    out.update({EMBEDDER_PREFIX + k: v for k, v in embedder.state_dict().items()})
    out.update({k: v for k, v in sd.items() if k != "add_weight"})
    return out
