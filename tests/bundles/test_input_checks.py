"""``medkit infer`` on inputs of the wrong kind: exit 1, one line per bad input naming it and the problem, the good
inputs of the same command predicted, no traceback and no ``nan`` in any output file (shipped weights)."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from medkit.cli.main import cli
from tests.transforms.test_check_input import ct_volume, wrong_radiographs, wrong_volumes

BUNDLES = os.path.join(os.path.dirname(__file__), "..", "..", "bundles")


def _infer(bundle: str, inputs: list[str], out) -> tuple[int, list[str], str]:
    """Exit code, the ``failed:`` lines and every output file's text."""
    result = CliRunner().invoke(cli, ["infer", bundle, *inputs, "--out", str(out)])
    assert "Traceback" not in result.output, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("failed: ")]
    texts = ""
    for folder, _, files in os.walk(out):
        for name in files:
            if name.endswith((".csv", ".json")):
                with open(os.path.join(folder, name)) as f:
                    texts += f.read()
    return result.exit_code, failed, texts


def _shipped(bundle: str) -> None:
    if not os.path.isfile(os.path.join(BUNDLES, bundle, "models", "model.pt")):
        pytest.skip(f"{bundle} has no shipped weights")


@pytest.mark.parametrize("bundle", ["pneumonia", "covid"])
def test_radiograph_bundles_refuse_wrong_kinds(bundle, tmp_path):
    _shipped(bundle)
    wrong = wrong_radiographs(tmp_path)
    good = str(tmp_path / "chest.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8)).save(good)
    code, failed, texts = _infer(bundle, [good, *wrong], tmp_path / "out")
    assert code == 1
    assert len(failed) == len(wrong)
    for path, problem in wrong.items():
        assert sum(line.startswith(f"failed: {path}: {problem}") for line in failed) == 1, (path, failed)
    rows = texts.splitlines()
    assert any(row.startswith(f"{good},") and row.split(",")[1] for row in rows)  # predicted, with a label
    assert "nan" not in texts.lower()


def test_ct_bundle_refuses_wrong_kinds(tmp_path):
    _shipped("abdominal_trauma")
    wrong = wrong_volumes(tmp_path)
    good = str(tmp_path / "good_patient.nii.gz")
    nib.save(nib.Nifti1Image(ct_volume((40, 40, 30)), np.diag([6.0, 6.0, 6.0, 1.0])), good)
    code, failed, texts = _infer("abdominal_trauma", [good, *wrong], tmp_path / "out")
    assert code == 1
    assert len(failed) == len(wrong)
    for path, problem in wrong.items():
        assert sum(line.startswith(f"failed: {path}: {problem}") for line in failed) == 1, (path, failed)
    assert "good_patient," in texts  # the good volume's patient row
    assert "nan" not in texts.lower()
