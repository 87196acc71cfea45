from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = os.path.join(REPO, "scripts", "benchmark_augmentation.py")


def test_augmentation_profile_times_each_transform_and_the_step(tmp_path, synthetic_lgg):
    bundle = os.path.join(REPO, "bundles", "brain_mri_segmentation")
    out = tmp_path / "aug.json"
    cmd = [sys.executable, SCRIPT, bundle, "--data", synthetic_lgg, "--n", "6", "--steps", "1", "--out", str(out)]
    cmd += ["--set", "batch_size=2", "--set", "patch_size=[64,64]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(out.read_text())
    names = [t["transform"] for t in row["augmentation"]]
    # the bundle's augmentation in its order, the crop timed twice (indices found per call / precomputed)
    assert names[:2] == ["RandCropByPosNegLabeld", "RandCropByPosNegLabeld (indices precomputed)"]
    assert "RandAffined" in names and len(names) == 9
    assert row["device"] == "cpu" and row["cache_on_device"] is False and row["n_items"] == 6
    assert row["batch_size"] == 2 and row["step_network_s"] > 0 and row["step_bookkeeping_s"] > 0
    per_sample = sum(t["ms_per_sample"] for t in row["augmentation"][:1] + row["augmentation"][2:])
    assert abs(row["augmentation_ms_per_sample"] - per_sample) < 1e-6
    assert row["step_augmentation_s"] == round(per_sample * 2 / 1e3, 4)
