"""`.safetensors` files: memory-mapped reading and 64-byte-aligned writing.

The format (https://github.com/huggingface/safetensors#format): a little-endian u64 header length N, N
bytes of JSON mapping each tensor name to its dtype, shape and [begin, end) byte range in the data that
follow (plus an optional string-to-string `__metadata__`), then the raw little-endian tensor data, with
the ranges covering the data exactly: no gaps, no overlaps.

Reading validates the header the way the safetensors library does (the tests hold the two to the same
verdicts, valid and damaged files alike), maps the file once copy-on-write, and makes every tensor a view
of that mapping: nothing is read from disk until it is used and writes never reach the file. The library's
own reader pages in the first block of every tensor (resident memory and cold-cache time compared in
docs/speed.md, "Figures behind code comments"), and this is one compiled dependency less.
"""

import json
import math
import mmap
import os
from pathlib import Path

import torch

from ..io.files import open_atomic

ALIGN = 64  # bytes; torch.save aligns tensor data the same way
MAX_HEADER = 100 * 1000 * 1000  # bytes; the library's limit

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


class SafetensorsFormatError(ValueError):
    """The file is not a valid safetensors file; the message says why."""


def read_header(path):
    """(header, data_start): the validated JSON header (`__metadata__` included) and the offset of the data."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsFormatError(f"the file has {size} bytes, too short for a header")
        n = int.from_bytes(head, "little")
        if n > min(MAX_HEADER, size - 8):
            raise SafetensorsFormatError(f"the header length {n} runs past the end of the file ({size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise SafetensorsFormatError(f"the header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise SafetensorsFormatError("the header is not a JSON object")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise SafetensorsFormatError("__metadata__ is not a map of strings")
    _check_ranges({k: v for k, v in header.items() if k != "__metadata__"}, size - 8 - n)
    return header, 8 + n


def _check_ranges(entries, data_bytes):
    ranges = []
    for name, e in entries.items():
        ok = (
            isinstance(e, dict)
            and isinstance(e.get("dtype"), str)
            and isinstance(e.get("shape"), list)
            and all(isinstance(d, int) and d >= 0 for d in e["shape"])
            and isinstance(e.get("data_offsets"), list)
            and len(e["data_offsets"]) == 2
            and all(isinstance(o, int) for o in e["data_offsets"])
        )
        if not ok:
            raise SafetensorsFormatError(f"tensor {name!r}: needs dtype, shape and data_offsets [begin, end]")
        if e["dtype"] not in DTYPES:
            raise SafetensorsFormatError(
                f"tensor {name!r}: dtype {e['dtype']} is not supported (only {', '.join(DTYPES)})"
            )
        begin, end = e["data_offsets"]
        need = math.prod(e["shape"]) * DTYPES[e["dtype"]].itemsize
        if end - begin != need:
            raise SafetensorsFormatError(
                f"tensor {name!r}: data_offsets span {end - begin} bytes but dtype "
                f"{e['dtype']} and shape {e['shape']} need {need}"
            )
        ranges.append((begin, end, name))
    covered = 0
    for begin, end, name in sorted(ranges):
        if begin != covered:
            raise SafetensorsFormatError(
                f"tensor {name!r}: data_offsets start at {begin}, expected {covered} "
                "(tensor data must follow each other without gaps or overlaps)"
            )
        covered = end
    if covered != data_bytes:
        raise SafetensorsFormatError(
            f"the tensors cover {covered} bytes of data but the file holds {data_bytes} (truncated or padded)"
        )


def metadata(path):
    """The file's `__metadata__` dict ({} when it has none)."""
    return read_header(path)[0].get("__metadata__", {})


def read(path):
    """(tensors, metadata) of a safetensors file; tensors are CPU views of one copy-on-write mapping."""
    header, start = read_header(path)
    meta = header.pop("__metadata__", {})
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # the views keep it alive
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        dtype, at = DTYPES[e["dtype"]], start + begin
        if end == begin:
            tensors[name] = torch.empty(e["shape"], dtype=dtype)
            continue
        if at % dtype.itemsize:  # legal in the format, but a tensor cannot start there: copy it out
            tensors[name] = torch.frombuffer(bytearray(mapping[at : start + end]), dtype=dtype).view(e["shape"])
        else:
            tensors[name] = torch.frombuffer(
                mapping, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=at
            ).view(e["shape"])
    return tensors, meta


def write(tensors, meta, dest):
    """Write `tensors` (name -> CPU tensor) and `meta` (str -> str) as a standard safetensors file, atomically.

    The library packs tensors back to back, so once memory-mapped most of them sit at addresses that are
    not 64-byte aligned, and some CPU kernels then sum in a different order (float32 outputs differ in the
    last bits from the .pt). Here the header is padded to a multiple of 64 bytes and every tensor whose size
    is a multiple of 64 bytes comes first, so all of them start on 64-byte boundaries; only the few tiny
    ones after them (biases of 3 values, the blending weights) do not, and they are used elementwise. The
    result is an ordinary safetensors file that the library reads too.
    """
    order = sorted(tensors, key=lambda k: tensors[k].numel() * tensors[k].element_size() % ALIGN != 0)
    header, offset = {"__metadata__": dict(meta)}, 0
    for k in order:
        t = tensors[k]
        if t.dtype not in DTYPE_NAMES:
            raise SafetensorsFormatError(f"{k}: dtype {t.dtype} cannot be stored in a safetensors file")
        n = t.numel() * t.element_size()
        header[k] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-(8 + len(head)) % ALIGN)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open_atomic(dest) as f:
        f.write(len(head).to_bytes(8, "little") + head)
        for k in order:
            if tensors[k].numel():
                data = tensors[k].detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                f.write(memoryview(data.numpy()))  # no copy
    return dest
