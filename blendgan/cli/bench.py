"""`blendgan bench`: this machine's convolution ceiling, the generator's time and the share of its bound reached."""

import argparse

HELP = "time the generator on this machine against its convolution ceiling (the share of the bound reached)"
EXAMPLES = """
blendgan bench
blendgan bench --size 256 1024 --device cuda --precision bf16
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..defaults import PRECISIONS

    parser.add_argument("--size", type=int, nargs="+", default=[256, 1024], help="generator sizes to time")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="number format of the networks")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (their median), after a warm-up")


def run(args: argparse.Namespace) -> int:
    from ..devices import resolve_device, resolve_dtype, warn_if_bf16_is_emulated
    from ..errors import UsageError
    from ..models.generator import SUPPORTED_SIZES
    from ..speed import conv_ceiling, generator_speed, machine_line

    bad = [s for s in args.size if s not in SUPPORTED_SIZES]
    if bad:
        raise UsageError(f"--size {bad[0]}: use a power of two from 8 to 1024")
    if args.runs < 1:
        raise UsageError(f"--runs {args.runs}: use 1 or more")
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.precision, device)
    if device.type == "cpu":
        from ..allocator import reuse_freed_memory

        reuse_freed_memory()  # as every generating command does: time the generator the way they run it
    warn_if_bf16_is_emulated(args.precision, device)
    print(machine_line())
    ceiling = conv_ceiling(device, dtype, runs=max(3, args.runs))
    print(f"convolution ceiling ({args.precision}, 512 -> 512 3x3 on 64 x 64): {ceiling:.1f} GFLOP/s")
    print()
    print("| generator | GFLOP per image | seconds per image | bound at the ceiling, s | share of the bound |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size in args.size:
        r = generator_speed(size, device, dtype, ceiling, runs=args.runs)
        print(
            f"| {size} px | {r.flops / 1e9:.1f} | {r.seconds:.3f} | {r.bound_seconds:.3f} | {r.share_of_bound:.0%} |",
            flush=True,
        )
    return 0
