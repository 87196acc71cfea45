#!/usr/bin/env bash
# Create .venv and install medkit with its test tools. CPU PyTorch is installed first, pinned, so that
# no multi-GB CUDA build is pulled in. Usage: bash scripts/setup.sh [extra pip args]
# bash scripts/setup.sh --label makes .venv-label instead: MONAI Label with medkit (scripts/setup_label.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--label" ]; then shift; exec bash scripts/setup_label.sh "$@"; fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${MEDKIT_TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e '.[dev,export,serve,ray,tune,tune-ray]' "$@"
.venv/bin/medkit --version
