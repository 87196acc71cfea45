from __future__ import annotations

import csv
import io
import json
import os
import sys

import pytest
from click.testing import CliRunner

from medkit.cli.main import cli


def test_prepare_writes_datalist(synthetic_cxr, tmp_path):
    out = tmp_path / "dl.json"
    result = CliRunner().invoke(cli, ["prepare", "pneumonia", synthetic_cxr, "--out", str(out), "--seed", "2"])
    assert result.exit_code == 0, result.output
    d = json.loads(out.read_text())
    assert d["training"] and d["validation"] and d["test"]
    assert "validation:" in result.output


def test_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["prepare", "pneumonia", str(tmp_path / "missing")])
    assert result.exit_code != 0 and "data folder not found" in result.output
    (tmp_path / "data" / "MRI").mkdir(parents=True)
    result = runner.invoke(cli, ["prepare", "pneumonia", str(tmp_path / "data"), "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == f"Error: {tmp_path / 'data' / 'MRI'}: unknown class folder (expected one of ['NORMAL', 'PNEUMONIA'])"
    )
    assert not (tmp_path / "x.json").exists()
    result = runner.invoke(cli, ["verify", str(tmp_path)])
    assert result.exit_code != 0 and "not a bundle" in result.output


def test_verify_pneumonia(pneumonia_bundle):
    result = CliRunner().invoke(cli, ["verify", pneumonia_bundle])
    assert result.exit_code == 0, result.output
    for check in ("metadata", "train properties", "infer properties", "network shapes"):
        assert f"[ok] {check}" in result.output


def test_export_zip_is_a_bundle(pneumonia_bundle, tmp_path, monkeypatch):
    import zipfile

    from medkit.bundle import resolve_bundle

    monkeypatch.setenv("MEDKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "pneumonia.zip"
    result = CliRunner().invoke(cli, ["export", pneumonia_bundle, "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = zipfile.ZipFile(out).namelist()
    assert "pneumonia/configs/metadata.json" in names and not any("/runs/" in n for n in names)
    unpacked = resolve_bundle(str(out))
    assert sorted(os.listdir(os.path.join(unpacked, "configs"))) == sorted(
        os.listdir(os.path.join(pneumonia_bundle, "configs"))
    )
    assert resolve_bundle(str(out)) == unpacked  # unpacked once


def test_lr_find_on_synthetic(pneumonia_bundle, synthetic_cxr, tmp_path):
    out = tmp_path / "lr"
    args = ["lr-find", pneumonia_bundle, "--data", synthetic_cxr, "--num-iter", "6", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--set", "batch_size=4", "--start-lr", "1e-5", "--end-lr", "1e-1"])
    assert result.exit_code == 0, result.output
    found = json.loads((out / "lr_find.json").read_text())
    assert len(found["lrs"]) == len(found["losses"]) >= 5
    assert 1e-5 <= found["lrs"][0] < found["lrs"][-1] <= 1e-1
    assert (out / "lr_find.png").stat().st_size > 0 and "steepest loss descent" in result.output


def test_prepare_lgg_cross_validation_fold(synthetic_lgg, tmp_path):
    runner = CliRunner()
    out = tmp_path / "fold1.json"
    result = runner.invoke(cli, ["prepare", "lgg", synthetic_lgg, "--out", str(out), "--folds", "3", "--fold", "1"])
    assert result.exit_code == 0, result.output
    d = json.loads(out.read_text())
    assert d["fold"]["fold"] == 1 and len({i["patient"] for i in d["test"]}) == 2
    result = runner.invoke(cli, ["prepare", "lgg", synthetic_lgg, "--folds", "3", "--fold", "3"])
    assert result.exit_code != 0 and "--fold must be below --folds (3)" in result.output
    result = runner.invoke(cli, ["prepare", "pneumonia", synthetic_lgg, "--folds", "3"])
    assert result.exit_code != 0 and "--folds applies to the lgg source only" in result.output


def test_demo_runs_the_whole_pneumonia_job(tmp_path):
    """README's first command: synthetic X-rays, prepare, train, evaluate and infer, all under --out."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    for name in ("datalist.json", "train/models/model.pt", "eval/metrics.json", "predictions.csv"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert rows and all(r["label"] in {"NORMAL", "PNEUMONIA"} and not r["error"] for r in rows)
    again = CliRunner().invoke(cli, ["demo", "--out", str(out)])  # never writes over a data set already there
    assert again.exit_code != 0 and "already holds a data set" in again.output


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [False, True])
def test_progress_bar_only_on_a_terminal(monkeypatch, tty):
    from ignite.engine import Engine

    from medkit.cli.common import attach_progress

    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    engine = Engine(lambda e, b: None)
    attach_progress(engine, "infer")
    engine.run(range(3), max_epochs=1)
    assert ("infer" in stream.getvalue()) == tty  # a log file or pipe gets no carriage-return bar
