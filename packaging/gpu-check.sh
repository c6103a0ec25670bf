#!/bin/sh
# The GPU check (issue 21): on a machine with an NVIDIA GPU and the CUDA toolkit, build
# llama-cpp-python and llama-bench / llama-batched-bench with CUDA for that GPU only, then
# verify Hearth's GPU path (full and half offload, the fallback chain, VRAM prediction,
# NVML power, batched decode) and write bench/results/gpu-check-<time>.{json,md}.
#
#   packaging/gpu-check.sh prepare         # where the network is: the offline kit
#   packaging/gpu-check.sh [run] [options] # on the GPU machine (--help lists options)
#
# Exit codes: 0 every goal met; 1 a goal missed or a check broke; 2 bad arguments;
# 3 no NVIDIA GPU; 4 no (complete) CUDA toolkit; 5 no sources; 6 the build failed.
# The work is in bench/gpu_check.py; this wrapper only finds a Python to run it with:
# $PYTHON, else the project's .venv, else python3 (a bare CUDA image's is enough).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x "$ROOT/.venv/bin/python" ]; then
    PY="$ROOT/.venv/bin/python"
elif command -v python3 >/dev/null 2>&1; then
    PY=$(command -v python3)
else
    echo "gpu-check: no Python 3 found (set PYTHON=/path/to/python3)" >&2
    exit 2
fi
cd "$ROOT"
exec "$PY" -m bench.gpu_check "$@"
