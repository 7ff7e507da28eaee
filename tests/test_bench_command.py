"""`blendgan bench`: the machine line, the convolution ceiling and the generator's share of its bound."""

import re

from blendgan.cli import main


def test_bench_prints_the_machine_the_ceiling_and_the_share_of_the_bound(capsys):
    assert main(["bench", "--size", "8", "16", "--runs", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ") and "load average" in out
    ceiling = float(re.search(r"convolution ceiling .*: ([\d.]+) GFLOP/s", out).group(1))
    assert ceiling > 0
    rows = re.findall(r"\| (\d+) px \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+)% \|", out)
    assert [r[0] for r in rows] == ["8", "16"]
    flops = [float(r[1]) for r in rows]
    assert 0 < flops[0] < flops[1]  # a larger generator does more work
    for _, gflop, seconds, bound, share in rows:
        # the bound is the FLOPs at the measured ceiling, the share the bound over the time
        assert abs(float(bound) - float(gflop) / ceiling) <= 0.002 + 0.01 * float(bound)
        assert abs(int(share) - 100 * float(bound) / float(seconds)) <= 1 + 5 * 0.0005 / float(seconds) * 100


def test_bench_refuses_a_size_in_one_line(capsys):
    assert main(["bench", "--size", "100", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--size 100" in err and len(err.strip().splitlines()) == 1
