"""Every example command line a user is shown works: those of README.md, docs/*.md and every command's
`--help` epilog. Each one names only repository paths that exist and parses with its command's flags; the
ones that use only bundled images are run (with the size-64 recipe weights and a temporary --outdir)."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from blendgan.cli import COMMANDS, _load, main

from helpers import ROOT

REPO_DIRS = ("test_imgs/", "docs/", "scripts/", "benchmarks/", "tools/", "blendgan/", "tests/")
RUNNABLE = {"stylize", "transfer", "video", "pairs", "align"}
MEDIA = re.compile(r"\.(jpe?g|png|webp|bmp|tiff?|mp4|mov|webm|mkv|avi|gif)$", re.I)


def fenced_lines(text):
    """Shell lines of ```bash blocks (backslash continuations joined, comments dropped)."""
    lines, inside, pending = [], False, ""
    for raw in text.splitlines():
        if raw.strip().startswith("```"):
            inside = raw.strip() in ("```bash", "```sh", "```shell") and not inside
            continue
        if not inside:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def documented_examples():
    """(where, line) of every example command line of the docs and the --help epilogs."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in fenced_lines(doc.read_text()):
            found.append((doc.relative_to(ROOT).as_posix(), line))
    for name in COMMANDS:
        for line in getattr(_load(name), "EXAMPLES", "").strip().splitlines():
            found.append((f"blendgan {name} --help", line))
    return [(where, line) for where, line in found if command_of(line) is not None]


def command_of(line):
    """(subcommand, its arguments) of a `blendgan ...`, `python -m blendgan ...` or torchrun line; else None."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    if words[:1] == ["blendgan"] or words[:1] == [".venv/bin/blendgan"]:
        rest = words[1:]
    elif "-m" in words and words[words.index("-m") + 1 : words.index("-m") + 2] == ["blendgan"]:
        rest = words[words.index("-m") + 2 :]
    else:
        return None
    if not rest or rest[0] not in COMMANDS:
        return None
    return rest[0], rest[1:]


def repo_paths(args):
    """The arguments that name something inside this repository (they must exist)."""
    return [a for a in args if a.startswith(REPO_DIRS)]


EXAMPLES = documented_examples()


def test_examples_were_found():
    places = {where for where, _ in EXAMPLES}
    assert "README.md" in places and any(p.startswith("docs/") for p in places)
    assert any(line.startswith("blendgan stylize") for _, line in EXAMPLES)


@pytest.mark.parametrize("where, line", EXAMPLES, ids=[f"{w}: {line[:60]}" for w, line in EXAMPLES])
def test_example_names_existing_paths_and_parses(where, line):
    name, args = command_of(line)
    missing = [p for p in repo_paths(args) if not list(ROOT.glob(p.rstrip("/")))]
    assert not missing, f"{where}: {line!r} names missing repository paths {missing}"
    parser = argparse.ArgumentParser(prog=f"blendgan {name}", exit_on_error=False)
    _load(name).add_arguments(parser)
    try:
        parser.parse_args(args)
    except (argparse.ArgumentError, SystemExit) as err:
        pytest.fail(f"{where}: {line!r} does not parse: {err}")


def runnable(line):
    name, args = command_of(line)
    if name not in RUNNABLE or any(a in ("--size", "--ckpt", "--psp_encoder_ckpt", "--outdir") for a in args):
        return False
    # every file or folder it names is bundled with the repository
    named = [a for a in args if "/" in a or MEDIA.search(a)]
    return bool(named) and all(a.startswith(REPO_DIRS) and list(ROOT.glob(a.rstrip("/"))) for a in named)


RUNS = list({line: (w, line) for w, line in EXAMPLES if runnable(line)}.values())  # each distinct line once


def test_some_examples_run():
    assert {command_of(line)[0] for _, line in RUNS} >= {"stylize", "transfer"}


@pytest.mark.slow
@pytest.mark.parametrize("where, line", RUNS, ids=[f"{w}: {line[:60]}" for w, line in RUNS])
def test_bundled_example_runs(where, line, recipe_checkpoints, tmp_path, monkeypatch):
    name, args = command_of(line)
    weights = recipe_checkpoints(64, tiny=True)
    extra = ["--outdir", str(tmp_path / "out")]
    if name != "align":
        extra += ["--ckpt", str(weights["blendgan"]), "--device", "cpu"]
        if name != "pairs":
            extra += ["--psp_encoder_ckpt", str(weights["psp_encoder"])]
    if name == "pairs" and "--pics" not in args:
        extra += ["--pics", "2"]
    monkeypatch.chdir(ROOT)
    assert main([name, *args, *extra]) == 0, f"{where}: {line!r} failed"
    assert any(Path(tmp_path / "out").iterdir())
