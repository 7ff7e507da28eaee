"""One process or many (torchrun) for the trainers: DDP wrapping, rank-0-only writing, reductions.

The process group is set up by `blendgan.distributed.setup` (shared with the `pairs` command): torchrun sets
RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; without them the run is a single process and
every helper here is a no-op. The backend is NCCL on CUDA and gloo on CPU.
"""
import inspect

import torch
import torch.distributed as dist

from .. import distributed as launch


def init(device="auto"):
    """Context for this process (`blendgan.distributed.Context`); joins the process group under torchrun.
    'auto' trains on CUDA when there is a GPU, else on the CPU."""
    if device == "auto" and not torch.cuda.is_available():
        device = "cpu"
    return launch.setup(device)


def run_in_process_group(train, cfg, log_file=None):
    """`train(cfg, ctx, log_file)` inside this process's group (torchrun or a single process), which is
    closed however the run ends; returns what `train` returns. Every trainer's entry point uses it."""
    ctx = init(cfg.device)
    try:
        return train(cfg, ctx, log_file)
    finally:
        ctx.close()


def barrier(ctx):
    ctx.barrier()


def all_reduce_mean_(tensor, ctx):
    """In place: the mean over processes (identity for one process)."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= ctx.world_size
    return tensor


def mean_of(values, ctx, device):
    """{name: float} -> the same names with the mean over processes (one all-reduce)."""
    if not values:
        return {}
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
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # torch >= 2.13 names the per-forward buffer broadcast `forward_sync_buffers` (`broadcast_buffers` before)
    names = inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers" if "forward_sync_buffers" in names else "broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters,
                                   **no_sync)


def unwrap(module):
    """The module inside a DistributedDataParallel wrapper (the module itself when not wrapped)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


def broadcast_params(module, ctx):
    """Make every process start from rank 0's parameters and buffers."""
    if ctx.distributed:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def all_gather_objects(obj, ctx):
    """[obj of rank 0, obj of rank 1, ...] (a one-element list for one process)."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, ctx):
    """Rank 0's `obj` on every process."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
