"""A data set with a few bad files: prepare and evaluate name each one in a line and go on with the others."""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from medkit.cli.main import cli
from tests.io.test_header import write_bomb_png


@pytest.fixture
def cxr_with_bad_files(synthetic_cxr, tmp_path) -> tuple[str, dict[str, str]]:
    """The synthetic Kermany set plus a bomb PNG, a giant PNG (both test/NORMAL) and a broken symbolic link."""
    root = tmp_path / "cxr"
    shutil.copytree(synthetic_cxr, root)
    link = root / "train" / "NORMAL" / "IM-9996-0001.jpeg"
    link.symlink_to(tmp_path / "gone.jpeg")
    bad = {
        write_bomb_png(root / "test" / "NORMAL" / "IM-9997-0001.png", 20000, 20000): "image of 400,000,000 pixels",
        write_bomb_png(root / "test" / "NORMAL" / "IM-9995-0001.png", 13000, 13000): "image of 13000x13000",
        str(link): f"broken symbolic link to {tmp_path / 'gone.jpeg'} (target missing)",
    }
    return str(root), bad


def test_prepare_prints_each_bad_file_and_goes_on(cxr_with_bad_files, tmp_path):
    root, bad = cxr_with_bad_files
    result = CliRunner().invoke(cli, ["prepare", "pneumonia", "--data", root, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("skipped: ")]
    assert len(lines) == len(bad)
    for path, problem in bad.items():
        assert any(line.startswith(f"skipped: {path}: {problem}") for line in lines), (path, lines)
    assert "Traceback" not in result.output and os.path.isfile(tmp_path / "out" / "datalist.json")


def test_prepare_lgg_names_an_rgb_mask(synthetic_lgg, tmp_path):
    root = tmp_path / "kaggle_3m"
    shutil.copytree(synthetic_lgg, root)
    case = sorted(os.listdir(root))[0]
    mask = root / case / f"{case}_2_mask.tif"
    tifffile.imwrite(mask, np.stack([tifffile.imread(mask)] * 3, axis=-1))
    result = CliRunner().invoke(cli, ["prepare", "lgg", "--data", str(root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    line = f"skipped: {root / case / f'{case}_2.tif'}: {mask}: mask has 3 channels, expected a single-channel mask"
    assert line in result.output.splitlines()


def test_prepare_rsna_names_rows_without_images(tmp_path):
    from pydicom.data import get_testdata_file

    from medkit.data.rsna import RSNA_TRAIN_COLUMNS

    healthy = [int(c.endswith("_healthy")) for c in RSNA_TRAIN_COLUMNS[1:-1]]
    with open(tmp_path / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([RSNA_TRAIN_COLUMNS, *[[pid, *healthy, 0] for pid in (10, 11, 12, 13)]])
    for pid in (10, 11, 12):
        folder = tmp_path / "train_images" / str(pid) / "1"
        folder.mkdir(parents=True)
        shutil.copy(get_testdata_file("CT_small.dcm"), folder / "1.dcm")
    result = CliRunner().invoke(cli, ["prepare", "rsna", "--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    missing = tmp_path / "train_images" / "13"
    assert f"skipped: {missing}: patient of train.csv has no image folder (left out)" in result.output.splitlines()


def test_evaluate_goes_on_without_the_bad_files(pneumonia_bundle, cxr_with_bad_files, tmp_path):
    """Also an image the bundle does not accept (blank): left out by name with the unreadable ones, where the
    preprocessing's check would otherwise stop the whole run at it."""
    root, bad = cxr_with_bad_files
    blank = os.path.join(root, "test", "NORMAL", "IM-9994-0001.png")
    Image.fromarray(np.full((64, 64), 7, np.uint8)).save(blank)
    bad = {**bad, blank: "every value is 7 (a blank image)"}
    out = tmp_path / "ev"
    result = CliRunner().invoke(
        cli, ["evaluate", pneumonia_bundle, "--data", root, "--out", str(out), "--split", "test"]
    )
    assert result.exit_code == 0, result.output
    # the bundle's logging.conf sends the log to stderr (the runner captures it in its output), one warning per file
    warned = [line.split(" - WARNING - ", 1)[-1] for line in result.output.splitlines() if " - WARNING - " in line]
    for path, problem in bad.items():
        assert any(m.startswith(f"{path}: {problem}") for m in warned), (path, result.output)
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    evaluated = {os.path.basename(r["image"]) for r in rows}
    good = {n for c in ("NORMAL", "PNEUMONIA") for n in os.listdir(os.path.join(root, "test", c))}
    assert evaluated == good - {os.path.basename(p) for p in bad}
