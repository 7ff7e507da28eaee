"""Low-rank style adapters (LoRA) on the generator's synthesis convolutions, and their files.

Which weights adapt, and why: BlendGAN already moves a style in code space (the style code z_s, its
mapping MLP and the WBM blend, all shared by every style); a reference the encoder cannot reach needs
textures and strokes that no code produces (BlendGAN supplement, failure cases), and those live in the
synthesis convolutions (JoJoGAN fine-tunes exactly these weights for that reason). So an adapter is a
low-rank change dW = B A of each modulated convolution's weight [out, in, k, k] (as an out x in*k*k
matrix; the 1x1 ToRGB convolutions too), the mapping networks and the modulations stay as trained. B starts
at zero (LoRA, Hu et al. 2021), so an adapter at step 0, or at scale 0, is the base model exactly.

Applying an adapter merges W + scale * B A into the weights at load, before the pipeline derives its
inference buffers: generation then costs what the base model costs, and `blendgan export --adapter` writes
the same merged weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError

FORMAT = "blendgan-style-adapter"
VERSION = "1"
# tensors whose bytes identify a base generator (cheap to hash at every load, unlike the 1.47 GB file); none
# of them is changed by an adapter, so a generator with adapters merged still has its base's fingerprint
FINGERPRINT_KEYS = (
    "add_weight",
    "input.input",
    "style.1.weight",
    "embedding.1.weight",
    "embedding.8.weight",
    "conv1.conv.modulation.weight",
)


def adaptable_layers(generator: nn.Module) -> list[str]:
    """Names of the generator's modulated convolutions in synthesis order (`conv1.conv`, `to_rgb1.conv`,
    `convs.0.conv`, ..., `to_rgbs.N.conv`)."""
    names = ["conv1.conv", "to_rgb1.conv"]
    for j in range(len(generator.to_rgbs)):
        names += [f"convs.{2 * j}.conv", f"convs.{2 * j + 1}.conv", f"to_rgbs.{j}.conv"]
    return names


def layer_resolution(name: str) -> int:
    """Output resolution of an adaptable layer (4 for conv1 / to_rgb1, then 8, 16, ...)."""
    if name in ("conv1.conv", "to_rgb1.conv"):
        return 4
    index = int(name.split(".")[1])
    block = index // 2 if name.startswith("convs.") else index
    return 2 ** (block + 3)


def select_layers(generator: nn.Module, spec: str) -> list[str]:
    """Layers named by `spec`: 'all', or resolutions 'MIN-MAX' (e.g. '32-1024': the layers whose output is
    32 ... 1024 px)."""
    names = adaptable_layers(generator)
    if spec in ("", "all"):
        return names
    try:
        low, high = (int(v) for v in spec.split("-"))
    except ValueError:
        raise UsageError(f"--layers {spec!r}: give 'all' or a range of resolutions such as 32-1024") from None
    chosen = [n for n in names if low <= layer_resolution(n) <= high]
    if not chosen:
        raise UsageError(
            f"--layers {spec!r}: no layer of the {generator.size}px generator has a resolution in that range"
        )
    return chosen


class LowRankDelta(nn.Module):
    """dW = B A reshaped to the weight [1, out, in, k, k]; A [rank, in*k*k] ~ N(0, 1/(in*k*k)), B = 0."""

    def __init__(self, weight_shape: tuple, rank: int, generator: torch.Generator | None = None):
        super().__init__()
        _, out_ch, in_ch, k, _ = weight_shape
        fan_in = in_ch * k * k
        self.shape = tuple(weight_shape)
        self.a = nn.Parameter(torch.randn(rank, fan_in, generator=generator) / fan_in**0.5)
        self.b = nn.Parameter(torch.zeros(out_ch, rank))

    def delta(self) -> torch.Tensor:
        return (self.b @ self.a).reshape(self.shape)


class _Added(nn.Module):
    """Parametrization W -> W + scale * dW (torch.nn.utils.parametrize): the layer keeps reading `self.weight`."""

    def __init__(self, lora: LowRankDelta):
        super().__init__()
        self.lora = lora
        self.scale = 1.0

    def forward(self, weight):
        if self.scale == 0:
            return weight
        return weight + (self.scale * self.lora.delta()).to(weight.dtype)


@contextlib.contextmanager
def scaled(generator: nn.Module, scale: float):
    """Temporarily apply the attached deltas at `scale` (0: the base generator), e.g. for a before/after sheet."""
    adders = [m for m in generator.modules() if isinstance(m, _Added)]
    before = [m.scale for m in adders]
    for m in adders:
        m.scale = scale
    try:
        yield
    finally:
        for m, s in zip(adders, before):
            m.scale = s


def attach(generator: nn.Module, layers: list[str], rank: int, seed: int = 0) -> nn.ModuleDict:
    """Add trainable low-rank deltas to `layers` of a (not inference-prepared) generator; returns them by
    layer name (as ModuleDict keys with '.' -> '/'). The base weights stay frozen and unchanged."""
    from torch.nn.utils import parametrize

    g = torch.Generator().manual_seed(seed)
    deltas = nn.ModuleDict()
    for name in layers:
        conv = generator.get_submodule(name)
        weight = conv.weight
        lora = LowRankDelta(tuple(weight.shape), rank, g).to(device=weight.device, dtype=torch.float32)
        parametrize.register_parametrization(conv, "weight", _Added(lora), unsafe=True)
        deltas[name.replace(".", "/")] = lora
    return deltas


def delta_tensors(deltas: nn.ModuleDict) -> dict[str, torch.Tensor]:
    """{'<layer>.lora_a': A, '<layer>.lora_b': B} as float32 CPU tensors (the adapter file's tensors)."""
    out = {}
    for key, lora in deltas.items():
        name = key.replace("/", ".")
        out[f"{name}.lora_a"] = lora.a.detach().float().cpu().contiguous()
        out[f"{name}.lora_b"] = lora.b.detach().float().cpu().contiguous()
    return out


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a few of the base generator's tensors: which checkpoint an adapter belongs to."""
    h = hashlib.sha256()
    for key in FINGERPRINT_KEYS:
        t = state.get(key)
        if t is not None:
            h.update(key.encode())
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def generator_fingerprint(generator: nn.Module) -> str:
    """The base fingerprint of a generator: recorded at load (`base_fingerprint`, before any cast to a lower
    precision), else computed from its current tensors."""
    recorded = getattr(generator, "base_fingerprint", None)
    if recorded:
        return recorded
    return fingerprint({k: v for k, v in generator.state_dict().items() if k in FINGERPRINT_KEYS})


def save_adapter(path, tensors: dict[str, torch.Tensor], meta: dict) -> int:
    """Write the adapter file (safetensors, atomically); returns its size in bytes."""
    from ..weights import safetensors_file

    meta = {
        "format": FORMAT,
        "version": VERSION,
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()},
    }
    safetensors_file.write(tensors, meta, path)
    return Path(path).stat().st_size


def read_adapter(path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of an adapter file; a file that is not one is a one-line UsageError."""
    from ..weights import safetensors_file

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--adapter {path}: file not found (make one with `blendgan fit-style`)")
    try:
        tensors, meta = safetensors_file.read(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input
        raise UsageError(
            f"--adapter {path}: not a readable safetensors file ({err}); pass the adapter.safetensors "
            "that `blendgan fit-style` wrote"
        ) from None
    if meta.get("format") != FORMAT:
        raise UsageError(
            f"--adapter {path}: not a style adapter (no '{FORMAT}' metadata); pass the "
            "adapter.safetensors that `blendgan fit-style` wrote"
        )
    return tensors, meta


def parse_adapter_flag(value: str) -> tuple[str, float]:
    """'FILE[:SCALE]' -> (file, scale); the scale defaults to 1."""
    path, scale = value, 1.0
    head, sep, tail = value.rpartition(":")
    if sep and head:
        try:
            path, scale = head, float(tail)
        except ValueError:
            path, scale = value, 1.0  # a ':' inside the path (e.g. a Windows drive)
    if not 0.0 <= scale <= 4.0:
        raise UsageError(f"--adapter {value}: the scale must lie in [0, 4] (1 = as fitted, 0 = the base model)")
    return path, scale


@torch.no_grad()
def merge_adapter(generator: nn.Module, path, scale: float = 1.0) -> dict:
    """W += scale * B A for every layer of the adapter file, in place, on a generator that is not yet
    prepared for inference. Refuses (one line) a file made for another base checkpoint. Scale 0 changes
    nothing. Returns the file's metadata."""
    tensors, meta = read_adapter(path)
    if meta.get("base_fingerprint") != generator_fingerprint(generator):
        base = meta.get("base_checkpoint", "another checkpoint")
        raise UsageError(
            f"--adapter {path}: made for another base checkpoint ({base}, sha256 "
            f"{meta.get('base_sha256', '?')[:16]}...); use it with that --ckpt"
        )
    if scale == 0:
        return meta
    layers = sorted({k.rsplit(".", 1)[0] for k in tensors})
    for name in layers:
        try:
            conv = generator.get_submodule(name)
        except AttributeError:
            raise UsageError(f"--adapter {path}: layer {name} is not in this generator") from None
        a, b = tensors[f"{name}.lora_a"], tensors[f"{name}.lora_b"]
        delta = (b.double() @ a.double()).reshape(conv.weight.shape) * scale
        conv.weight.add_(delta.to(conv.weight.dtype))
    return meta
