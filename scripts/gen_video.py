#!/usr/bin/env python
"""Drop-in replacement for the original gen_video.py: same flags, same outputs (see `blendgan video --help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from blendgan.cli import run_module, video  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_module(video, prog="gen_video.py"))
