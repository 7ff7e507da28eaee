"""Work shared over torchrun processes with results that do not depend on the number of processes.

Items are cut into global batches of a fixed size; batch b belongs to rank b % world_size. Every batch is thus
computed with the same composition whatever the number of processes (a network's output can depend on the batch
it is computed in), and the rows are put back in item order by summing zero-filled matrices across ranks, which
is exact (x + 0 = x). Rows of items that failed are NaN. Everything after the gather runs on every rank on the
same matrix, so 1 or N processes give the same numbers.
"""

import sys

import numpy as np

from ..errors import InputImageError


def my_batches(n_items, batch, ctx):
    """[(start, stop)] of the global batches this rank computes."""
    starts = range(0, n_items, batch)
    return [(s, min(s + batch, n_items)) for k, s in enumerate(starts) if k % ctx.world_size == ctx.rank]


def all_sum(array, ctx):
    """Element-wise sum of a float64 array over all ranks (the array itself on one process)."""
    if not ctx.distributed:
        return array
    import torch
    import torch.distributed as dist

    where = ctx.device if ctx.backend == "nccl" else "cpu"
    t = torch.from_numpy(np.ascontiguousarray(array, np.float64)).to(where)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def map_rows(load, compute, items, ctx, batch=16, label="", log=None, progress=None):
    """Rows of every item, gathered on every rank: float64 [len(items), D].

    Per global batch: `load(item)` each item (an InputImageError skips that item, reported once by the rank
    that met it; its row is NaN), then `compute(list of loaded) -> [n, D]` on the good ones."""
    rows = {}
    dim = 0
    for a, b in my_batches(len(items), batch, ctx):
        loaded = {}
        for i in range(a, b):
            try:
                loaded[i] = load(items[i])
            except InputImageError as err:
                rows[i] = None
                print(f"skipped{' (' + label + ')' if label else ''}: {err}", file=log or sys.stderr)
        if loaded:
            out = np.asarray(compute(list(loaded.values())), np.float64)
            rows.update(zip(loaded, out))
            dim = out.shape[1]
        if progress is not None:
            progress(b - a)
    dim = ctx.all_reduce_max(dim)  # a rank without rows (fewer batches than ranks) knows no D
    out = np.zeros((len(items), dim), np.float64)
    for i, r in rows.items():
        out[i] = np.nan if r is None else r
    return all_sum(out, ctx)
