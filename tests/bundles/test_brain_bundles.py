"""The brain MRI pair end to end on tiny synthetic slices: both bundles trained with the single-file command, the
threshold tool, two-stage evaluation and inference through ``medkit``."""

from __future__ import annotations

import csv
import json
import os
import shutil

import nibabel as nib
import pytest
from click.testing import CliRunner

from medkit.cli.main import cli
from tests.bundles.test_classification_bundles import FAST, _bundle_run
from tests.conftest import BUNDLES

PAIR = ("brain_mri_classification", "brain_mri_segmentation")


@pytest.fixture(scope="module")
def pair(tmp_path_factory, synthetic_lgg) -> dict:
    """Copies of both bundles side by side, each trained for one epoch from another working folder."""
    work = tmp_path_factory.mktemp("brain")
    bundles = work / "bundles"
    for name in PAIR:
        shutil.copytree(
            os.path.join(BUNDLES, name), bundles / name, ignore=shutil.ignore_patterns("model.pt", "runs", "eval")
        )
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    for name in reversed(PAIR):  # the segmenter first: the classifier's recipe starts from its weights
        train = str(bundles / name / "configs" / "train.json")
        _bundle_run(train, str(elsewhere), dataset_dir=synthetic_lgg, val_interval=1, **FAST)
        assert (bundles / name / "models" / "model.pt").is_file()
    return {"cls": str(bundles / PAIR[0]), "seg": str(bundles / PAIR[1]), "data": synthetic_lgg, "work": work}


def test_threshold_tool_writes_the_bundle_threshold(pair):
    result = CliRunner().invoke(cli, ["threshold", pair["cls"], "--data", pair["data"], "--recall", "1.0", "--write"])
    assert result.exit_code == 0, result.output
    assert "recall 1.0000" in result.output
    meta = json.load(open(os.path.join(pair["cls"], "configs", "metadata.json")))
    assert 0.0 <= meta["medkit"]["threshold"] <= 1.0
    # the bundle averages 7 neighbouring slices of a patient's stack: that mean gets its own threshold
    assert meta["medkit"]["slice_window"] == 7 and "stack threshold" in result.output
    assert 0.0 <= meta["medkit"]["stack_threshold"] <= 1.0


def test_two_stage_evaluation_reports_both_stages(pair, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["evaluate", pair["seg"], "--data", pair["data"], "--out", str(tmp_path / "two")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["n_cases"] == 6 and metrics["n_slices"] == 48
    for key in ("dice_patient_mean", "dice_slice_mean", "accuracy", "auc", "sensitivity", "specificity"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert (tmp_path / "two" / "worst_cases.png").stat().st_size > 0
    rows = list(csv.DictReader((tmp_path / "two" / "per_slice.csv").open()))
    assert len(rows) == 48 and all(r["tumour_probability"] for r in rows)
    stack_threshold = json.load(open(os.path.join(pair["cls"], "configs", "metadata.json")))["medkit"][
        "stack_threshold"
    ]
    assert all(float(r["gate_threshold"]) == pytest.approx(stack_threshold) for r in rows)  # stacks of 8 slices
    assert metrics["classification"]["slice_window"] == 7

    result = runner.invoke(
        cli, ["evaluate", pair["seg"], "--data", pair["data"], "--out", str(tmp_path / "one"), "--no-classifier"]
    )
    assert result.exit_code == 0, result.output
    alone = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert "dice_patient_mean" in alone and "accuracy" not in alone
    fp = {}
    for largest in ("true", "false"):  # the patient-level post-processing, on and off whatever the metadata says
        out = tmp_path / f"largest_{largest}"
        args = ["evaluate", pair["seg"], "--data", pair["data"], "--out", str(out), "--no-classifier"]
        result = runner.invoke(cli, [*args, "--set", f"largest_component_3d={largest}"])
        assert result.exit_code == 0, result.output
        fp[largest] = json.loads((out / "metrics.json").read_text())["false_positive_slices"]
    assert fp["true"] <= fp["false"]


def test_two_stage_inference_writes_masks_overlays_volumes_and_rows(pair, tmp_path):
    case = sorted(os.listdir(pair["data"]))[0]
    folder = os.path.join(pair["data"], case)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"junk")
    out = tmp_path / "inf"
    args = ["infer", pair["seg"], folder, str(bad), "--out", str(out), "--pixel-spacing", "0.5", "--threshold", "0.0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1  # one input could not be read; the others are written
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 9
    good, failed = rows[:8], rows[8]
    assert failed["error"].startswith(f"{bad}: ") and not failed["mask_file"]
    for row in good:
        assert not row["error"] and row["case"] == case and row["segmented"] == "True"
        assert 0.0 <= float(row["tumour_probability"]) <= 1.0
        assert float(row["tumour_area_mm2"]) == pytest.approx(int(row["tumour_pixels"]) * 0.25)
        assert os.path.isfile(row["mask_file"]) and os.path.isfile(row["overlay_file"])
    volume = nib.load(str(out / "nifti" / f"{case}_mask.nii.gz"))
    assert volume.shape == (64, 64, 8)
    assert int(volume.get_fdata().sum()) == sum(int(r["tumour_pixels"]) for r in good)


def test_high_threshold_skips_the_segmenter(pair, tmp_path):
    case = sorted(os.listdir(pair["data"]))[0]
    out = tmp_path / "table"
    args = [
        "infer",
        pair["seg"],
        os.path.join(pair["data"], case),
        "--out",
        str(out),
        "--threshold",
        "1.0",
        "--no-overlays",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert all(r["segmented"] == "False" and r["tumour_pixels"] == "0" and r["overlay_file"] == "" for r in rows)


def test_verify_both_bundles(pair):
    for bundle in (pair["cls"], pair["seg"]):
        result = CliRunner().invoke(cli, ["verify", bundle])
        assert result.exit_code == 0, result.output


def test_classifier_trains_from_mask_labels_as_monai_label_gives_them(synthetic_lgg, tmp_path):
    """MONAI Label's datastore hands a classification bundle's trainer each image with its label file: the
    brain classifier's train.json reads the class from the mask."""
    import glob

    bundle = tmp_path / "brain_mri_classification"
    shutil.copytree(os.path.join(BUNDLES, PAIR[0]), bundle, ignore=shutil.ignore_patterns("model.pt", "runs", "eval"))
    shutil.copytree(os.path.join(BUNDLES, PAIR[1]), tmp_path / PAIR[1], ignore=shutil.ignore_patterns("runs", "eval"))
    masks = sorted(glob.glob(os.path.join(synthetic_lgg, "**", "*_mask.tif"), recursive=True))
    items = [{"image": m.replace("_mask.tif", ".tif"), "label": m} for m in masks]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": items[8:], "validation": items[:8]}))
    _bundle_run(str(bundle / "configs" / "train.json"), str(tmp_path), datalist_file=str(datalist), **FAST)
    assert (bundle / "models" / "model.pt").is_file()


def test_medkit_train_runs_every_stage_of_the_recipe(pair, tmp_path):
    """The segmenter's recipe is two stages (train.json, then train.json + finetune.json from its model):
    ``medkit train`` runs both and keeps the first stage's model; ``--stage 2`` runs the second alone."""
    import torch

    out = tmp_path / "run"
    args = ["train", pair["seg"], "--data", pair["data"], "--epochs", "1", "--out", str(out), "--set", "batch_size=8"]
    result = CliRunner().invoke(cli, [*args, "--set", "num_workers=0"])
    assert result.exit_code == 0, result.output
    stage1, final = out / "models" / "model_stage1.pt", out / "models" / "model.pt"
    assert stage1.is_file() and final.is_file()
    first, second = (torch.load(p, weights_only=True) for p in (stage1, final))
    assert any(not torch.equal(first[k], second[k]) for k in first)  # stage 2 trained on from stage 1
    result = CliRunner().invoke(cli, [*args, "--stage", "2", "--stage", "3"])
    assert result.exit_code == 1 and "no training stage 3" in result.output


def _rows(folder) -> dict[tuple[str, str], dict]:
    """``predictions.csv`` of ``folder`` by (case, slice)."""
    return {(r["case"], r["slice"]): r for r in csv.DictReader((folder / "predictions.csv").open())}


def test_bad_slices_leave_their_good_neighbours_alone_and_flag_them(pair, tmp_path):
    """A zero-byte slice in one patient, a text file named as a slice in another: error rows naming them, exit code 1,
    no traceback; the read slices whose windows (2.5D input, the gate's 7-slice mean) held one are flagged, the
    others are not; every entry point writes the same rows."""
    import subprocess
    import sys

    cases = sorted(os.listdir(pair["data"]))[1:3]
    for name in ("clean", "broken"):
        for case in cases:
            shutil.copytree(os.path.join(pair["data"], case), tmp_path / name / case)
    empty = tmp_path / "broken" / cases[0] / f"{cases[0]}_1.tif"
    text = tmp_path / "broken" / cases[1] / f"{cases[1]}_8.tif"
    empty.write_bytes(b"")
    text.write_text("not an image\n")
    runner = CliRunner()
    before = runner.invoke(
        cli, ["infer", pair["seg"], *[str(tmp_path / "clean" / c) for c in cases], "--out", str(tmp_path / "before")]
    )
    assert before.exit_code == 0, before.output
    after = runner.invoke(
        cli, ["infer", pair["seg"], *[str(tmp_path / "broken" / c) for c in cases], "--out", str(tmp_path / "after")]
    )
    assert after.exit_code == 1 and "Traceback" not in after.output
    failures = [line for line in after.output.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 2 and failures[0] == f"failed: {empty}: file is empty (0 bytes)"
    assert failures[1].startswith(f"failed: {text}: ")
    rows, ref = _rows(tmp_path / "after"), _rows(tmp_path / "before")
    assert rows[(cases[0], "1")]["error"] and rows[(cases[1], "8")]["error"] and not rows[(cases[0], "1")]["mask_file"]
    assert all(r["neighbour_missing"] == "False" and r["case_incomplete"] == "False" for r in ref.values())
    # slice 1 bad: 2 lost its input neighbour; 2..4 hold 1, 5 holds 2 in their 7-slice windows; 6..8 are clear
    flagged = {(cases[0], str(n)): n <= 5 for n in range(2, 9)} | {(cases[1], str(n)): n >= 4 for n in range(1, 8)}
    assert {k: rows[k]["neighbour_missing"] == "True" for k in flagged} == flagged
    for key in flagged:  # only the per-patient intensity scale (flagged case_incomplete) moves the clear slices
        assert rows[key]["case_incomplete"] == "True" and not rows[key]["error"]
        if not flagged[key]:
            assert float(rows[key]["tumour_probability"]) == pytest.approx(
                float(ref[key]["tumour_probability"]), abs=0.02
            )
    assert not (tmp_path / "after" / "nifti").exists()  # slices would no longer sit at their places

    config = os.path.join(pair["seg"], "configs", "inference.json")
    for case in cases:  # monai.bundle run takes one folder
        run = subprocess.run(
            [sys.executable, "-m", "monai.bundle", "run", "--config_file", config,
             "--dataset_dir", str(tmp_path / "broken" / case), "--output_dir", str(tmp_path / "by_monai" / case)],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert "Traceback" not in run.stderr, run.stderr[-3000:]
        assert run.returncode == 1  # as medkit infer: the bad slice's row is written, the run fails
        assert run.stderr.strip().splitlines()[-1].startswith("Error: 1 of 8 input(s) failed")
        by_monai = list(csv.DictReader((tmp_path / "by_monai" / case / "predictions.csv").open()))
        assert len(by_monai) == 8
        for r in by_monai:
            mine = rows[(case, r["slice"])]
            assert [
                r[c] for c in ("tumour_probability", "tumour_pixels", "neighbour_missing", "case_incomplete", "error")
            ] == [
                mine[c]
                for c in ("tumour_probability", "tumour_pixels", "neighbour_missing", "case_incomplete", "error")
            ]
