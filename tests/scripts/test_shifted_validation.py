from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from medkit.metrics.classification import threshold_balanced, threshold_for_recall
from tests.conftest import REPO

SCRIPT = os.path.join(REPO, "scripts", "shifted_validation.py")
sys.path.insert(0, os.path.join(REPO, "scripts"))

from shifted_validation import figures  # noqa: E402


def test_threshold_keeps_the_asked_sensitivity_and_figures_follow_it():
    probs = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9, 0.95, 0.99])
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    t = threshold_for_recall(probs, truth, 5 / 6)
    assert abs(t - 0.65) < 1e-9
    f = figures(probs, truth, t)
    assert f["sensitivity"] == round(5 / 6, 4) and f["specificity"] == 1.0 and f["accuracy"] == 0.9
    assert figures(probs, truth, 0.5)["specificity"] == 0.75 and f["auc"] == round(23 / 24, 4)
    # sensitivity + specificity: 1 + 3/4 between 0.3 and 0.4, 5/6 + 1 between 0.6 and 0.7 (the largest)
    b = threshold_balanced(probs, truth)
    assert abs(b - 0.65) < 1e-9
    fb = figures(probs, truth, b)
    assert fb["sensitivity"] + fb["specificity"] == round(1 + 5 / 6, 4)


def test_one_run_trains_on_the_trait_split_and_reports_both_validations(tmp_path, synthetic_cxr):
    work = tmp_path / "shift"
    cmd = [sys.executable, SCRIPT, "--data", synthetic_cxr, "--work", str(work), "--run", "R", "--val-fraction", "0.3"]
    cmd += ["--validation", "traits", "--set", "epochs=1", "--set", "batch_size=8", "--set", "debias_score=trait_score"]
    recipe = ["--aug", "erase_prob=0.5", "--pre", "crop_margin=0.05"]
    proc = subprocess.run(cmd + recipe, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    summary = json.loads((work / "R" / "summary.json").read_text())
    meta = json.loads((work / "R" / "bundle" / "configs" / "metadata.json").read_text())
    assert meta["medkit"]["augmentation"]["erase_prob"] == 0.5
    assert meta["medkit"]["preprocessing"]["crop_margin"] == 0.05
    datalist = json.loads((work / "traits_datalist.json").read_text())
    assert all("trait_score" in item for item in datalist["training"])
    for split in ("validation", "validation_patient"):
        assert summary[split]["argmax"]["n"] == len(datalist[split]) > 0
        assert summary[split]["tuned"]["threshold"] == summary["validation"]["tuned"]["threshold"]
        assert summary[split]["balanced"]["threshold"] == summary["validation"]["balanced"]["threshold"]
    assert summary["train_s"] > 0 and (work / "R" / "models" / "model.pt").is_file()
    assert proc.stdout.count("| R |") == 6
    # done: nothing is trained again, and a call without the recipe keeps the recipe the run was trained with
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((work / "R" / "summary.json").read_text())["train_s"] == summary["train_s"]
    meta = json.loads((work / "R" / "bundle" / "configs" / "metadata.json").read_text())
    assert meta["medkit"]["augmentation"]["erase_prob"] == 0.5
    assert meta["medkit"]["preprocessing"]["crop_margin"] == 0.05
