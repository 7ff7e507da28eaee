"""Winograd minimal-filtering 3x3 convolution, stride 1, padding 1 (Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks", 2016).

F(m x m, 3 x 3) computes an m x m output tile from an (m+2) x (m+2) input tile with (m+2)^2
multiplications per (input, output) channel pair instead of 9 m^2: 2.25x fewer for F(2x2, 3x3), 4x fewer
for F(4x4, 3x3). In matrix form, per tile d and kernel g:

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

The element-wise product summed over input channels is one GEMM per transformed position, so a whole
layer is: input transform (gather tiles, one GEMM with B^T kron B^T), (m+2)^2 batched GEMMs against the
transformed weight U = G g G^T (computed once per layer, shared by all samples), output transform (one
GEMM with A^T kron A^T) whose scatter back to NHWC doubles as the epilogue (demodulation, bias).

Modulation uses the activation form of the modulated convolution: the style scales the input channels
(folded into the copy that pads the input) and the demodulation factors scale the output channels
(folded into the scatter), so the transformed weight never depends on the sample.
"""
import os

import torch

# Transform matrices (interpolation points 0, +-1, [+-2,] infinity), from Lavin & Gray (2016).
_F2 = dict(
    BT=[[1, 0, -1, 0],
        [0, 1, 1, 0],
        [0, -1, 1, 0],
        [0, 1, 0, -1]],
    G=[[1, 0, 0],
       [1 / 2, 1 / 2, 1 / 2],
       [1 / 2, -1 / 2, 1 / 2],
       [0, 0, 1]],
    AT=[[1, 1, 1, 0],
        [0, 1, -1, -1]],
)
_F4 = dict(
    BT=[[4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1]],
    G=[[1 / 4, 0, 0],
       [-1 / 6, -1 / 6, -1 / 6],
       [-1 / 6, 1 / 6, -1 / 6],
       [1 / 24, 1 / 12, 1 / 6],
       [1 / 24, -1 / 12, 1 / 6],
       [0, 0, 1]],
    AT=[[1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1]],
)
TRANSFORMS = {2: _F2, 4: _F4}


def transform_matrices(m, dtype=torch.float64, device="cpu"):
    """(BT [a, a], G [a, 3], AT [m, a]) of F(m, 3), a = m + 2."""
    t = TRANSFORMS[m]
    return tuple(torch.tensor(t[k], dtype=dtype, device=device) for k in ("BT", "G", "AT"))


def _kron(a):
    return torch.kron(a, a)


def weight_transform(weight, m):
    """U = G g G^T of a [out, in, 3, 3] weight, as [(m+2)^2, in, out] (the GEMMs' right-hand side),
    computed in float64 and returned in the weight's dtype."""
    out_ch, in_ch = weight.shape[:2]
    _, g, _ = transform_matrices(m, device=weight.device)
    w = weight.to(torch.float64).permute(2, 3, 1, 0).reshape(9, in_ch * out_ch)  # [(kh, kw), (in, out)]
    return (_kron(g) @ w).reshape(-1, in_ch, out_ch).to(weight.dtype)


def _rows(matrix):
    """Each row of a small transform matrix as [(coefficient, column), ...] over its non-zeros, a term
    with coefficient 1 first where there is one (it starts the sum without a multiplication)."""
    rows = []
    for r in matrix.tolist():
        terms = [(c, j) for j, c in enumerate(r) if c != 0]
        terms.sort(key=lambda t: t[0] != 1)
        rows.append(terms)
    return rows


def _apply(rows, src, dst):
    """dst[i] = sum_j rows[i][j] * src[j] for lists of equally shaped (strided) views; one pass per term."""
    for terms, out in zip(rows, dst):
        (c0, j0), rest = terms[0], terms[1:]
        if not rest:
            torch.mul(src[j0], c0, out=out)
            continue
        c1, j1 = rest[0]
        if c0 == 1:
            torch.add(src[j0], src[j1], alpha=c1, out=out)
        else:
            torch.mul(src[j0], c0, out=out)
            out.add_(src[j1], alpha=c1)
        for c, j in rest[1:]:
            out.add_(src[j], alpha=c)


CHUNK_ELEMENTS = 1 << 19  # transformed input per chunk (~2 MB in float32): a chunk's passes stay in a core's cache


class _Workers:
    """Threads that each run whole chunks with single-threaded ops (torch's thread count is a per-thread
    setting). The transforms are ~40 small element-wise passes per chunk; run as parallel ops, each
    would end in a barrier of all threads, which a busy machine stalls; chunks per thread have none."""

    def __init__(self):
        self.pool, self.size = None, 0

    def get(self, size):
        if self.pool is None or self.size != size:
            from concurrent.futures import ThreadPoolExecutor

            if self.pool is not None:
                self.pool.shutdown(wait=True)
            self.pool = ThreadPoolExecutor(size, thread_name_prefix="winograd",
                                           initializer=lambda: torch.set_num_threads(1))
            self.size = size
        return self.pool


_WORKERS = _Workers()


def winograd_conv3x3(x, u, m, *, in_scale=None, out_scale=None, bias=None, fold_into_weight=None, threads=None):
    """3x3 convolution, stride 1, padding 1, of x [N, in, H, W] with the transformed weight `u`
    ([(m+2)^2, in, out], see `weight_transform`).

    Optional per-sample factors: `in_scale` [N, in] multiplies the input channels, `out_scale` [N, out]
    the output channels, then `bias` [out] is added. They are folded into a per-sample copy of `u` when
    that is smaller than one sample's activations (`fold_into_weight`, default: decided by size), else
    into the copy that pads the input and into the output. Returns [N, out, H, W] in channels-last
    memory format. Samples run one after another, each in chunks of tile rows shared out over
    `threads` worker threads (default: torch's thread count) so that a chunk's transforms stay in one
    core's cache; a sample's result depends neither on the batch it came in nor on the thread count. Not differentiable
    (writes through out=): callers use a direct convolution under autograd.
    """
    n, c, h, w = x.shape
    a = m + 2
    o = u.shape[2]
    dtype, dev = x.dtype, x.device
    th, tw = -(-h // m), -(-w // m)
    if fold_into_weight is None:
        fold_into_weight = u.numel() <= c * h * w
    if not fold_into_weight or (in_scale is None and out_scale is None):
        fold_into_weight = False
    in_scale = None if in_scale is None else in_scale.to(dtype)
    out_scale = None if out_scale is None else out_scale.to(dtype)
    bias = None if bias is None else bias.to(dtype)
    threads = max(1, threads or torch.get_num_threads())
    # The chunk size depends only on the layer's shape, never on the thread count, and every chunk
    # runs on a worker with single-threaded ops: each GEMM then has the same shape and rounding
    # whatever the number of threads (images identical for 1 process x 2 threads and 2 x 1).
    tr = max(1, min(th, CHUNK_ELEMENTS // (a * a * tw * max(c, o))))
    chunks = [(t0, min(tr, th - t0)) for t0 in range(0, th, tr)]
    threads = min(threads, len(chunks))
    parts = [chunks[i::threads] for i in range(threads)]

    def buffers():
        return dict(r=torch.empty((a, tr, m * tw + 2, c), dtype=dtype, device=dev),
                    v=torch.empty((a, a, tr, tw, c), dtype=dtype, device=dev),
                    p=torch.empty((a * a, tr * tw, o), dtype=dtype, device=dev),
                    z=torch.empty((m, a, tr, tw, o), dtype=dtype, device=dev))

    bufs = [buffers() for _ in parts]
    xp = torch.zeros((m * th + 2, m * tw + 2, c), dtype=dtype, device=dev)  # borders stay zero
    out = torch.empty((n, m * th, m * tw, o), dtype=dtype, device=dev)
    rows = (_rows(transform_matrices(m)[0]), _rows(transform_matrices(m)[2]))
    pool = _WORKERS.get(threads)
    for b in range(n):
        s_in = None if in_scale is None else in_scale[b]
        s_out = None if out_scale is None else out_scale[b]
        ub = u
        if fold_into_weight:
            if s_in is not None:
                ub = ub * s_in[None, :, None]
            if s_out is not None:
                ub = ub * s_out[None, None, :]
            s_in = s_out = None
        src = x[b].permute(1, 2, 0)
        if s_in is None:
            xp[1:h + 1, 1:w + 1].copy_(src)
        else:
            torch.mul(src, s_in, out=xp[1:h + 1, 1:w + 1])
        jobs = [(xp, ub, m, s_out, bias, out[b], bufs[i], rows, part) for i, part in enumerate(parts)]
        # grad and inference modes are per thread: the workers take the caller's
        inference = torch.is_inference_mode_enabled()
        for f in [pool.submit(_in_mode, inference, *job) for job in jobs]:
            f.result()
    if m * th != h or m * tw != w:
        out = out[:, :h, :w].contiguous()
    return out.permute(0, 3, 1, 2)


def _in_mode(inference, *job):
    with torch.inference_mode(inference), torch.no_grad():
        _chunks(*job)


def _chunks(xp, u, m, out_scale, bias, out, bufs, rows, chunks):
    """Tile-row chunks (t0, count) of one sample: padded input xp [m*th+2, m*tw+2, in] -> out [m*th, m*tw, out]."""
    a, o, c = m + 2, u.shape[2], xp.shape[2]
    tw = out.shape[1] // m
    rows_b, rows_a = rows
    for t0, k in chunks:
        r, v, z = bufs["r"][:, :k], bufs["v"][:, :, :k], bufs["z"][:, :, :k]
        # input transform B^T d B, separably: rows of the tiles, then their columns
        _apply(rows_b, [xp[m * t0 + i:m * (t0 + k) + i:m] for i in range(a)], list(r))
        _apply(rows_b, [r[..., j:j + m * tw:m, :] for j in range(a)], [v[:, i] for i in range(a)])
        # the (m+2)^2 GEMMs: every tile of the chunk against the transformed weight
        prod = torch.bmm(v.view(a * a, k * tw, c), u, out=bufs["p"][:, :k * tw]).view(a, a, k, tw, o)
        # output transform A^T M A, the columns' pass writing straight into the NHWC output
        _apply(rows_a, list(prod), list(z))
        dst = out[m * t0:m * (t0 + k)]
        cols = dst.view(k, m, tw, m, o)
        _apply(rows_a, [z[:, j] for j in range(a)], [cols[:, :, :, q].permute(1, 0, 2, 3) for q in range(m)])
        if out_scale is not None:
            dst.mul_(out_scale)
        if bias is not None:
            dst.add_(bias)


# ------------------------------------------------------------------------------------------ dispatch
# Where F(4x4, 3x3) beat oneDNN's direct convolution layer by layer on a 2-core AVX-512 CPU in float32,
# batch 1 (benchmarks/speed2.py --sections layers): 128-512 channels from 8 x 8 up. With fewer channels
# the GEMMs are too thin to pay for the transforms' passes over 2.25x the activations. Other dtypes keep
# the direct convolution: float64 gains nothing, and in bfloat16 / float16 the transforms' coefficients
# (up to 8 and 1/24) cost several bits of an already short mantissa.
#
# OFF by default: on the whole 1024 px generator the per-layer gains did not add up to a faster image
# (benchmarks/results/speed2_cpu.md). Opt in with the environment variable BLENDGAN_WINOGRAD=1 (read at
# import) or `set_enabled(True)` before the models are prepared (`prepare_for_inference` then stores the
# transformed weights; without them each call transforms the weight again).
MIN_CHANNELS = 128
MIN_SIZE = 8
TILE = 4
_enabled = [os.environ.get("BLENDGAN_WINOGRAD", "0").strip().lower() in ("1", "true", "yes", "on")]


def set_enabled(enabled):
    """Switch the Winograd path on or off process-wide; returns the old setting."""
    old, _enabled[0] = _enabled[0], bool(enabled)
    return old


def enabled():
    """Whether the Winograd path is on (BLENDGAN_WINOGRAD=1 or `set_enabled(True)`)."""
    return _enabled[0]


def choose_tile(x, weight):
    """The Winograd tile size m to use for this modulated 3x3 convolution (weight [1, out, in, k, k]),
    or None for the direct convolution."""
    n, in_ch, h, w = x.shape
    out_ch, k = weight.shape[1], weight.shape[3]
    if not _enabled[0] or k != 3 or x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    if min(in_ch, out_ch) < MIN_CHANNELS or min(h, w) < MIN_SIZE:
        return None
    return TILE


def prepared_weight(weight, upsample=False):
    """The transformed weight a modulated conv (weight [1, out, in, k, k]) would use on the Winograd
    path, to be computed once per layer (`prepare_for_inference`), or None where that path does not run
    (also while it is switched off).
    It takes 4x the weight's memory (36 instead of 9 taps)."""
    out_ch, in_ch, k = weight.shape[1], weight.shape[2], weight.shape[3]
    if not _enabled[0] or upsample or k != 3 or weight.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    if min(in_ch, out_ch) < MIN_CHANNELS:
        return None
    return weight_transform(weight[0], TILE)
