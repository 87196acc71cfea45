#!/usr/bin/env bash
# Create .venv-label: MONAI Label 0.8.5 with medkit, for `medkit label-server` (README, "MONAI Label").
# Its own environment: MONAI Label needs torchvision, and its pydicom-seg was written for pydicom < 3 while
# medkit needs pydicom 3 (the main .venv is untouched). Usage: bash scripts/setup.sh --label [extra pip args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
V=.venv-label
[ -x "$V/bin/python" ] || "$PY" -m venv "$V"
"$V/bin/python" -m pip install -q --upgrade pip
# PyTorch first, pinned, with the torchvision release built for it (MONAI Label imports torchvision; a PyPI
# torchvision does not load on the CPU-only torch of .venv, so this environment takes the regular build)
"$V/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
# monailabel and pydicom-seg without their declared pins (see scripts/label-requirements.txt), then what they import;
# pip then warns that pydicom-seg wants numpy<2 and jsonschema<4 and monailabel numpymaxflow>=0.0.7: expected
"$V/bin/python" -m pip install -q --no-deps monailabel==0.8.5 pydicom-seg==0.4.1
"$V/bin/python" -m pip install -q -e '.[dev]' -r scripts/label-requirements.txt "$@"
# pydicom-seg imports pydicom._storage_sopclass_uids (gone in pydicom 3): medkit.label.compat maps it to pydicom.uid
# in every process of this environment (MONAI Label trains in a subprocess of its own)
SITE=$("$V/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import medkit.label.compat" >"$SITE/zz_medkit_label_compat.pth"
"$V/bin/medkit" label-server --help >/dev/null
echo "MONAI Label environment ready: $V (start a server with $V/bin/medkit label-server BUNDLE... --studies DIR)"
