"""Measurement machinery of the benchmarks: alternating timed runs, peak memory, FLOPs, the machine's
matmul/conv ceiling, a torch.profiler summary and a Markdown report. A benchmark is then a short function
that builds its variants (callables) and hands them to `alternate`.

Importing this module imports torch; `bench.py` imports it only when it runs (its flags stay cheap).
"""

import os
import platform
import statistics
import time
from pathlib import Path

import torch

from blendgan.allocator import release_freed_memory


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    """Start a new peak-memory window (RSS high-water mark on Linux; CUDA allocator peak)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def proc_mb(path, field):
    """A kB field of a /proc file (e.g. VmHWM of /proc/self/status) in MB; None where unavailable."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = proc_mb("/proc/self/status", "VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb():
    rss = proc_mb("/proc/self/status", "VmRSS")
    return float("nan") if rss is None else rss


def rel_err(out, ref):
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def alternate(variants, device, runs, warmup=1, memory=True, peak_in_runs=False):
    """Time each callable `runs` times, interleaved, after `warmup` calls each; then (memory=True) one
    more call each for its peak memory, after handing freed heap memory back to the OS, so each
    variant's peak is its own and not memory kept from earlier work. `peak_in_runs=True` (for calls too
    long to repeat) takes the peak of the timed calls themselves instead, each after the same hand-back.

    Returns {name: (median_s, [times], last_output, peak_mb)}; median CPU seconds go to CPU_TIMES."""
    times = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    outputs, peaks = {}, {name: 0.0 if peak_in_runs else float("nan") for name in variants}
    for i in range(warmup + runs):
        for name, fn in variants.items():
            outputs.pop(name, None)
            if peak_in_runs:
                release_freed_memory()
                reset_peak(device)
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                outputs[name] = fn()
            sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                if peak_in_runs:
                    peaks[name] = max(peaks[name], peak_mb(device))
    if memory and not peak_in_runs:
        for name, fn in variants.items():
            keep = outputs.pop(name)
            release_freed_memory()
            reset_peak(device)
            with torch.inference_mode():
                fn()
            sync(device)
            peaks[name] = peak_mb(device)
            outputs[name] = keep
    CPU_TIMES.update({n: statistics.median(cpu[n]) for n in variants})
    return {n: (statistics.median(times[n]), times[n], outputs[n], peaks[n]) for n in variants}


CPU_TIMES = {}  # median process CPU seconds of the last `alternate` call, per variant


def mem_available_mb():
    available = proc_mb("/proc/meminfo", "MemAvailable")
    return float("inf") if available is None else available


def memory_allows(device, need_mb, margin_mb=2048):
    """Whether `need_mb` more resident memory fits (CPU; CUDA runs use GPU memory)."""
    return device.type != "cpu" or mem_available_mb() >= need_mb + margin_mb


def count_flops(fn):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def machine_info(device, reuse):
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical cores": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["freed memory kept for reuse (glibc mallopt, blendgan.allocator.reuse_freed_memory)"] = reuse
    info["THP_MEM_ALLOC_ENABLE"] = os.environ.get("THP_MEM_ALLOC_ENABLE")
    info["huge pages in use"] = thp_in_use()
    return info


def thp_in_use():
    """Whether a fresh 64 MB tensor landed on transparent huge pages (Linux only)."""
    try:
        before = _anon_huge_kb()
        t = torch.ones(16 * 2**20)
        after = _anon_huge_kb()
        del t
        return after > before
    except (OSError, ValueError):
        return "unknown"


def _anon_huge_kb():
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    raise ValueError("no AnonHugePages line")


def ceiling(device, dtypes):
    """GFLOP/s of a 4096^2 x 4096 matmul and a 512->512 3x3 conv on 64x64 (batch 1), median of 5."""
    rows = []
    for label, dtype in dtypes:
        a = torch.randn(4096, 4096, device=device, dtype=dtype)
        x = torch.randn(1, 512, 64, 64, device=device, dtype=dtype)
        w = torch.randn(512, 512, 3, 3, device=device, dtype=dtype)
        res = alternate(
            {"matmul": lambda: a @ a, "conv": lambda: torch.nn.functional.conv2d(x, w, padding=1)}, device, runs=5
        )
        rows.append((label, 2 * 4096**3 / res["matmul"][0] / 1e9, 2 * 9 * 512 * 512 * 64 * 64 / res["conv"][0] / 1e9))
        del a, x, w
    return rows


class Report:
    def __init__(self):
        self.lines = []

    def add(self, text=""):
        print(text, flush=True)
        self.lines.append(text)

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "|".join(" --- " for _ in header) + "|")
        for r in rows:
            self.add("| " + " | ".join(str(c) for c in r) + " |")
        self.add()

    def write(self, path):
        """Save the report as Markdown (atomically: a stopped run leaves no half table)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(self.lines) + "\n")
        os.replace(tmp, path)
        print(f"wrote {path}")


def fmt_s(x):
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def profile_self_time(fn, device, top=12):
    """Profile one call of `fn` (after one warm-up call): (total self time in us, [(kind, us)] largest first,
    [(op, input shapes, calls, us)] of the `top` ops)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode():
        fn()
        with profile(activities=acts, record_shapes=True) as prof:
            fn()
            sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages(group_by_input_shape=True) if getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in events)
    by_kind = {}
    for e in events:
        kind = classify(e)
        by_kind[kind] = by_kind.get(kind, 0) + getattr(e, attr)
    ops = sorted(events, key=lambda e: -getattr(e, attr))[:top]
    return (
        total,
        sorted(by_kind.items(), key=lambda kv: -kv[1]),
        [(e.key, short_shapes(e.input_shapes), e.count, getattr(e, attr)) for e in ops],
    )


def classify(event):
    """Coarse kind of a profiled op from its name and input shapes."""
    name, shapes = event.key, event.input_shapes or []
    w = shapes[1] if len(shapes) > 1 and isinstance(shapes[1], list) else []
    if "conv" in name or "convolution" in name:
        if len(w) == 4 and w[1] == 1 and w[2] == 4:
            return "FIR blur / upsample (depthwise 4x4)"
        # on CPU, oneDNN's plain convs show up as aten::mkldnn_convolution while transposed ones keep
        # their time in aten::_convolution itself
        if "transpose" in name or name == "aten::_convolution":
            return "transposed 3x3 conv (upsampling)"
        if len(w) == 4 and w[2] == 1:
            return "1x1 conv (ToRGB)"
        return "3x3 conv"
    if name in (
        "aten::add_",
        "aten::add",
        "aten::leaky_relu_",
        "aten::addcmul",
        "aten::mul",
        "aten::mul_",
        "aten::copy_",
        "aten::clone",
        "aten::fill_",
    ):
        return "elementwise / copies"
    if name in ("aten::mm", "aten::addmm", "aten::linear", "aten::bmm"):
        return "matmul (mapping, modulation, demodulation)"
    return "other"


def short_shapes(shapes):
    return str([s for s in (shapes or [])[:2]]).replace(" ", "")


def time_calls(obj, names, spent, key="networks"):
    """Wrap the methods `names` of `obj` so that the seconds spent in them add up in `spent[key]`."""
    for name in names:
        fn = getattr(obj, name)

        def wrapper(*args, _fn=fn, **kwargs):
            t0 = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0

        setattr(obj, name, wrapper)
