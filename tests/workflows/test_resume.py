"""Resuming a killed training from ``checkpoint_last.pt``: the fast tests check what is refused and which stage of a
recipe resumes; the ``multiprocess`` one SIGKILLs a real ``medkit train`` in its second epoch and resumes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from medkit.cli.main import cli
from medkit.handlers.last_checkpoint import LAST_CHECKPOINT
from medkit.workflows.stages import _resume_from
from tests.conftest import BUNDLES, REPO

PNEUMONIA = os.path.join(BUNDLES, "pneumonia")
FAST = ["--set", "batch_size=8", "--set", "num_workers=0"]


def test_resume_without_a_checkpoint_is_one_line_before_any_work(synthetic_cxr, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", PNEUMONIA, "--data", synthetic_cxr, "--out", str(out), "--resume"])
    assert result.exit_code == 1, result.output
    assert f"Error: {out / 'models' / LAST_CHECKPOINT}: not found, so there is nothing to resume" in result.output
    assert "Traceback" not in result.output


def test_the_stage_a_recipe_resumes_is_the_one_that_was_running(tmp_path):
    def touch(*names):
        for name in names:
            (tmp_path / name).write_bytes(b"x")

    assert _resume_from(str(tmp_path), [1, 2]) == ([1, 2], True)  # stage 1: resume (refused later if nothing saved)
    touch("model.pt", "model_stage1.pt")  # stage 2 started, killed before its first epoch ended
    assert _resume_from(str(tmp_path), [1, 2]) == ([2], False)
    touch(LAST_CHECKPOINT)  # stage 2 finished an epoch
    assert _resume_from(str(tmp_path), [1, 2]) == ([2], True)
    assert _resume_from(str(tmp_path), [1]) == ([1], True)


def _state(out) -> dict:
    return torch.load(out / "models" / LAST_CHECKPOINT, map_location="cpu", weights_only=False)


@pytest.mark.multiprocess
def test_a_training_killed_in_its_second_epoch_resumes_to_the_uninterrupted_result(synthetic_cxr, tmp_path):
    """Fixed seed, CPU: the resumed run ends at the epoch asked for with the uninterrupted run's weights and metric.
    Measured here: identical to the bit (the random states of Python, NumPy, PyTorch and every random transform are
    restored), so the tolerance is 1e-6 on the metric and 1e-5 on any weight (room for another CPU's kernels)."""
    cmd = [sys.executable, "-m", "medkit.cli.main", "train", PNEUMONIA, "--data", synthetic_cxr, "--epochs", "3"]
    cmd += FAST
    env = dict(os.environ, PYTHONPATH=REPO)
    quiet = {"cwd": REPO, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    full = subprocess.Popen([*cmd, "--out", str(tmp_path / "full")], **quiet)
    killed = subprocess.Popen([*cmd, "--out", str(tmp_path / "killed")], **quiet)
    last = tmp_path / "killed" / "models" / LAST_CHECKPOINT
    deadline = time.time() + 300
    while not last.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    assert _state(tmp_path / "killed")["trainer"]["epoch"] == 1  # killed in the second epoch
    resumed = subprocess.run([*cmd, "--out", str(tmp_path / "killed"), "--resume"], **quiet, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert full.wait(timeout=300) == 0, full.stderr.read()[-3000:]
    a, b = _state(tmp_path / "full"), _state(tmp_path / "killed")
    assert a["trainer"] == b["trainer"] == {"epoch": 3, "iteration": a["trainer"]["iteration"]}
    assert a["metrics"].keys() == b["metrics"].keys() and a["metrics"]
    for name, value in a["metrics"].items():
        assert b["metrics"][name] == pytest.approx(value, abs=1e-6), name
    for name, weight in a["network"].items():
        torch.testing.assert_close(b["network"][name], weight, atol=1e-5, rtol=0, msg=name)
    best = [torch.load(p / "models" / "model.pt", weights_only=True) for p in (tmp_path / "full", tmp_path / "killed")]
    best = [s.get("model", s) for s in best]
    for name, weight in best[0].items():
        torch.testing.assert_close(best[1][name], weight, atol=1e-5, rtol=0, msg=name)
