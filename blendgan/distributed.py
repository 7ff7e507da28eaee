"""Running one command or trainer on many processes with `torchrun` (one process per GPU).

Without `torchrun` everything here is a no-op on a single process, so callers do not branch:

    ctx = distributed.setup("auto")          # reads RANK / WORLD_SIZE / LOCAL_RANK set by torchrun
    mine = distributed.interleave(range(n), ctx.rank, ctx.world_size)
    ...
    total = ctx.all_reduce_sum([done, failed])
    ctx.barrier()
    ctx.close()

Processes talk through `torch.distributed` (gloo on CPU, nccl on CUDA, initialised from the
environment `torchrun` sets). The trainers' part (DDP wrapping, reductions of tensors and objects) is at the
end. Nothing heavy is imported at module import time.
"""

import os
from dataclasses import dataclass, field


def launched_world():
    """(rank, world_size, local_rank) from the torchrun environment, (0, 1, 0) when not launched by it."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0, 1, 0
    if world < 1 or not 0 <= rank < world:
        return 0, 1, 0
    return rank, world, local


#: seconds a collective may wait before the process group gives up (`BLENDGAN_DIST_TIMEOUT` to change it). Set
#: explicitly because PyTorch's defaults differ by backend (NCCL 10 min, gloo 30 min). The jobs keep every
#: collective away from work that grows with the input (a video's processes wait for each other's parts by
#: watching the work folder), so this bounds only short steps: preparing a folder, summing counts.
TIMEOUT_ENV = "BLENDGAN_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 1800.0


def process_group_timeout() -> float:
    """The process group's timeout in seconds: `$BLENDGAN_DIST_TIMEOUT`, else `DEFAULT_TIMEOUT`."""
    from .errors import UsageError

    value = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"${TIMEOUT_ENV}={value!r}: give the process group's timeout in seconds (> 0)")
    return seconds


def interleave(items, rank, world_size):
    """This rank's share of `items`: every world_size-th one starting at `rank` (a round-robin deal)."""
    return list(items)[rank::world_size]


@dataclass
class Context:
    """Where this process stands: its rank, the number of processes, the device it owns."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: object = None
    backend: str = None
    _group_owned: bool = field(default=False, repr=False)

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1

    def all_reduce_sum(self, values):
        """Element-wise sum of a list of ints over all ranks (every rank must call it the same number of times)."""
        if not self.distributed:
            return [int(v) for v in values]
        import torch
        import torch.distributed as dist

        where = self.device if self.backend == "nccl" else "cpu"
        t = torch.tensor([int(v) for v in values], dtype=torch.int64, device=where)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [int(v) for v in t.cpu().tolist()]

    def all_reduce_max(self, value):
        """The largest of one int over all ranks."""
        if not self.distributed:
            return int(value)
        import torch
        import torch.distributed as dist

        where = self.device if self.backend == "nccl" else "cpu"
        t = torch.tensor([int(value)], dtype=torch.int64, device=where)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def barrier(self):
        if self.distributed:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def close(self):
        """Tear down the process group this context created (idempotent)."""
        if self._group_owned:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._group_owned = False


def setup(device="auto"):
    """Context for this process; under torchrun also initialises the default process group.

    `device` is the user's --device: with several processes, 'auto'/'cuda' become cuda:LOCAL_RANK (one
    GPU per process) and the backend is nccl; on CPU the backend is gloo. Single process: the device
    is resolved as usual and nothing is initialised."""
    from .devices import resolve_device

    rank, world, local = launched_world()
    if world == 1:
        return Context(device=resolve_device(device))
    import torch
    import torch.distributed as dist

    name = (device or "auto").lower()
    if name in ("auto", "cuda") and torch.cuda.is_available():
        resolved = torch.device("cuda", local % torch.cuda.device_count())
    elif name == "auto":
        resolved = torch.device("cpu")
    else:
        resolved = resolve_device(name)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    owned = False
    if not dist.is_initialized():
        import datetime

        kwargs = {"device_id": resolved} if backend == "nccl" else {}
        timeout = datetime.timedelta(seconds=process_group_timeout())
        dist.init_process_group(
            backend=backend, init_method="env://", rank=rank, world_size=world, timeout=timeout, **kwargs
        )
        owned = True
    return Context(rank=rank, world_size=world, local_rank=local, device=resolved, backend=backend, _group_owned=owned)


# ----------------------------------------------------------------------------- trainers
def init(device="auto"):
    """Context for this process (`blendgan.distributed.Context`); joins the process group under torchrun.
    'auto' trains on CUDA when there is a GPU, else on the CPU."""
    import torch

    if device == "auto" and not torch.cuda.is_available():
        device = "cpu"
    return setup(device)


def barrier(ctx):
    ctx.barrier()


def all_reduce_mean_(tensor, ctx):
    """In place: the mean over processes (identity for one process)."""
    if ctx.distributed:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= ctx.world_size
    return tensor


def mean_of(values, ctx, device):
    """{name: float} -> the same names with the mean over processes (one all-reduce)."""
    if not values:
        return {}
    import torch

    names = sorted(values)
    t = torch.tensor([float(values[k]) for k in names], dtype=torch.float64, device=device)
    all_reduce_mean_(t, ctx)
    return dict(zip(names, t.tolist()))


def wrap(module, ctx, find_unused_parameters=False):
    """`module` in DistributedDataParallel when several processes train, the module itself on one.

    Call the wrapper (its forward) for every pass whose backward must be averaged over processes: DDP
    averages each parameter's gradient during that backward (bucketed all-reduces, NCCL or gloo). Its
    construction makes every process start from rank 0's parameters. Buffers are not
    re-broadcast before each forward (noise maps are constants; BatchNorm statistics are frozen). Passes
    that must not synchronise (frozen networks, sampling) call the inner module (`unwrap`). Every
    parameter that requires grad must receive a gradient in the backward of each wrapper forward, or be
    absent from that forward's graph with `find_unused_parameters=True`."""
    if not ctx.distributed:
        return module
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # torch >= 2.13 names the per-forward buffer broadcast `forward_sync_buffers` (`broadcast_buffers` before)
    names = inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers" if "forward_sync_buffers" in names else "broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters, **no_sync)


def unwrap(module):
    """The module inside a DistributedDataParallel wrapper (the module itself when not wrapped)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


def broadcast_params(module, ctx):
    """Make every process start from rank 0's parameters and buffers."""
    if ctx.distributed:
        import torch.distributed as dist

        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def all_gather_objects(obj, ctx):
    """[obj of rank 0, obj of rank 1, ...] (a one-element list for one process)."""
    if not ctx.distributed:
        return [obj]
    import torch.distributed as dist

    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, ctx):
    """Rank 0's `obj` on every process."""
    if not ctx.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
