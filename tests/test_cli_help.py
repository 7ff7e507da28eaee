"""`blendgan --help` and every command's --help: fast (no torch), every flag explained with its default,
examples at the end."""

import argparse
import importlib
import os
import subprocess
import sys

import pytest

from blendgan.cli import COMMANDS, HelpFormatter, _epilog

from helpers import ROOT

NO_TORCH = """
import sys
sys.modules["torch"] = None  # any `import torch` now fails
from blendgan.cli import COMMANDS, main
for argv in [["--help"]] + [[name, "--help"] for name in COMMANDS]:
    try:
        main(argv)
    except SystemExit as exit:
        assert exit.code == 0, (argv, exit.code)
print("imported:", sorted(m for m in ("torch", "blendgan.pipeline", "blendgan.io.images") if sys.modules.get(m)))
"""


def test_help_of_every_command_needs_no_torch():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imported: []" in proc.stdout
    for name in COMMANDS:
        assert f"    {name} " in proc.stdout  # listed in `blendgan --help`


def parser_of(name):
    module = importlib.import_module(f"blendgan.cli.{COMMANDS[name]}")
    parser = argparse.ArgumentParser(
        prog=f"blendgan {name}", epilog=_epilog(module, None), formatter_class=HelpFormatter
    )
    module.add_arguments(parser)
    return parser


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_flag_has_a_help_line_with_its_default(name):
    parser = parser_of(name)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flag = "/".join(action.option_strings) or action.dest
        assert action.help, f"blendgan {name} {flag} has no help"
        shown = formatter._expand_help(action).lower()
        if action.option_strings and action.nargs != 0:  # options that take a value say what it defaults to
            assert "default" in shown or "required" in shown, f"blendgan {name} {flag}: {shown!r}"
            if action.default not in (None, ""):
                assert "default" in shown, f"blendgan {name} {flag}: {shown!r}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_ends_with_examples(name):
    text = parser_of(name).format_help().rstrip().splitlines()
    examples = text[text.index("examples:") + 1 :]
    command = f"blendgan {name}"
    # `blendgan NAME ...`, or a launcher line `torchrun ... -m blendgan NAME ...`
    assert 1 <= len(examples) <= 2 and all(
        line.startswith(f"  {command}") or (line.startswith("  torchrun ") and f" -m {command}" in line)
        for line in examples
    ), text[-4:]
    for line in examples:  # the examples parse
        words = line.split()
        start = next(i for i in range(len(words) - 1) if words[i : i + 2] == ["blendgan", name])
        parser_of(name).parse_args(words[start + 2 :])


def test_scripts_show_their_own_command_line():
    from blendgan.cli import transfer

    assert (
        _epilog(transfer, "style_transfer_folder.py")
        .splitlines()[1]
        .startswith("  python scripts/style_transfer_folder.py --input_img_path")
    )
