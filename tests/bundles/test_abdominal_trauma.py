"""The abdominal trauma bundle end to end on a tiny synthetic RSNA 2023 look-alike: single-file training from
another folder, properties, evaluation (competition score) and submission-format inference through ``medkit``."""

from __future__ import annotations

import csv
import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from monai.data import list_data_collate

from medkit.cli.main import cli
from medkit.data.synthetic_ct import DEMO_INJURIES, synthetic_ct_volume, write_synthetic_rsna_demo
from medkit.metrics.rsna import SUBMISSION_COLUMNS
from tests.bundles.test_classification_bundles import _bundle_run, check_properties
from tests.conftest import BUNDLES

TINY = {"epochs": 1, "batch_size": 4, "num_workers": 0}
SMALL_GRID = {"pixdim": [12.0, 12.0, 16.0], "spatial_size": [32, 32, 16]}
HEALTHY = {"bowel": 0, "extravasation": 0, "kidney": 0, "liver": 0, "spleen": 0}
N_PATIENTS = len(DEMO_INJURIES) + 7


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A copy of the bundle with a coarse grid (fast), trained one epoch by the single-file command elsewhere."""
    work = tmp_path_factory.mktemp("trauma")
    data = work / "rsna"
    write_synthetic_rsna_demo(str(data))
    bundle = work / "bundles" / "abdominal_trauma"
    shutil.copytree(
        os.path.join(BUNDLES, "abdominal_trauma"), bundle, ignore=shutil.ignore_patterns("model.pt", "runs", "eval")
    )
    meta_file = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["medkit"]["preprocessing"].update(SMALL_GRID)
    meta["network_data_format"]["inputs"]["image"]["spatial_shape"] = SMALL_GRID["spatial_size"]
    meta["medkit"]["network_def"]["channels"] = [4, 8, 8, 16]
    meta_file.write_text(json.dumps(meta, indent=2))
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    proc = _bundle_run(str(bundle / "configs" / "train.json"), str(elsewhere), dataset_dir=str(data), **TINY)
    assert "training cache: " in proc.stderr + proc.stdout  # memory per cached volume is reported
    return {"bundle": str(bundle), "data": str(data), "work": work}


def test_single_file_train_writes_the_model(trained):
    model = os.path.join(trained["bundle"], "models", "model.pt")
    assert os.path.isfile(model) and os.path.getsize(model) < 25 * 2**20


def test_training_is_given_the_masks(trained):
    """The training chain loads segmentations/<series>.nii.gz with each series, cuts patches of image and mask
    together, and the trainer passes the masks on as its targets."""
    from monai.bundle import ConfigParser

    from medkit.workflows import PrepareBatchWithSeg

    parser = ConfigParser()
    parser.read_meta(os.path.join(trained["bundle"], "configs", "metadata.json"))
    parser.read_config(os.path.join(trained["bundle"], "configs", "train.json"))
    parser["bundle_root"] = trained["bundle"]
    parser["dataset_dir"] = trained["data"]
    item = parser.get_parsed_content("datalist")["training"][0]
    patches = parser.get_parsed_content("train#preprocessing")(item)
    assert len(patches) == parser.get_parsed_content("patches_per_volume")
    size = [min(p, g) for p, g in zip(parser.get_parsed_content("patch_size"), SMALL_GRID["spatial_size"])]
    for out in patches:
        assert list(out["image"].shape[1:]) == size and out["seg"].shape[1:] == out["image"].shape[1:]
        assert int(out["seg"].max()) >= 1  # centred on a label
    prepare = parser.get_parsed_content("train#trainer").prepare_batch  # DeviceBatch around the bundle's own
    assert isinstance(prepare.prepare_batch, PrepareBatchWithSeg) and prepare.prepare_batch.seg_only
    inputs, targets = prepare(list_data_collate(patches), torch.device("cpu"))  # augmented as a batch, then split
    assert inputs.shape[0] == len(patches) and targets.shape == (len(patches), 1, *size)
    assert targets.dtype == torch.int8 and int(targets.max()) >= 1


@pytest.mark.parametrize(
    "config, kind", [("train.json", "train"), ("evaluate.json", "infer"), ("inference.json", "infer")]
)
def test_check_properties(trained, tmp_path, config, kind):
    check_properties(os.path.join(trained["bundle"], "configs", config), kind, trained["data"], str(tmp_path), **TINY)


def test_evaluate_writes_the_competition_score(trained, tmp_path):
    out = tmp_path / "ev"
    result = CliRunner().invoke(cli, ["evaluate", trained["bundle"], "--data", trained["data"], "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_cases"] == N_PATIENTS and metrics["weighted_log_loss"] > 0
    assert metrics["prior_baseline_weighted_log_loss"] > 0 and metrics["best_constant_baseline_weighted_log_loss"] > 0
    for key in ("auc_bowel", "auc_extravasation", "auc_kidney", "auc_liver", "auc_spleen", "auc_any_injury"):
        assert metrics[key] is None or 0.0 <= metrics[key] <= 1.0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert list(rows[0]) == ["patient_id", *SUBMISSION_COLUMNS] and len(rows) == N_PATIENTS
    assert "weighted_log_loss" in result.output


def test_infer_series_and_nifti_to_a_submission(trained, tmp_path):
    series = os.path.join(trained["data"], "train_images", "1000")
    volume, info = synthetic_ct_volume(HEALTHY, shape=(32, 32, 16), rng=1)
    nifti = tmp_path / "scan_7.nii.gz"
    spacing = info.get("spacing", (12.0, 12.0, 16.0))
    nib.save(nib.Nifti1Image(volume.astype(np.int16), np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])), str(nifti))
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "1.dcm").write_bytes(b"not dicom")
    out = tmp_path / "submission"
    result = CliRunner().invoke(cli, ["infer", trained["bundle"], series, str(nifti), str(bad), "--out", str(out)])
    assert result.exit_code == 1, result.output  # the broken series is reported, the others written
    assert "failed: " in result.output and str(bad) in result.output
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["patient_id"] for r in rows] == ["1000", "scan_7"]
    for row in rows:
        probs = [float(row[c]) for c in SUBMISSION_COLUMNS]
        assert sum(probs[:2]) == pytest.approx(1, abs=1e-4) and sum(probs[4:7]) == pytest.approx(1, abs=1e-4)


def test_prepare_rsna_and_synthetic(trained, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["prepare", "rsna", "--data", trained["data"], "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    datalist = json.loads((tmp_path / "datalist.json").read_text())
    assert sum(len(datalist[s]) for s in ("training", "validation", "test")) == N_PATIENTS
    assert "series of" in result.output
    run = tmp_path / "run"
    args = ["train", trained["bundle"], "--datalist", str(tmp_path / "datalist.json"), "--epochs", "1"]
    args += ["--out", str(run)]
    result = runner.invoke(cli, [*args, "--set", "batch_size=4", "--set", "num_workers=0"])
    assert result.exit_code == 0, result.output
    assert (run / "models" / "model.pt").is_file()
    out = tmp_path / "synth"
    args = [
        "prepare",
        "rsna-synthetic",
        "--data",
        trained["data"],
        "--out",
        str(out),
        "--patients",
        "3",
        "--shape",
        "16",
        "16",
        "8",
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(os.listdir(out / "train_images")) == 3 and (out / "train.csv").is_file()
    ids = tmp_path / "ids.txt"
    ids.write_text("1001\n2003\n")
    chosen = tmp_path / "chosen"
    args = ["prepare", "rsna-synthetic", "--data", trained["data"], "--out", str(chosen), "--patient-ids", str(ids)]
    result = runner.invoke(cli, [*args, "--shape", "16", "16", "8"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(chosen / "train_images")) == ["1001", "2003"]


@pytest.mark.realdata
def test_shipped_model_infers_the_real_cts(medkit_data, tmp_path):
    """The real abdominal CTs (RLE and JPEG 2000 DICOM series, a NIfTI) load, preprocess and get a submission row;
    the JPEG 2000 series, a 40 mm slab of 20 slices, is decoded but refused by the bundle's ``medkit.accepts``
    (at least 100 mm each way) with one line, so the command exits 1."""
    model = os.path.join(BUNDLES, "abdominal_trauma", "models", "model.pt")
    if not os.path.isfile(model):
        pytest.skip("the bundle has no trained weights")
    root = os.path.join(medkit_data, "abdominal_ct")
    inputs = [
        os.path.join(root, "ircad_patient_01", "PATIENT_DICOM"),
        os.path.join(root, "totalsegmentator_example", "example_ct_dicom"),
        os.path.join(root, "totalsegmentator_example", "example_ct.nii.gz"),
    ]
    out = tmp_path / "submission"
    result = CliRunner().invoke(cli, ["infer", os.path.join(BUNDLES, "abdominal_trauma"), *inputs, "--out", str(out)])
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("failed: ")]
    assert failed == [
        f"failed: {inputs[1]}: covers 500x500x40 mm, less than the 100x100x100 mm this bundle needs for an "
        "abdominal CT volume"
    ]
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["patient_id"] for r in rows] == ["PATIENT_DICOM", "example_ct"]
    for row in rows:
        probs = np.array([float(row[c]) for c in SUBMISSION_COLUMNS])
        assert np.all((probs >= 0) & (probs <= 1)) and probs[:2].sum() == pytest.approx(1, abs=1e-4)
