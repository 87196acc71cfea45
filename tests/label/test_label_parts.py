"""The parts of medkit's MONAI Label app that run without MONAI Label (the default suite): one image through a
bundle's inference workflow, the app folder, the training datalist, the pydicom shim, the command's checks."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
from click.testing import CliRunner

from medkit.cli.main import cli
from medkit.errors import MedkitError
from medkit.label.predict import predict
from medkit.label.server import MAIN_PY, prepare_app, server_command
from medkit.label.train import train_on_pairs
from tests.conftest import BUNDLES
from tests.label.studies import IMAGES, write_studies


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> str:
    return write_studies(str(tmp_path_factory.mktemp("studies")), lgg_patients=1, lgg_slices=4)


def test_pydicom_shim_maps_the_old_module_to_pydicom_uid():
    import importlib

    import pydicom.uid

    import medkit.label.compat  # noqa: F401

    old = importlib.import_module("pydicom._storage_sopclass_uids")  # what pydicom-seg 0.4.1 imports
    assert old.SegmentationStorage == pydicom.uid.SegmentationStorage


def test_predict_a_classifier(studies, tmp_path):
    label_file, result = predict(
        os.path.join(BUNDLES, "pneumonia"), os.path.join(studies, IMAGES["pneumonia"] + ".jpeg"), str(tmp_path), "cpu"
    )
    assert label_file is None
    from medkit.bundle import load_metadata

    threshold = load_metadata(os.path.join(BUNDLES, "pneumonia"))["medkit"]["threshold"]  # the shipped one
    assert list(result["probabilities"]) == ["NORMAL", "PNEUMONIA"] and result["threshold"] == threshold
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert result["label"] == ("PNEUMONIA" if result["probabilities"]["PNEUMONIA"] >= threshold else "NORMAL")


def test_predict_names_the_bad_input(studies, tmp_path):
    bundle = os.path.join(BUNDLES, "pneumonia")
    ct = os.path.join(studies, IMAGES["abdominal_trauma"] + ".nii.gz")
    with pytest.raises(MedkitError, match=f"^{ct}: "):
        predict(bundle, ct, str(tmp_path), "cpu")
    with pytest.raises(MedkitError, match="no such file"):
        predict(bundle, os.path.join(studies, "missing.png"), str(tmp_path))
    with pytest.raises(MedkitError, match="a folder; pneumonia takes one image file"):
        predict(bundle, studies, str(tmp_path))


def test_prepare_app_copies_bundles_and_the_gating_classifier(tmp_path):
    app = tmp_path / "app"
    done = prepare_app(["brain_mri_segmentation"], str(app))
    assert done == {"brain_mri_segmentation": "copied"}
    assert (app / "main.py").read_text() == MAIN_PY
    for name in ("brain_mri_segmentation", "brain_mri_classification"):  # the gate is put beside the segmenter
        assert (app / "model" / name / "configs" / "inference.json").is_file()
        assert (app / "model" / name / "models" / "model.pt").is_file()
        assert not (app / "model" / name / "runs").exists()
    trained = app / "model" / "brain_mri_segmentation" / "models" / "model.pt"
    trained.write_bytes(b"a model trained from MONAI Label")
    done = prepare_app(["brain_mri_segmentation"], str(app))
    assert done == {"brain_mri_segmentation": "configs updated, its models/ kept"}
    assert trained.read_bytes() == b"a model trained from MONAI Label"


def test_prepare_app_refuses_untrained_and_same_named_bundles(tmp_path):
    untrained = tmp_path / "a" / "pneumonia"
    shutil.copytree(os.path.join(BUNDLES, "pneumonia"), untrained, ignore=shutil.ignore_patterns("model.pt"))
    with pytest.raises(MedkitError, match="model.pt: missing"):
        prepare_app([str(untrained)], str(tmp_path / "app"))
    shutil.copy(os.path.join(BUNDLES, "pneumonia", "models", "model.pt"), untrained / "models")
    with pytest.raises(MedkitError, match="a second bundle named 'pneumonia'"):
        prepare_app(["pneumonia", str(untrained)], str(tmp_path / "app"))


def test_server_command_is_monai_labels_start_server():
    cmd = server_command("app", "studies", ["covid", "pneumonia"], port=8123)
    assert cmd[1:4] == ["-m", "monailabel.main", "start_server"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[-3:] == ["--conf", "models", "covid,pneumonia"]


def test_train_refuses_one_patient_and_classifiers(studies, tmp_path):
    labels = os.path.join(studies, "labels", "final")
    pairs = [{"image": os.path.join(studies, f), "label": os.path.join(labels, f)} for f in sorted(os.listdir(labels))]
    bundle = tmp_path / "brain_mri_segmentation"
    shutil.copytree(os.path.join(BUNDLES, "brain_mri_segmentation"), bundle, ignore=shutil.ignore_patterns("runs"))
    with pytest.raises(MedkitError, match="of 1 patient.*at least 2 patients"):
        train_on_pairs(str(bundle), pairs, epochs=2)
    with pytest.raises(MedkitError, match="offered for segmentation bundles"):
        train_on_pairs(os.path.join(BUNDLES, "pneumonia"), pairs, epochs=2)


@pytest.mark.skipif(importlib.util.find_spec("monailabel") is not None, reason="MONAI Label is installed here")
def test_label_server_without_monai_label_says_how_to_get_it(studies):
    result = CliRunner().invoke(cli, ["label-server", "pneumonia", "--studies", studies])
    assert result.exit_code == 1
    assert "MONAI Label is not installed" in result.output and "bash scripts/setup.sh --label" in result.output
