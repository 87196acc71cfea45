from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = os.path.join(REPO, "scripts", "benchmark_training.py")


def test_training_benchmark_runs_the_bundle_and_a_plain_loop_on_the_same_items(tmp_path, synthetic_cxr):
    bundle = os.path.join(REPO, "bundles", "pneumonia")
    out = tmp_path / "train.json"
    cmd = [sys.executable, SCRIPT, bundle, "--data", synthetic_cxr, "--n-items", "12", "--n-val", "4"]
    cmd += ["--epochs", "2", "--workers", "1", "--pipelines", "bundle,plain", "--set", "batch_size=4"]
    proc = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["items"] == {"training": 12, "validation": 4}
    bundle_row, plain_row = result["pipelines"]
    assert (bundle_row["pipeline"], plain_row["pipeline"]) == ("bundle", "plain")
    for row in (bundle_row, plain_row):
        assert row["samples_per_epoch"] == 12 and len(row["train_s_each"]) == 2
        assert row["samples_per_s"] == pytest.approx(12 / row["train_s"], rel=0.01)
        assert 0 <= row["data_wait_s"] <= row["train_s"]
        assert row["peak_rss_mb"] > 0
    assert bundle_row["epoch_with_validation_s"] >= bundle_row["train_s"]
    assert bundle_row["settings"]["batch_augmentation"] is True and bundle_row["settings"]["batch_size"] == 4
    assert plain_row["peak_worker_rss_mb"] > 0  # the loader's worker process was counted
    assert result["bundle_over_plain"] == round(bundle_row["samples_per_s"] / plain_row["samples_per_s"], 2)
    assert "| bundle | 12 |" in proc.stdout
