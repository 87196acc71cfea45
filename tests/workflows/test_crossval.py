"""Cross-validation on tiny synthetic LGG slices. The fast tests give each fold a seeded, untrained network (its
figures are then a fixed function of the weights), the slow ones train every fold end to end."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from medkit.bundle import create_workflow, meta_component, train_stages
from medkit.cli.main import cli
from medkit.data.synthetic import write_synthetic_lgg
from medkit.errors import MedkitError
from medkit.inferers import FlipTTAInferer
from medkit.io.atomic import write_json_atomic
from medkit.workflows import crossval as cv
from medkit.workflows.crossval_study import fold_masks, study_options
from tests.conftest import BUNDLES

SEGMENTER = os.path.join(BUNDLES, "brain_mri_segmentation")
CLASSIFIER = os.path.join(BUNDLES, "brain_mri_classification")


@pytest.fixture(scope="module")
def tiny_lgg(tmp_path_factory) -> str:
    """4 patients of 4 slices of 32 pixels (the segmenter's network costs a tenth of a second a slice here)."""
    return write_synthetic_lgg(tmp_path_factory.mktemp("lgg"), n_patients=4, n_slices=4, size=32)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory, tiny_lgg) -> cv.CrossvalSettings:
    """Two folds of the segmenter, each with its datalist, a seeded untrained model, its held-out evaluation by the
    bundle's evaluate.json (its own post-processing: flip TTA, hole filling, largest 3D component) and result."""
    settings = cv.CrossvalSettings(SEGMENTER, tiny_lgg, str(tmp_path_factory.mktemp("cv")), folds=2)
    settings.overrides = {"num_workers": 0, "patch_size": [32, 32]}  # one window per slice
    for k in range(2):
        fold_dir = os.path.join(settings.out, cv.fold_name(k))
        datalist = cv.fold_datalist(settings, k)
        write_json_atomic(datalist, os.path.join(fold_dir, "datalist.json"))
        torch.manual_seed(k)
        network = meta_component(SEGMENTER, "network_def")
        os.makedirs(os.path.join(fold_dir, "models"))
        torch.save(network.state_dict(), os.path.join(fold_dir, "models", "model.pt"))
        result = {"fold": k, "test_patients": sorted({i["patient"] for i in datalist["test"]}), "epochs": [0]}
        result.update(train_s=0.0, peak_rss_mb=0.0, training_patients=2, **cv.evaluate_fold(settings, k))
        write_json_atomic(result, cv.result_file(settings.out, k))
    return settings


def test_folds_test_every_patient_once(tiny_lgg, tmp_path):
    settings = cv.CrossvalSettings(SEGMENTER, tiny_lgg, str(tmp_path), folds=3)
    tested = []
    for k in range(3):
        datalist = cv.fold_datalist(settings, k)
        test, train = ({i["patient"] for i in datalist[s]} for s in ("test", "training"))
        assert test and train and not test & train and datalist["validation"] == datalist["test"]
        tested += sorted(test)
    assert len(tested) == len(set(tested)) == 4
    final = cv.fold_datalist(settings, -1)  # the final model: every patient in training
    assert len({i["patient"] for i in final["training"]}) == 4 and not final["test"]
    with pytest.raises(MedkitError, match="folds must be at least 2"):
        cv.CrossvalSettings(SEGMENTER, tiny_lgg, str(tmp_path), folds=1)
    with pytest.raises(MedkitError, match="deals no patient-level folds"):
        cv.CrossvalSettings(os.path.join(BUNDLES, "pneumonia"), tiny_lgg, str(tmp_path))


def test_resume_runs_only_unfinished_folds_and_pools_every_patient_once(untrained, monkeypatch):
    kept = cv.result_file(untrained.out, 1) + ".kept"
    shutil.move(cv.result_file(untrained.out, 1), kept)
    asked = []

    def run_folds(settings, folds, parallel=1):  # stands in for training: puts fold 1's result back
        asked.append(list(folds))
        shutil.move(kept, cv.result_file(settings.out, 1))

    monkeypatch.setattr(cv, "run_folds", run_folds)
    summary = cv.crossval(untrained)["summary"]
    assert asked == [[1]]
    assert summary["n_patients"] == len(summary["per_case"]) == 4
    tested = [p for fold in summary["per_fold"] for p in fold["test_patients"]]
    assert len(tested) == len(set(tested)) == 4 and set(tested) == {c.rsplit("_", 1)[0] for c in summary["per_case"]}
    assert json.load(open(os.path.join(untrained.out, "summary.json"))) == summary


def test_study_variants_are_the_bundle_pipeline(untrained):
    summary = json.load(open(os.path.join(untrained.out, "summary.json")))
    study = study_options(untrained)
    assert {"plain", "tta", "fill_holes", "largest_3d", "tta+largest_3d+fill_holes"} <= set(study)
    # the bundle's evaluation (flip TTA, hole filling, largest 3D component) is the study's variant with all three
    same = study["tta+largest_3d+fill_holes"]
    assert same["per_case"] == pytest.approx(summary["per_case"], abs=1e-4)
    assert same["slice_detection"] == summary["slice_detection"]
    assert "gate" not in study and not any("gated" in name for name in study)


def test_study_flip_tta_is_the_flip_tta_inferer(untrained):
    case, masks = next(iter(fold_masks(untrained, 0).items()))
    overrides = {"datalist_file": os.path.join(untrained.out, "fold_0", "datalist.json"), "split": "test"}
    wf = create_workflow(SEGMENTER, "evaluate", {**overrides, **untrained.overrides, "classifier_bundle": ""})
    network = wf.parser.get_parsed_content("network")
    network.load_state_dict(torch.load(os.path.join(untrained.out, "fold_0", "models", "model.pt")))
    item = next(i for i in wf.parser.get_parsed_content("dataset") if i["image_path"] == masks["paths"][0])
    x = torch.as_tensor(item["image"])[None]
    with torch.no_grad():
        tta = FlipTTAInferer(wf.parser.get_parsed_content("sliding_window"))(x, network.eval())
    expected = (torch.sigmoid(tta) >= 0.5)[0, 0].numpy()
    np.testing.assert_array_equal(masks["masks"][True, False][0], expected)
    assert str(item["case"]) == case


@pytest.mark.slow
def test_crossval_command_end_to_end(tiny_lgg, tmp_path):
    """Segmenter folds side by side with the final model, the classifier fine-tuned from them, then the two-stage
    figures and the study (the folds done: only re-summarised)."""
    seg, cls = str(tmp_path / "seg"), str(tmp_path / "cls")
    common = [
        "--data",
        tiny_lgg,
        "--folds",
        "2",
        "--epochs",
        "1",
        "--set",
        "num_workers=0",
        "--set",
        "patch_size=[32,32]",
    ]
    plain = ["--set", "largest_component_3d=false"]  # the evaluation then equals the study's tta+fill_holes
    for args in (
        [SEGMENTER, "--out", seg, "--all", "--parallel", "2", "--set", "learning_rate=0.01", *plain],
        [CLASSIFIER, "--out", cls, "--pretrained-from", seg],
        [SEGMENTER, "--out", seg, "--gate", cls, "--study", *plain],
    ):
        result = CliRunner().invoke(cli, ["crossval", *args, *common])
        assert result.exit_code == 0, result.output
    segmenter = json.load(open(os.path.join(seg, "summary.json")))
    classifier = json.load(open(os.path.join(cls, "summary.json")))
    assert segmenter["n_patients"] == 4 and segmenter["stages"] == train_stages(SEGMENTER)  # every stage...
    assert segmenter["epochs"] == [1] * len(segmenter["stages"])  # ...of --epochs
    assert [f["test_patients"] for f in classifier["per_fold"]] == [f["test_patients"] for f in segmenter["per_fold"]]
    assert classifier["n_slices"] == 16 and classifier["stack"]["slice_window"] == 7
    assert all(os.path.isfile(os.path.join(seg, f"{name}.log")) for name in ("fold_0", "fold_1", "all"))
    assert segmenter["final_model"]["training_patients"] == 4 and os.path.isfile(segmenter["final_model"]["path"])
    result = json.load(open(os.path.join(cls, "fold_0", "result.json")))
    assert result["overrides"]["pretrained"] == os.path.join(seg, "fold_0", "models", "model.pt")
    study = json.load(open(os.path.join(seg, "study.json")))
    assert study["gate"]["threshold"] == classifier["threshold"] == segmenter["two_stage"]["gate"]["threshold"]
    assert study["tta+fill_holes"]["per_case"] == pytest.approx(segmenter["per_case"], abs=1e-4)
    two_stage = segmenter["two_stage"]  # the study's gating is the summary's two-stage figure
    assert study["tta+gated+fill_holes"]["slice_detection"] == two_stage["slice_detection"]
    assert study["tta+gated+fill_holes"]["per_case"] == pytest.approx(two_stage["per_case"], abs=1e-4)
    cm, plain_cm = two_stage["slice_detection"]["confusion_matrix"], segmenter["slice_detection"]["confusion_matrix"]
    assert cm[0][1] <= plain_cm[0][1] and cm[1][1] <= plain_cm[1][1]  # gating only removes masks
