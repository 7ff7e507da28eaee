#!/usr/bin/env python
"""Drop-in replacement for the original generate_image_pairs.py: same flags, same outputs (see
`blendgan pairs --help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from blendgan.cli import pairs, run_module  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_module(pairs, prog="generate_image_pairs.py"))
