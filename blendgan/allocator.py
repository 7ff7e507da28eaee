"""Process-wide CPU memory settings that make repeated large forwards much cheaper (Linux/glibc).

A 1024 px generator forward creates ~1 GB of fresh 30-130 MB activation tensors. glibc serves blocks
that large with mmap and returns them with munmap, so every call faults all of that memory in again,
page by page, zero-filled by the kernel (page faults and kernel time measured: docs/speed.md, "Figures behind
code comments").
`reuse_freed_memory()` keeps freed blocks in the heap for the next call instead (no faults after the
first call).
The cost: the process's resident memory stays at its peak until it exits, so call it from programs
that generate (the command-line tools, the benchmark), not from a library import.

`THP_MEM_ALLOC_ENABLE=1` in the environment before PyTorch's first allocation (transparent huge pages
for large tensors) is an alternative with a smaller gain (~0.93 s) that does not pin memory.
"""

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = None


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def reuse_freed_memory():
    """Tell glibc malloc to serve large blocks from the heap and never trim it (M_MMAP_MAX = 0,
    M_TRIM_THRESHOLD = INT_MAX). Idempotent; returns True if applied, False where unavailable
    (not Linux/glibc)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    try:
        mallopt = _libc().mallopt
    except AttributeError:  # no libc found, or musl and other libcs without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # the value is a C int: 2**31 - 1 bytes is the largest trim threshold that can be passed
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied


def release_freed_memory():
    """Give the heap's free memory back to the OS now (glibc malloc_trim), e.g. after a batch job when
    `reuse_freed_memory` is on. Returns True if the call was made."""
    try:
        trim = _libc().malloc_trim
    except AttributeError:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


_MADV_PAGEOUT = 21  # Linux >= 5.4


def page_out(tensors):
    """Ask the kernel to reclaim the pages of these CPU tensors now (madvise MADV_PAGEOUT).

    Contents never change: pages of a memory-mapped checkpoint are dropped and read again from the
    file if the tensor is used later; anonymous pages go to swap, or stay where there is none. For
    weights that a job no longer needs (e.g. the style encoder once every style code is made).
    Returns the number of bytes advised (0 where unavailable)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "madvise"):
        return 0
    import mmap

    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    page = mmap.PAGESIZE
    done = 0
    for t in tensors:
        if t.device.type != "cpu" or t.numel() * t.element_size() < page:
            continue
        start = t.data_ptr()
        end = start + t.numel() * t.element_size()
        first, last = -(-start // page) * page, end // page * page  # whole pages inside the tensor only
        if last > first and libc.madvise(first, last - first, _MADV_PAGEOUT) == 0:
            done += last - first
    return done
