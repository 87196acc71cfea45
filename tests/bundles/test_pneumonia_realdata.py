"""The shipped pneumonia weights on the real Kermany images of the bundle's own validation split."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from medkit.cli.main import cli


@pytest.mark.realdata
def test_shipped_model_on_validation_split(medkit_data, pneumonia_bundle, tmp_path):
    if not os.path.isfile(os.path.join(pneumonia_bundle, "models", "model.pt")):
        pytest.skip("no shipped model")
    data = os.path.join(medkit_data, "chest_xray")
    result = CliRunner().invoke(
        cli, ["evaluate", pneumonia_bundle, data, "--split", "validation", "--out", str(tmp_path), "--set", "n_worst=4"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_cases"] == 787  # patients never seen in training (seed 0, 15% of each class)
    assert metrics["auc"] > 0.97 and metrics["accuracy"] > 0.9
