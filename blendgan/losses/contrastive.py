"""Contrastive objective of the self-supervised style encoder (SimCLR's NT-Xent) and its batch metrics.

Two views of each artwork give codes z1[i], z2[i]; each of the 2N projections must pick out its partner
among the other 2N - 1 (cosine similarity / temperature, cross-entropy). Under torch.distributed the
projections of every rank are gathered first (`gather_with_grad`), so the negatives of R ranks with B
artworks each are exactly those of one batch of R * B.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _similarities(z1, z2):
    """Cosine similarities of the 2N stacked views [2N, 2N] and each row's partner index."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t()
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(sim.device)
    return sim, partner


def nt_xent(z1, z2, temperature=0.1):
    """NT-Xent loss (Chen et al. 2020, SimCLR): mean over the 2N views of
    -log( exp(s(i, partner)/t) / sum_{k != i} exp(s(i, k)/t) ), s = cosine similarity."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent needs two [N, D] tensors of one shape, got {list(z1.shape)}, {list(z2.shape)}")
    sim, partner = _similarities(z1, z2)
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    logits = (sim / temperature).masked_fill(eye, float("-inf"))  # a view is never its own negative
    return F.cross_entropy(logits, partner)


@torch.no_grad()
def retrieval_top1(z1, z2):
    """Fraction of the 2N views whose most similar other view (cosine) is their partner.
    Chance level is 1 / (2N - 1)."""
    sim, partner = _similarities(z1.float(), z2.float())
    sim.fill_diagonal_(float("-inf"))
    return (sim.argmax(dim=1) == partner).float().mean().item()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums each slice's gradient over the ranks (the semantics of
    torch.distributed.nn.functional.all_gather, written out so it needs nothing beyond all_gather and
    all_reduce, which every backend has, gloo included)."""

    @staticmethod
    def forward(ctx, x):
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x):
    """Concatenate `x` [B, ...] of all ranks in rank order (every rank must hold the same B); gradients
    flow back to every rank's own slice. Without an initialised process group it returns `x`.

    If every rank computes the same loss L on the gathered tensor and parameter gradients are then
    averaged over the ranks (as DDP does), each parameter receives exactly dL/dθ: rank r's slice gets
    R · dL/dz_r here, and the average over R ranks of R · dL/dθ_r sums to the full gradient."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)
