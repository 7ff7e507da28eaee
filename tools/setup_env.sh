#!/usr/bin/env bash
# Creates the virtual environment and installs blendgan into it.
# torch: an existing torch (in the venv, or in the interpreter when VENV=system) is left alone;
# otherwise the pinned CPU wheel torch==2.13.0 is installed (an unpinned torch pulls GBs of CUDA wheels).
set -euo pipefail
PY=${PY:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip="$VENV/bin/python -m pip"
$pip install --quiet --upgrade pip
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: keeping the installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
else
  echo "setup: no torch found, installing the CPU build torch==2.13.0"
  $pip install --quiet "torch==2.13.0"
fi
$pip install --quiet -e ".[align,demo,test,export,onnx]"
echo "setup: done ($VENV)"
