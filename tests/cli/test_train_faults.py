"""``medkit train`` faults: a diverging run stops with one line and saves nothing; a rerun into a folder that holds
a model is refused unless ``--overwrite``."""

from __future__ import annotations

import os

from click.testing import CliRunner

from medkit.cli.main import cli
from tests.conftest import BUNDLES

FAST = ["--epochs", "1", "--set", "batch_size=8", "--set", "num_workers=0"]


def _train(data, out, *extra):
    return CliRunner().invoke(cli, ["train", f"{BUNDLES}/pneumonia", "--data", data, "--out", str(out), *FAST, *extra])


def test_a_diverging_run_stops_with_one_line_and_saves_nothing(synthetic_cxr, tmp_path):
    result = _train(synthetic_cxr, tmp_path / "run", "--set", "learning_rate=1e30")
    assert result.exit_code == 1
    assert "Error: training diverged: the loss is nan" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "models" / "model.pt").exists()


def test_a_model_already_in_the_output_is_replaced_only_with_overwrite(synthetic_cxr, tmp_path):
    out = tmp_path / "run"
    assert _train(synthetic_cxr, out).exit_code == 0
    model = out / "models" / "model.pt"
    first = model.read_bytes()
    result = _train(synthetic_cxr, out)
    assert result.exit_code == 1 and "a model is already there" in result.output
    assert str(model) in result.output and "Traceback" not in result.output
    assert model.read_bytes() == first
    result = _train(synthetic_cxr, out, "--overwrite", "--set", "seed=1")
    assert result.exit_code == 0, result.output
    assert model.read_bytes() != first


def test_out_must_be_a_writable_folder(synthetic_cxr, tmp_path):
    (tmp_path / "file").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    for out, message in ((tmp_path / "file", "--out takes a folder"), ("/dev/null", "--out takes a folder")):
        result = _train(synthetic_cxr, out)
        assert result.exit_code == 1 and message in result.output, result.output
    if os.geteuid() != 0:  # root may write anywhere
        result = _train(synthetic_cxr, locked / "run")
        assert result.exit_code == 1 and "not writable" in result.output


def test_infer_on_a_folder_without_images_names_it_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["infer", f"{BUNDLES}/pneumonia", str(empty), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == f"Error: {empty}: no image files found (nothing written)"
    assert not (out / "predictions.csv").exists()
