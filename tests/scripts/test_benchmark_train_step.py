from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = os.path.join(REPO, "scripts", "benchmark_train_step.py")


def test_train_step_benchmark_times_both_precisions(tmp_path):
    bundle = os.path.join(REPO, "bundles", "brain_mri_segmentation")
    out = tmp_path / "step.json"
    cmd = [sys.executable, SCRIPT, bundle, "--steps", "1", "--batch-size", "2", "--channels-last", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    # the bundle's own input shape (2.5D: three channels, whole 256x256 slices since release 0.5.0), the batch asked for
    assert figures["input"] == [2, 3, 256, 256] and figures["bundle"] == "brain_mri_segmentation"
    for name in ("float32", "bfloat16", "float32 channels-last", "bfloat16 channels-last"):
        assert figures[name] > 0
    assert figures["bf16_speedup"] == round(figures["float32"] / figures["bfloat16"], 2)


def test_train_step_benchmark_takes_the_batch_from_train_json():
    from importlib import util

    spec = util.spec_from_file_location("benchmark_train_step", SCRIPT)
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    bundle = os.path.join(REPO, "bundles", "brain_mri_segmentation")
    with open(os.path.join(bundle, "configs", "train.json")) as f:
        batch = json.load(f)["batch_size"]
    assert mod.training_shape(bundle, None) == (batch, 3, 256, 256)
    assert mod.training_shape(bundle, 4)[0] == 4
