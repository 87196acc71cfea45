"""The bad-input corpus, run as a user runs it: every bundle's ``medkit infer`` and ``python -m monai.bundle run
... inference.json`` as real processes on a folder of good inputs mixed with bad ones, generated here (no data
files are committed).

For each run: exit status 1; exactly one ``failed: <path>: <problem>`` line per bad input on stderr and one
closing ``Error:`` line; no traceback anywhere; stdout free of log lines (``medkit``: only its result line); every
good input predicted; no NaN or Inf in any output and no temporary file left behind.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.io.test_header import write_bomb_png
from tests.transforms.test_check_input import ct_volume, wrong_radiographs, wrong_volumes, xray

pytestmark = pytest.mark.corpus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = os.path.join(ROOT, "bundles")
MEDKIT = os.path.join(os.path.dirname(sys.executable), "medkit")


def _broken_files(folder, suffix: str) -> dict[str, str]:
    """Files no reader can use, in ``folder``, named with the bundle's own suffix: ``{path: the problem named}``."""
    empty, text, link = (folder / f"{name}{suffix}" for name in ("empty", "text", "link"))
    empty.write_bytes(b"")
    text.write_text("not an image\n")
    link.symlink_to(folder / f"gone{suffix}")
    return {
        str(empty): "file is empty (0 bytes)",
        str(text): "not a readable image",
        str(link): "broken symbolic link",
    }


def _radiograph_corpus(folder) -> tuple[list[str], list[str], dict[str, str]]:
    """(inputs, good inputs, bad inputs with their problem) for the X-ray bundles."""
    folder.mkdir()
    good = []
    for n in range(2):
        path = folder / f"chest_{n}.png"
        Image.fromarray(xray(96, n)).save(path)
        good.append(str(path))
    bad = _broken_files(folder, ".png")
    truncated = folder / "truncated.png"
    truncated.write_bytes((folder / "chest_0.png").read_bytes()[:300])
    bad[str(truncated)] = "cannot decode image"
    bad[write_bomb_png(folder / "bomb.png", 20000, 20000)] = "image of 400,000,000 pixels"
    wrong = folder.parent / "wrong"
    wrong.mkdir()
    bad.update(wrong_radiographs(wrong))
    return [str(folder), *[p for p in bad if not p.startswith(str(folder))]], good, bad


def _slice_corpus(folder) -> tuple[list[str], list[str], dict[str, str]]:
    """A patient folder of LGG-style 3-channel TIFF slices, some of them bad."""
    patient = folder / "TCGA_XX_0001_19990101"
    patient.mkdir(parents=True)
    good = []
    for n in (1, 2, 3, 5):
        path = patient / f"TCGA_XX_0001_19990101_{n}.tif"
        tifffile.imwrite(path, np.stack([xray(64, n + c) for c in range(3)], axis=-1))
        good.append(str(path))
    empty = patient / "TCGA_XX_0001_19990101_4.tif"
    empty.write_bytes(b"")
    grey = patient / "TCGA_XX_0001_19990101_6.tif"
    tifffile.imwrite(grey, xray(64))
    tiny = patient / "TCGA_XX_0001_19990101_7.tif"
    tifffile.imwrite(tiny, np.ones((16, 16, 3), np.uint8))
    bad = {
        str(empty): "file is empty (0 bytes)",
        str(grey): "has 1 channel(s), this bundle needs 3",
        str(tiny): "16x16 pixels, smaller than the 32x32",
    }
    return [str(patient)], good, bad


def _volume_corpus(folder) -> tuple[list[str], list[str], dict[str, str]]:
    folder.mkdir()
    good = str(folder / "good_patient.nii.gz")
    nib.save(nib.Nifti1Image(ct_volume((40, 40, 30)), np.diag([6.0, 6.0, 6.0, 1.0])), good)
    bad = wrong_volumes(folder)
    return [good, *bad], [good], bad


CORPORA = {
    "pneumonia": _radiograph_corpus,
    "covid": _radiograph_corpus,
    "brain_mri_classification": _slice_corpus,
    "brain_mri_segmentation": _slice_corpus,
    "abdominal_trauma": _volume_corpus,
}


def _run(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MEDKIT_DEBUG"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _check_outputs(out_dir, good: list[str]) -> None:
    texts, leftovers = [], []
    for folder, _, files in os.walk(out_dir):
        leftovers += [f for f in files if f.startswith(".tmp-")]
        for name in files:
            if name.endswith((".csv", ".json")):
                with open(os.path.join(folder, name)) as f:
                    texts.append(f.read())
    assert not leftovers, leftovers
    joined = "\n".join(texts).lower()
    assert "nan" not in joined.replace("nan or inf", "") and ",inf" not in joined, joined
    with open(os.path.join(out_dir, "predictions.csv")) as f:
        rows = list(csv.DictReader(f))
    if rows and "patient_id" in rows[0]:  # the CT bundle's submission table: a row per patient read
        predicted = {r["patient_id"] for r in rows}
        good = [os.path.basename(p).split(".")[0] for p in good]
    else:
        predicted = {r["image"] for r in rows if not r["error"]}
    assert set(good) <= predicted, (good, rows)


def _check_report(result: subprocess.CompletedProcess, bad: dict[str, str]) -> None:
    both = result.stdout + result.stderr
    assert result.returncode == 1, both
    assert "Traceback" not in both, both
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    for path, problem in bad.items():
        mine = [line for line in failed if line.startswith(f"failed: {path}: ")]
        assert len(mine) == 1 and problem in mine[0], (path, problem, failed)
    assert len(failed) == len(bad), failed
    assert sum(line.startswith("Error: ") for line in result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("bundle", sorted(CORPORA))
def test_medkit_infer_on_the_corpus(bundle, tmp_path):
    inputs, good, bad = CORPORA[bundle](tmp_path / "inputs")
    out = tmp_path / "out"
    result = _run([MEDKIT, "infer", os.path.join(BUNDLES, bundle), *inputs, "--out", str(out)], tmp_path)
    _check_report(result, bad)
    assert result.stdout.strip().splitlines() == [result.stdout.strip()], result.stdout  # the one result line
    assert result.stdout.startswith(f"{len(good)} of {len(good) + len(bad)} inputs predicted"), result.stdout
    _check_outputs(out, good)


@pytest.mark.parametrize("bundle", sorted(CORPORA))
def test_monai_runner_on_the_corpus(bundle, tmp_path):
    inputs, good, bad = CORPORA[bundle](tmp_path / "inputs")
    out = tmp_path / "out"
    config = os.path.join(BUNDLES, bundle, "configs", "inference.json")
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config, "--output_dir", str(out)]
    result = _run([*args, "--inputs", repr(inputs)], tmp_path)
    _check_report(result, bad)
    # stdout holds MONAI's summary of the arguments (up to its closing "---"), the log goes to stderr
    assert result.stdout.rstrip().endswith(" - INFO - ---"), result.stdout
    _check_outputs(out, good)
