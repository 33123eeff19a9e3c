#!/usr/bin/env bash
# Create .venv and install coplay into it: `bash scripts/setup.sh [EXTRAS]`, e.g. `test`.
#
# torch is installed first, pinned, and only if no torch is there yet: on a CPU-only
# machine that carries the CPU wheel locally the pin takes that wheel, and elsewhere it is the
# registry's build of the same version. Installing coplay afterwards then finds its
# `torch>=2.2` requirement met and downloads no CUDA packages. A user who already has a torch
# (say a CUDA build) in the environment keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade "pip>=24"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
echo "coplay installed in .venv (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
