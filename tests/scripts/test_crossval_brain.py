from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

SCRIPT = os.path.join(REPO, "scripts", "crossval_brain.py")


def test_crossval_tests_every_patient_once_and_studies_the_options(synthetic_lgg, tmp_path):
    out = tmp_path / "cv"
    cmd = [sys.executable, SCRIPT, "--data", synthetic_lgg, "--out", str(out), "--folds", "2", "--epochs", "4"]
    # the folds' own evaluation per slice and without flips, so that it equals the study's plain variant
    cmd += ["--study", "--set", "num_workers=0", "--set", "learning_rate=0.01", "--set", "largest_component_3d=false"]
    cmd += ["--set", "flip_tta=false", "--set", "fill_holes=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    tested = [p for fold in summary["per_fold"] for p in fold["test_patients"]]
    assert len(tested) == len(set(tested)) == summary["n_patients"] == 6
    assert summary["slice_detection"]["confusion_matrix"] and summary["overrides"]["num_workers"] == 0
    for k in range(2):  # each fold's model trained on the other fold's patients only
        datalist = json.loads((out / f"fold_{k}" / "datalist.json").read_text())
        trained = {i["patient"] for i in datalist["training"]}
        assert trained and not trained & set(summary["per_fold"][k]["test_patients"])
        assert (out / f"fold_{k}" / "models" / "model.pt").is_file()
    study = json.loads((out / "study.json").read_text())
    plain = {"plain", "tta", "largest_3d", "tta+largest_3d"}
    assert set(study) == plain | {f"{name}+fill_holes".replace("plain+", "") for name in plain}
    assert len(study["plain"]["per_case"]) == 6
    assert summary["dice_patient_mean"] > 0  # 4 epochs learn something of the synthetic tumours
    # the plain variant recomputes the evaluation the folds reported: same per-patient Dice
    assert np.isclose(study["plain"]["dice_patient_mean"], summary["dice_patient_mean"], atol=1e-6)


def test_classifier_crossval_from_the_segmenter_folds_and_two_stage(synthetic_lgg, tmp_path):
    seg, cls = tmp_path / "seg", tmp_path / "cls"
    base = [sys.executable, SCRIPT, "--data", synthetic_lgg, "--folds", "2", "--set", "num_workers=0"]
    base += ["--set", "largest_component_3d=false", "--set", "flip_tta=false", "--set", "fill_holes=false"]
    for cmd in (
        [*base, "--out", str(seg), "--epochs", "2", "--all", "--parallel", "2"],  # folds and final side by side
        [
            *base,
            "--out",
            str(cls),
            "--epochs",
            "1",
            "--bundle",
            os.path.join(REPO, "bundles", "brain_mri_classification"),
        ]
        + ["--pretrained-from", str(seg)],
        [*base, "--out", str(seg), "--epochs", "2", "--gate", str(cls), "--study"],  # folds done: only re-summarises
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
    classifier = json.loads((cls / "summary.json").read_text())
    segmenter = json.loads((seg / "summary.json").read_text())
    assert [f["test_patients"] for f in classifier["per_fold"]] == [f["test_patients"] for f in segmenter["per_fold"]]
    assert classifier["n_slices"] == 48 and 0 <= classifier["auc"] <= 1 and classifier["sensitivity"] >= 0.95
    stack = classifier["stack"]  # each slice scored by the mean of the bundle's 7-slice window too
    assert stack["slice_window"] == classifier["slice_window"] == 7 and stack["n_slices"] == 48
    assert stack["sensitivity"] >= 0.95 and stack["stack_threshold"] == classifier["stack_threshold"]
    assert set(stack["nested_threshold"]) == {"accuracy", "sensitivity", "specificity"}
    for k in range(2):
        result = json.loads((cls / f"fold_{k}" / "result.json").read_text())
        assert result["overrides"]["pretrained"] == str(seg / f"fold_{k}" / "models" / "model.pt")
    assert all((seg / f"{name}.log").is_file() for name in ("fold_0", "fold_1", "all"))  # --parallel: a log each
    final = segmenter["final_model"]  # --all: trained on every patient after the folds
    assert final["training_patients"] == 6 and os.path.isfile(final["path"]) and "final_model" not in classifier
    study = json.loads((seg / "study.json").read_text())
    assert {"gated", "gated+largest_3d", "gated+largest_3d_unweighted", "tta+gated+largest_3d"} <= set(study)
    assert study["gate"]["threshold"] == classifier["threshold"]
    assert study["gate"]["stack_threshold"] == classifier["stack_threshold"] and study["gate"]["slice_window"] == 7
    two_stage = segmenter["two_stage"]  # the study's gating is the summary's two-stage figure
    assert study["gated"]["dice_patient_mean"] == pytest.approx(two_stage["dice_patient_mean"])
    assert study["gated"]["slice_detection"]["confusion_matrix"] == two_stage["slice_detection"]["confusion_matrix"]
    gated = segmenter["two_stage"]
    assert gated["gate"]["threshold"] == classifier["threshold"]
    cm, plain = gated["slice_detection"]["confusion_matrix"], segmenter["slice_detection"]["confusion_matrix"]
    assert cm[0][1] <= plain[0][1] and cm[1][1] <= plain[1][1]  # gating only removes masks
    assert gated["dice_global"] <= segmenter["dice_global"] + 1e-9
