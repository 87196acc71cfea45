#!/usr/bin/env bash
# Checks for a machine with a CUDA GPU, in one run of about 9 minutes, each writing its log under OUT_DIR:
#  1. profile: benchmark_augmentation.py, where a training step's time goes (each augmentation transform, the
#     network, the bookkeeping), for the brain segmenter with its cache on the GPU and in host memory, and for
#     the pneumonia classifier with its cache on the GPU, alone on the machine;
#  2. bench: benchmark_pneumonia.py, the pneumonia bundle's pipelines (CacheDataset on the GPU, cache in host
#     memory, plain loading) and `medkit infer` timed there, alone on the machine;
#  3. side by side: tests, the default test suite with the GPU as every bundle's device (pytest-xdist,
#     PYTEST_WORKERS; every test's outcome in pytest.xml), and crossval, the brain segmenter's cross-validation
#     machinery (folds side by side, final model, study) at miniature size;
#  4. epochs: the brain segmenter's training epoch time with the cache on the GPU and in host memory (loader
#     processes), four trainings side by side by the recipe (fold 0 of 4 of LGG_DIR's patients; each stage
#     --epochs long: 128-pixel patches, then whole slices, their epoch times listed in that order);
# then a summary on standard output, and every log and figure under OUT_DIR packed into OUT_DIR/logs.tar.gz (model
# weights left out), one file to bring back. STEPS (default "profile bench tests crossval epochs") picks steps.
# LGG_DIR needs at least 8 patients. Needs pytest-xdist.
# Usage: [STEPS="profile tests"] bash scripts/gpu_check.sh CHEST_XRAY_DIR LGG_DIR OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 3 ]; then echo "usage: bash scripts/gpu_check.sh CHEST_XRAY_DIR LGG_DIR OUT_DIR" >&2; exit 2; fi
PY=${PYTHON:-python3}
STEPS=" ${STEPS:-profile bench tests crossval epochs} "
chest=$1 lgg=$2 out=$3
mkdir -p "$out"
step() { [[ "$STEPS" == *" $1 "* ]]; }
{ nvidia-smi -L; $PY -c "import torch, monai; print(torch.__version__, monai.__version__, torch.cuda.get_device_name(0))"; } \
  >"$out/env.txt" 2>&1
patch="_meta_#network_data_format#inputs#image#spatial_shape=[128,128]"
if step profile; then
  for cache in gpu host; do
    opts=(--set "$patch")
    [ $cache = host ] && opts+=(--set gpu_cache=false)
    $PY scripts/benchmark_augmentation.py bundles/brain_mri_segmentation --data "$lgg" "${opts[@]}" \
      --out "$out/profile_brain_$cache.json" >"$out/profile_brain_$cache.log" 2>&1
    echo "profile brain ($cache cache): exit $?"
  done
  $PY scripts/benchmark_augmentation.py bundles/pneumonia --data "$chest" --out "$out/profile_pneumonia_gpu.json" \
    >"$out/profile_pneumonia_gpu.log" 2>&1
  echo "profile pneumonia (gpu cache): exit $?"
fi
if step bench; then
  $PY scripts/benchmark_pneumonia.py --data "$chest" --epochs 2 --workers 4 --n-images 512 \
    --infer-folder "$chest/train/NORMAL" --out "$out/benchmark_pneumonia.json" >"$out/benchmark_pneumonia.log" 2>&1
  echo "benchmark_pneumonia: exit $?"
fi
if step tests; then
  # interrupted (SIGINT) at PYTEST_TIMEOUT, pytest still prints what ran; on an H200, 15 workers ran 101 bundle-heavy
  # tests in 155 s
  timeout -s INT "${PYTEST_TIMEOUT:-330}" $PY -m pytest -q -n "${PYTEST_WORKERS:-14}" -p no:cacheprovider \
    --junitxml "$out/pytest.xml" >"$out/pytest.log" 2>&1 &
  pytest_pid=$!
fi
if step crossval; then
  $PY -m medkit.cli.main crossval bundles/brain_mri_segmentation --data "$lgg" --out "$out/cv" --folds 2 --epochs 2 \
    --all --study --parallel 3 >"$out/crossval.log" 2>&1
  echo "crossval: exit $?"
fi
if step tests; then
  wait $pytest_pid
  echo "pytest: exit $? ($(tail -n 1 "$out/pytest.log"))"
fi
if step epochs; then
  for cache in gpu host; do
    opts=(--set channels_last=true)
    [ $cache = host ] && opts+=(--set gpu_cache=false --set train_workers=3)
    for epochs in 1 5; do
      $PY -m medkit.cli.main crossval bundles/brain_mri_segmentation --data "$lgg" --out "$out/epoch_${cache}_$epochs" \
        --folds 4 --fold 0 --epochs $epochs "${opts[@]}" >"$out/epoch_${cache}_$epochs.log" 2>&1 &
    done
  done
  wait
  for f in "$out"/epoch_*_5.log; do
    echo "$(basename "$f" .log): $(grep -o 'SupervisedTrainer - INFO - Epoch\[[0-9]*\] Complete. Time taken: [0-9:.]*' "$f" \
      | sed 's/.*Epoch\[\([0-9]*\)\].*: /\1 /' | tr '\n' ' ')"
  done
fi
for f in "$out"/profile_*.json "$out"/benchmark_pneumonia.json; do
  [ -f "$f" ] && $PY -c 'import json, sys; r = json.load(open(sys.argv[1])); r.pop("augmentation", None); print(sys.argv[1], json.dumps(r))' "$f"
done
[ -f "$out/pytest.log" ] && grep -E "^(FAILED|ERROR)" "$out/pytest.log" | cut -c1-200 | head -40
pack=$(mktemp) && tar czf "$pack" -C "$out" --exclude='*.pt' --exclude=logs.tar.gz . && mv "$pack" "$out/logs.tar.gz"
exit 0
