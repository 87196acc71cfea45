"""``medkit infer --ray``: the shares the inputs are dealt into, the one-line errors, and (multiprocess tier, where
Ray is installed) a local Ray instance giving the local run's rows."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from click.testing import CliRunner

from medkit.cli.main import cli
from medkit.workflows.ray_inference import shares
from tests.conftest import BUNDLES

PNEUMONIA = os.path.join(BUNDLES, "pneumonia")


def test_shares_are_contiguous_whole_batches_in_order():
    items = list(range(10))
    assert shares(items, 2, batch_size=3) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9]]
    assert shares(items, 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert shares(items, 8, batch_size=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert shares([1], 4) == [[1]]


def test_without_ray_installed_it_is_one_line_naming_the_extra(monkeypatch, synthetic_cxr, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = CliRunner().invoke(cli, ["infer", PNEUMONIA, synthetic_cxr, "--out", str(tmp_path), "--ray"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: --ray needs Ray, which is not installed: pip")
    assert "medkit[ray]" in result.output and "Traceback" not in result.output


def test_a_bundle_that_decides_with_neighbours_is_refused(tmp_path):
    pytest.importorskip("ray")
    seg = os.path.join(BUNDLES, "brain_mri_segmentation")
    result = CliRunner().invoke(cli, ["infer", seg, str(tmp_path), "--out", str(tmp_path / "o"), "--ray"])
    assert result.exit_code == 1 and "--ray runs bundles whose rows are independent per image" in result.output


@pytest.mark.multiprocess
def test_ray_gives_the_local_runs_rows(synthetic_cxr, tmp_path):
    ray = pytest.importorskip("ray")
    inputs = [os.path.join(synthetic_cxr, "test"), str(tmp_path / "missing.png")]  # a bad input: its row, exit 1
    common = ["--batch-size", "2"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker (1 CPU) runs
    try:
        local = CliRunner().invoke(cli, ["infer", PNEUMONIA, *inputs, "--out", str(tmp_path / "local"), *common])
    finally:
        torch.set_num_threads(threads)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        args = ["infer", PNEUMONIA, *inputs, "--out", str(tmp_path / "ray"), *common, "--ray"]
        spread = CliRunner().invoke(cli, args)
    finally:
        ray.shutdown()
    assert local.exit_code == spread.exit_code == 1, spread.output
    assert f"failed: {inputs[1]}: file not found" in spread.output
    table = [(tmp_path / d / "predictions.csv").read_text() for d in ("local", "ray")]
    assert table[0] == table[1] and table[0].count("\n") == 10  # header, 8 test images, the missing one
