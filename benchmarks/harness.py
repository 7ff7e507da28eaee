"""The benchmarks' shared harness: the machine line every result carries (CPU model and the flags that decide
which kernels run, cores, load average, commit, date), timing with warm-up and repeats, peak RSS, a Markdown
row printer; for the torch benchmarks also alternating timed runs, peak memory, FLOPs, the machine's
matmul/conv ceiling and a torch.profiler summary.

A benchmark script prints `machine_line()` at its start, its table through `Report` (or `markdown_row`) and
`finish_line()` at its end (load average and peak RSS then), so every figure it backs says where and under which
load it was measured. Importing this module does not import torch (the child-process benchmarks stay light);
the torch helpers import it when called.
"""

import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the CPU description every figure carries is the one `blendgan bench` prints (model, vector flags, oneDNN cap);
# blendgan.machine imports no torch
from blendgan.machine import SIMD_FLAGS, cpu_flags, cpu_model, isa_cap_note  # noqa: E402


def load_average():
    """The 1, 5 and 15 minute load averages as one string ('n/a' where the OS has none)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def commit():
    """The checkout's short commit, with '+' when it has uncommitted changes; '?' outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return head + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine_line():
    """One Markdown line: CPU model and flags, cores, commit, date and the load average now."""
    flags = (", ".join(cpu_flags()) or "none of " + "/".join(SIMD_FLAGS)) + isa_cap_note()
    return (
        f"Machine: {cpu_model()} ({flags}), {os.cpu_count()} logical cores; commit {commit()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}; load average {load_average()} at the start"
    )


def peak_rss_mb(children=False):
    """Peak resident set in MB of this process, or (children=True) of the largest waited-for child."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # kB on Linux


def finish_line():
    """One Markdown line for the end of a run: the load average then and the peak RSS of this process and of its
    largest child (the figure of the benchmarks that run their work in children; a child forked from a large
    process, such as a `git` call late in a torch benchmark, counts the pages it shared at the fork)."""
    return (
        f"At the end: load average {load_average()}; peak RSS {peak_rss_mb():.0f} MB (this process), "
        f"{peak_rss_mb(children=True):.0f} MB (largest child)"
    )


# `python -c CHILD_PEAK_RSS CMD...` runs CMD and prints the largest resident set among its descendants (kB) on its
# last stderr line ("peak_rss_kb N"): the peak of a command run as a child, without the benchmark's own memory
CHILD_PEAK_RSS = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(r.returncode)"
)


def timed(fn, warmup=1, repeats=3):
    """Call `fn` `warmup` times, then `repeats` timed times: (median seconds, [seconds], last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def markdown_row(cells):
    """One Markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown_table(header, rows):
    """A Markdown table as lines: the header, its rule and the rows."""
    return [markdown_row(header), "|" + "|".join(" --- " for _ in header) + "|"] + [markdown_row(r) for r in rows]


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    """Start a new peak-memory window (RSS high-water mark on Linux; CUDA allocator peak)."""
    import torch

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
    import torch

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
    import torch

    from blendgan.allocator import release_freed_memory

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
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def machine_info(device, reuse):
    import torch

    info = {
        "cpu": cpu_model(),
        "cpu flags": ", ".join(cpu_flags()),
        "commit": commit(),
        "load average at the start": load_average(),
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
    import torch

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
    import torch

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
        for line in markdown_table(header, rows):
            self.add(line)
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
    import torch
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
