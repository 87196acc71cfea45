"""A broken bundle is one line naming the file: a corrupt, truncated or foreign model.pt, an invalid metadata.json,
a corrupt zip (which leaves nothing half-unpacked in the cache)."""

from __future__ import annotations

import os
import shutil

import pytest
from click.testing import CliRunner

from medkit.cli.main import cli
from tests.conftest import BUNDLES


@pytest.fixture
def bundle(tmp_path):
    return shutil.copytree(os.path.join(BUNDLES, "pneumonia"), tmp_path / "pneumonia")


@pytest.fixture
def image(tmp_path):
    import numpy as np
    from PIL import Image

    path = tmp_path / "x.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(path)  # a gradient, not blank
    return str(path)


def _infer(bundle, image, tmp_path):
    return CliRunner().invoke(cli, ["infer", str(bundle), image, "--out", str(tmp_path / "out")])


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda m: m.write_bytes(m.read_bytes()[: len(m.read_bytes()) // 3]), "not a PyTorch checkpoint"),
        (lambda m: m.write_bytes(b""), "not a PyTorch checkpoint"),
        (lambda m: shutil.copy(os.path.join(BUNDLES, "covid", "models", "model.pt"), m), "does not fit the network"),
        (lambda m: m.unlink(), "weights file not found"),
    ],
    ids=["truncated", "empty", "another-architecture", "missing"],
)
def test_a_broken_model_is_one_line_naming_it(bundle, image, tmp_path, damage, problem):
    model = bundle / "models" / "model.pt"
    damage(model)
    result = _infer(bundle, image, tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {model}: {problem}"), result.output
    assert "Traceback" not in result.output


def test_invalid_metadata_is_one_line_naming_it(bundle, image, tmp_path):
    meta = bundle / "configs" / "metadata.json"
    meta.write_text(meta.read_text()[:-20])
    result = _infer(bundle, image, tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {meta}: not valid JSON"), result.output


def test_a_corrupt_zip_is_one_line_and_leaves_no_half_unpacked_bundle(bundle, image, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MEDKIT_CACHE", str(cache))
    archive = shutil.make_archive(str(tmp_path / "pneumonia"), "zip", tmp_path, "pneumonia")
    data = bytearray(open(archive, "rb").read())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # damage the compressed weights
    open(archive, "wb").write(bytes(data))
    result = _infer(archive, image, tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {archive}: not a readable zip"), result.output
    assert not cache.exists() or not any((cache / "bundles").iterdir())


def test_monai_runner_exits_1_with_one_line_when_an_input_fails(tmp_path, image):
    """``python -m monai.bundle run ... inference.json`` writes every row, the failed input's with its error, and
    exits 1 with one line, as ``medkit infer`` does."""
    import subprocess
    import sys

    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(image, folder / "good.png")
    (folder / "bad.png").write_bytes(b"")
    config = os.path.join(BUNDLES, "pneumonia", "configs", "inference.json")
    run = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", config,
         "--dataset_dir", str(folder), "--output_dir", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout
    assert run.stderr.strip().splitlines()[-1].startswith("Error: 1 of 2 input(s) failed")
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 3 and "bad.png" in rows[1] + rows[2]
