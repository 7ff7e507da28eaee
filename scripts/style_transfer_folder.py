#!/usr/bin/env python
"""Drop-in replacement for the original style_transfer_folder.py: same flags, same outputs (see
`blendgan transfer --help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from blendgan.cli import run_module, transfer  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_module(transfer, prog="style_transfer_folder.py"))
