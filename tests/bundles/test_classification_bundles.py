"""Each classification bundle end to end on tiny synthetic data: ``python -m monai.bundle`` and ``medkit``."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from monai.bundle import ConfigWorkflow

from medkit.cli.main import cli
from tests.conftest import BUNDLES

FAST = {"epochs": 1, "batch_size": 8, "num_workers": 0}


def _bundle_run(config: str, cwd: str, **overrides) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def check_properties(config_file: str, kind: str, data: str, scratch: str, **overrides) -> None:
    """MONAI's ``check_properties`` on a bundle workflow, with data and scratch output folders."""
    wf = ConfigWorkflow(
        config_file=config_file,
        workflow_type=kind,
        dataset_dir=data,
        ckpt_dir=scratch,
        output_dir=scratch,
        **overrides,
    )
    wf.initialize()
    assert wf.check_properties() == []


def _images(folder: str) -> list[str]:
    """Image files below ``folder``, masks (``*_mask.*``) not counted."""
    return [f for _, _, files in os.walk(folder) for f in files if "_mask." not in f]


@pytest.fixture(scope="module", params=["pneumonia", "covid", "brain_mri_classification"])
def case(request, synthetic_cxr, synthetic_covid, synthetic_lgg) -> dict:
    """Bundle name, its folder, its synthetic data and a folder of unlabelled test images."""
    name = request.param
    data = {"pneumonia": synthetic_cxr, "covid": synthetic_covid, "brain_mri_classification": synthetic_lgg}[name]
    images = {
        "pneumonia": os.path.join(data, "test", "PNEUMONIA"),
        "covid": os.path.join(data, "COVID"),
        "brain_mri_classification": os.path.join(data, sorted(os.listdir(data))[0]),  # one patient: slices and masks
    }[name]
    return {"name": name, "bundle": os.path.join(BUNDLES, name), "data": data, "images": images}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, case) -> dict:
    """A copy of the bundle trained for one epoch with the single-file command, run from another folder."""
    work = tmp_path_factory.mktemp(case["name"])
    bundle = str(work / f"{case['name']}_copy")
    shutil.copytree(case["bundle"], bundle, ignore=shutil.ignore_patterns("model.pt", "runs", "eval"))
    if case["name"] == "brain_mri_classification":  # its recipe starts from the segmenter beside it
        segmenter = os.path.join(BUNDLES, "brain_mri_segmentation")
        shutil.copytree(segmenter, work / "brain_mri_segmentation", ignore=shutil.ignore_patterns("runs", "eval"))
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    _bundle_run(os.path.join(bundle, "configs", "train.json"), str(elsewhere), dataset_dir=case["data"], **FAST)
    return {**case, "bundle": bundle, "work": work}


def test_single_file_train_writes_into_the_copied_bundle(trained):
    model = os.path.join(trained["bundle"], "models", "model.pt")
    assert os.path.isfile(model) and os.path.getsize(model) < 25 * 2**20
    assert os.listdir(os.path.join(trained["bundle"], "runs"))  # TensorBoard events


@pytest.mark.parametrize(
    "config, kind", [("train.json", "train"), ("evaluate.json", "infer"), ("inference.json", "infer")]
)
def test_check_properties(case, tmp_path, config, kind):
    check_properties(os.path.join(case["bundle"], "configs", config), kind, case["data"], str(tmp_path), **FAST)


def test_bundle_evaluate_and_infer(trained):
    data = trained["data"]
    configs = os.path.join(trained["bundle"], "configs")
    out = trained["work"] / "eval"
    _bundle_run(os.path.join(configs, "evaluate.json"), str(trained["work"]), dataset_dir=data, output_dir=out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_cases"] == len(_images(data))
    for key in ("accuracy", "auc", "f1_macro", "sensitivity", "specificity"):
        assert 0.0 <= metrics[key] <= 1.0
    for name in ("confusion_matrix.png", "roc.png", "worst_mistakes.png", "predictions.csv"):
        assert (out / name).stat().st_size > 0
    pred = trained["work"] / "pred.csv"
    _bundle_run(
        os.path.join(configs, "inference.json"),
        str(trained["work"]),
        dataset_dir=trained["images"],
        output_file=pred,
    )
    rows = list(csv.DictReader(pred.open()))
    assert len(rows) == len(_images(trained["images"]))
    assert all(r["label"] in metrics["class_names"] and not r["error"] for r in rows)


def test_medkit_cli_train_evaluate_infer(trained, tmp_path):
    runner = CliRunner()
    data = trained["data"]
    out = tmp_path / "run"
    result = runner.invoke(
        cli,
        [
            "train",
            trained["bundle"],
            "--data",
            data,
            "--epochs",
            "1",
            "--out",
            str(out),
            "--set",
            "batch_size=8",
        ],
    )
    assert result.exit_code == 0, result.output
    model = out / "models" / "model.pt"
    assert model.is_file()

    result = runner.invoke(
        cli, ["evaluate", trained["bundle"], "--data", data, "--out", str(tmp_path / "ev"), "--checkpoint", str(model)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {"n_cases", "accuracy", "auc", "f1_macro", "sensitivity", "specificity"} <= set(metrics)

    bad = tmp_path / "bad.jpeg"
    bad.write_bytes(b"")
    images = trained["images"]
    pred = tmp_path / "pred"
    args = ["infer", trained["bundle"], images, str(bad), "--checkpoint", str(model), "--out", str(pred)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    rows = list(csv.DictReader((pred / "predictions.csv").open()))
    assert len(rows) == len(_images(images)) + 1
    assert rows[-1]["error"].startswith(f"{bad}: ") and "empty" in rows[-1]["error"]
    assert all(r["label"] for r in rows[:-1])

    result = runner.invoke(cli, ["infer", trained["bundle"], images, "--checkpoint", str(model), "--out", str(pred)])
    assert result.exit_code == 0, result.output


def test_training_starts_from_a_checkpoint(trained, tmp_path):
    """``--pretrained`` loads the bundle's own weights (transfer learning from a local checkpoint)."""
    import torch

    model = os.path.join(trained["bundle"], "models", "model.pt")
    wf = ConfigWorkflow(
        config_file=os.path.join(trained["bundle"], "configs", "train.json"),
        workflow_type="train",
        dataset_dir=trained["data"],
        pretrained=model,
        ckpt_dir=str(tmp_path),
        output_dir=str(tmp_path),
        **FAST,
    )
    wf.initialize()
    net = wf.parser.get_parsed_content("network")
    saved = torch.load(model, map_location="cpu", weights_only=True)
    assert all(torch.equal(v, net.state_dict()[k].cpu()) for k, v in saved.items())  # the network may be on a GPU
