"""End to end on tiny synthetic data: ``python -m monai.bundle`` and ``medkit`` train, evaluate and infer."""

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

FAST = {"epochs": 1, "batch_size": 8, "num_workers": 0}


def _bundle_run(config: str, cwd: str, **overrides) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_cxr, pneumonia_bundle) -> dict:
    """A copy of the bundle trained for one epoch with the single-file command, run from another folder."""
    work = tmp_path_factory.mktemp("bundle")
    bundle = str(work / "pneumonia_copy")
    shutil.copytree(pneumonia_bundle, bundle, ignore=shutil.ignore_patterns("model.pt", "runs", "eval"))
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    _bundle_run(os.path.join(bundle, "configs", "train.json"), str(elsewhere), dataset_dir=synthetic_cxr, **FAST)
    return {"bundle": bundle, "work": work}


def test_single_file_train_writes_into_the_copied_bundle(trained):
    model = os.path.join(trained["bundle"], "models", "model.pt")
    assert os.path.isfile(model) and os.path.getsize(model) < 25 * 2**20
    assert os.listdir(os.path.join(trained["bundle"], "runs"))  # TensorBoard events


@pytest.mark.parametrize(
    "config, kind", [("train.json", "train"), ("evaluate.json", "infer"), ("inference.json", "infer")]
)
def test_check_properties(pneumonia_bundle, synthetic_cxr, tmp_path, config, kind):
    wf = ConfigWorkflow(
        config_file=os.path.join(pneumonia_bundle, "configs", config),
        workflow_type=kind,
        dataset_dir=synthetic_cxr,
        ckpt_dir=str(tmp_path),
        output_dir=str(tmp_path),
        **FAST,
    )
    wf.initialize()
    assert wf.check_properties() == []


def test_bundle_evaluate_and_infer(trained, synthetic_cxr):
    configs = os.path.join(trained["bundle"], "configs")
    out = trained["work"] / "eval"
    _bundle_run(os.path.join(configs, "evaluate.json"), str(trained["work"]), dataset_dir=synthetic_cxr, output_dir=out)
    metrics = json.loads((out / "metrics.json").read_text())
    n_images = sum(len(files) for _, _, files in os.walk(synthetic_cxr))
    assert metrics["n_cases"] == n_images
    for key in ("accuracy", "auc", "f1_macro", "sensitivity", "specificity"):
        assert 0.0 <= metrics[key] <= 1.0
    for name in ("confusion_matrix.png", "roc.png", "worst_mistakes.png", "predictions.csv"):
        assert (out / name).stat().st_size > 0
    pred = trained["work"] / "pred.csv"
    _bundle_run(
        os.path.join(configs, "inference.json"),
        str(trained["work"]),
        dataset_dir=os.path.join(synthetic_cxr, "test"),
        output_file=pred,
    )
    rows = list(csv.DictReader(pred.open()))
    assert len(rows) == sum(len(f) for _, _, f in os.walk(os.path.join(synthetic_cxr, "test")))
    assert all(r["label"] in ("NORMAL", "PNEUMONIA") and not r["error"] for r in rows)


def test_medkit_cli_train_evaluate_infer(trained, synthetic_cxr, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(
        cli,
        [
            "train",
            trained["bundle"],
            "--data",
            synthetic_cxr,
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
        cli, ["evaluate", trained["bundle"], synthetic_cxr, "--out", str(tmp_path / "ev"), "--checkpoint", str(model)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {"n_cases", "accuracy", "auc", "f1_macro", "sensitivity", "specificity"} <= set(metrics)

    bad = tmp_path / "bad.jpeg"
    bad.write_bytes(b"")
    images = os.path.join(synthetic_cxr, "test", "PNEUMONIA")
    out_json = tmp_path / "pred.json"
    args = ["infer", trained["bundle"], images, str(bad), "--checkpoint", str(model), "--out", str(out_json)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    rows = json.loads(out_json.read_text())
    assert len(rows) == len(os.listdir(images)) + 1
    assert rows[-1]["error"] == f"{bad}: file is empty (0 bytes)"
    assert all(r["label"] for r in rows[:-1])

    result = runner.invoke(
        cli, ["infer", trained["bundle"], images, "--checkpoint", str(model), "--out", str(out_json)]
    )
    assert result.exit_code == 0, result.output
