"""`x @ weight.T` when the weight is stored in a lower precision than the activations.

Used for the style encoder's 610304 x 512 matrix (1.25 GB in float32), which may be kept in float16 or
bfloat16 to halve its memory (`blendgan.models.prepare_for_inference(..., style_matrix_dtype=...)`).
The product is still computed in the activations' dtype: the weight is upcast one block of columns
at a time into a small reused buffer, so only the storage rounding of the weight enters the result.
"""

import torch
import torch.nn.functional as F

BLOCK_COLUMNS = 4096  # 512 x 4096 float32 = 8 MB per block


def linear_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Plain definition: upcast the whole weight, then multiply."""
    return F.linear(x, weight.to(x.dtype))


def linear(x: torch.Tensor, weight: torch.Tensor, block_columns: int = BLOCK_COLUMNS) -> torch.Tensor:
    """`F.linear(x, weight)` (no bias) for any weight dtype; x's dtype is the compute dtype.

    Batch-invariant: rows are multiplied one at a time, because BLAS picks other kernels (and so
    other rounding) for other row counts, and a sample's result must not depend on its batch."""
    if x.dim() == 2 and x.shape[0] > 1:
        return torch.cat([linear(row[None], weight, block_columns) for row in x])
    if weight.dtype == x.dtype:
        return F.linear(x, weight)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        # training (e.g. bf16 autocast activations, float32 weights): autograd keeps every block of the
        # cast weight, so the reused buffer below would be overwritten before the backward pass
        return F.linear(x, weight.to(x.dtype))
    lead, in_dim = x.shape[:-1], x.shape[-1]
    rows = x.reshape(-1, in_dim)
    out = torch.zeros(rows.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
    buf = torch.empty(weight.shape[0], min(block_columns, in_dim), dtype=x.dtype, device=x.device)
    for c in range(0, in_dim, block_columns):
        block = weight[:, c : c + block_columns]
        wb = buf[:, : block.shape[1]]
        wb.copy_(block)
        out.addmm_(rows[:, c : c + block.shape[1]], wb.t())
    return out.reshape(*lead, weight.shape[0])
