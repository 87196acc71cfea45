#!/usr/bin/env bash
# Checks for a machine with a CUDA GPU, in one run of about 8 minutes, each writing its log under OUT_DIR:
#  1. benchmark_pneumonia.py: the pneumonia bundle's pipelines (CacheDataset on the GPU, cache in host memory,
#     plain loading) and `medkit infer` timed there, alone on the machine;
#  2. side by side: the default test suite with the GPU as every bundle's device (pytest-xdist, PYTEST_WORKERS), and
#     the brain segmenter's cross-validation machinery (folds side by side, final model, study) at miniature size;
#  3. the brain segmenter's training epoch time with the cache on the GPU and in host memory (loader processes),
#     four trainings side by side on 128-pixel patches (fold 0 of 4 of LGG_DIR's patients);
# then a summary on standard output. LGG_DIR needs at least 8 patients. Needs pytest-xdist.
# Usage: bash scripts/gpu_check.sh CHEST_XRAY_DIR LGG_DIR OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 3 ]; then echo "usage: bash scripts/gpu_check.sh CHEST_XRAY_DIR LGG_DIR OUT_DIR" >&2; exit 2; fi
PY=${PYTHON:-python3}
chest=$1 lgg=$2 out=$3
mkdir -p "$out"
{ nvidia-smi -L; $PY -c "import torch, monai; print(torch.__version__, monai.__version__, torch.cuda.get_device_name(0))"; } \
  >"$out/env.txt" 2>&1
$PY scripts/benchmark_pneumonia.py --data "$chest" --epochs 2 --workers 4 --n-images 512 \
  --infer-folder "$chest/train/NORMAL" --out "$out/benchmark_pneumonia.json" >"$out/benchmark_pneumonia.log" 2>&1
echo "benchmark_pneumonia: exit $?"
# interrupted (SIGINT) at PYTEST_TIMEOUT, pytest still prints what ran; on an H200, 15 workers ran 101 bundle-heavy
# tests in 155 s
timeout -s INT "${PYTEST_TIMEOUT:-330}" $PY -m pytest -q -n "${PYTEST_WORKERS:-14}" -p no:cacheprovider \
  >"$out/pytest.log" 2>&1 &
pytest_pid=$!
$PY scripts/crossval_brain.py --data "$lgg" --out "$out/cv" --folds 2 --epochs 2 --all --study --parallel 3 \
  >"$out/crossval.log" 2>&1
echo "crossval_brain: exit $?"
wait $pytest_pid
echo "pytest: exit $? ($(tail -n 1 "$out/pytest.log"))"
patch="_meta_#network_data_format#inputs#image#spatial_shape=[128,128]"
for cache in gpu host; do
  opts=(--set "$patch" --set channels_last=true)
  [ $cache = host ] && opts+=(--set gpu_cache=false --set train_workers=3)
  for epochs in 1 5; do
    $PY scripts/crossval_brain.py --data "$lgg" --out "$out/epoch_${cache}_$epochs" --folds 4 --fold 0 \
      --epochs $epochs "${opts[@]}" >"$out/epoch_${cache}_$epochs.log" 2>&1 &
  done
done
wait
for f in "$out"/epoch_*_5.log; do
  echo "$(basename "$f" .log): $(grep -o 'SupervisedTrainer - INFO - Epoch\[[0-9]*\] Complete. Time taken: [0-9:.]*' "$f" \
    | sed 's/.*Epoch\[\([0-9]*\)\].*: /\1 /' | tr '\n' ' ')"
done
$PY -c 'import json, sys; print("benchmark:", json.dumps(json.load(open(sys.argv[1]))))' "$out/benchmark_pneumonia.json"
grep -E "^(FAILED|ERROR)" "$out/pytest.log" | cut -c1-200 | head -40
