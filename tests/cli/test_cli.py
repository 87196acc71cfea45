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
    out = tmp_path / "prepared"
    result = CliRunner().invoke(
        cli, ["prepare", "pneumonia", "--data", synthetic_cxr, "--out", str(out), "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    d = json.loads((out / "datalist.json").read_text())
    assert d["training"] and d["validation"] and d["test"]
    assert "validation:" in result.output


def _one_line_error(result) -> str:
    """The output of a command that failed as every bad value should: exit status 1, one line."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["prepare", "pneumonia", "--data", str(tmp_path / "missing")])
    assert "data folder not found" in _one_line_error(result)
    assert "--data" in _one_line_error(runner.invoke(cli, ["prepare", "pneumonia"]))  # prepare needs --data
    result = runner.invoke(cli, ["prepare", "pneumonia", "--data", str(tmp_path), "--fold", "-1"])
    assert "Invalid value for '--fold'" in _one_line_error(result)  # click's own checks give one line too
    (tmp_path / "data" / "MRI").mkdir(parents=True)
    result = runner.invoke(
        cli, ["prepare", "pneumonia", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "x")]
    )
    assert (
        _one_line_error(result)
        == f"Error: {tmp_path / 'data' / 'MRI'}: unknown class folder (expected one of ['NORMAL', 'PNEUMONIA'])"
    )
    assert not (tmp_path / "x" / "datalist.json").exists()
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
    version = json.loads(open(os.path.join(pneumonia_bundle, "configs", "metadata.json")).read())["version"]
    out = tmp_path / "shared" / f"pneumonia-{version}.zip"  # --out is the folder; the zip is named after the bundle
    result = CliRunner().invoke(cli, ["export", pneumonia_bundle, "--out", str(tmp_path / "shared")])
    assert result.exit_code == 0, result.output
    assert os.listdir(tmp_path / "shared") == [out.name]
    names = zipfile.ZipFile(out).namelist()
    assert "pneumonia/configs/metadata.json" in names and not any("/runs/" in n for n in names)
    unpacked = resolve_bundle(str(out))
    assert sorted(os.listdir(os.path.join(unpacked, "configs"))) == sorted(
        os.listdir(os.path.join(pneumonia_bundle, "configs"))
    )
    assert resolve_bundle(str(out)) == unpacked  # unpacked once


@pytest.mark.parametrize("verb", ["export", "infer", "prepare"])
def test_out_is_a_folder(verb, pneumonia_bundle, synthetic_cxr, tmp_path):
    """``--out`` names a folder on every verb; a file name (the old spelling) is refused, nothing written."""
    args = {
        "export": ["export", pneumonia_bundle],
        "infer": ["infer", pneumonia_bundle, synthetic_cxr],
        "prepare": ["prepare", "pneumonia", "--data", synthetic_cxr],
    }[verb]
    for name in ("out.zip", "predictions.csv", "datalist.json"):
        result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / name)])
        assert "--out takes a folder" in _one_line_error(result)
    assert os.listdir(tmp_path) == []


def _zipped_bundle(bundle: str, path) -> str:
    """A zip of the bundle's configs (all a command reads before it runs anything)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name in os.listdir(os.path.join(bundle, "configs")):
            zf.write(os.path.join(bundle, "configs", name), f"pneumonia/configs/{name}")
    return str(path)


def test_threshold_write_refuses_a_zipped_bundle(pneumonia_bundle, synthetic_cxr, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MEDKIT_CACHE", str(cache))
    zipped = _zipped_bundle(pneumonia_bundle, tmp_path / "pneumonia.zip")
    result = CliRunner().invoke(cli, ["threshold", zipped, "--data", synthetic_cxr, "--write"])
    assert _one_line_error(result) == (
        f"Error: {zipped}: cannot --write into a zipped bundle; unzip it and pass the folder"
    )
    assert not cache.exists()  # refused before the zip was unpacked


def test_data_comes_from_data_or_medkit_data(pneumonia_bundle, synthetic_cxr, tmp_path, monkeypatch):
    """``--data`` wins; without it the bundle's data folder under MEDKIT_DATA; without both, one line."""
    from medkit.cli.common import data_dir
    from medkit.errors import MedkitError

    monkeypatch.delenv("MEDKIT_DATA", raising=False)
    assert data_dir(pneumonia_bundle, synthetic_cxr) == synthetic_cxr
    for verb in (["evaluate", pneumonia_bundle, "--out", str(tmp_path / "ev")], ["threshold", pneumonia_bundle]):
        result = CliRunner().invoke(cli, verb)
        assert _one_line_error(result) == "Error: no data: give --data DIR or set MEDKIT_DATA"
    result = CliRunner().invoke(cli, ["train", pneumonia_bundle, "--data", str(tmp_path / "nowhere")])
    assert "Invalid value for '--data'" in _one_line_error(result) and "data folder not found" in result.output
    monkeypatch.setenv("MEDKIT_DATA", str(tmp_path))
    with pytest.raises(MedkitError, match="chest_xray: data folder not found"):
        data_dir(pneumonia_bundle, None)
    os.symlink(synthetic_cxr, tmp_path / "chest_xray")  # the folder pneumonia's metadata names (medkit.data_folder)
    assert data_dir(pneumonia_bundle, None) == str(tmp_path / "chest_xray")
    assert data_dir(pneumonia_bundle, synthetic_cxr) == synthetic_cxr


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
    out = tmp_path / "fold1"
    args = ["prepare", "lgg", "--data", synthetic_lgg, "--out", str(out), "--folds", "3", "--fold", "1", "--volumes"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    d = json.loads((out / "datalist.json").read_text())
    assert d["fold"]["fold"] == 1 and len({i["patient"] for i in d["test"]}) == 2
    cases = {i["case"] for split in ("training", "validation", "test") for i in d[split]}
    assert sorted(os.listdir(out / "volumes")) == sorted(f"{c}{s}.nii.gz" for c in cases for s in ("", "_mask"))
    result = runner.invoke(cli, ["prepare", "lgg", "--data", synthetic_lgg, "--folds", "3", "--fold", "3"])
    assert "--fold must be below --folds (3)" in _one_line_error(result)
    result = runner.invoke(cli, ["prepare", "pneumonia", "--data", synthetic_lgg, "--folds", "3"])
    assert "--folds applies to the lgg source only" in _one_line_error(result)


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


def test_threshold_balanced_is_written_and_excludes_a_recall_target(pneumonia_bundle, synthetic_cxr, tmp_path):
    import json
    import shutil

    bundle = str(tmp_path / "pneumonia")
    shutil.copytree(pneumonia_bundle, bundle, ignore=shutil.ignore_patterns("runs"))
    both = CliRunner().invoke(cli, ["threshold", bundle, "--data", synthetic_cxr, "--balanced", "--recall", "0.9"])
    assert _one_line_error(both).startswith("Error: --balanced and --recall choose the threshold in two different ways")
    result = CliRunner().invoke(cli, ["threshold", bundle, "--data", synthetic_cxr, "--balanced", "--write"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("threshold "))
    assert line.endswith("(largest sensitivity + specificity)")
    written = json.loads((tmp_path / "pneumonia" / "configs" / "metadata.json").read_text())["medkit"]["threshold"]
    assert float(line.split()[1]) == written and 0.0 <= written <= 1.0
