"""``medkit tune``: bad input refused in one line before any trial; a tiny Optuna search on synthetic X-rays writes
the report and a ``best.json`` overlay that ``monai.bundle run`` trains with; a stopped search resumes without
repeating finished trials; pruning stops a trial; (multiprocess tier) the Ray Tune backend writes the same overlay."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from medkit.cli.main import cli
from medkit.errors import MedkitError
from tests.conftest import BUNDLES

optuna = pytest.importorskip("optuna")

PNEUMONIA = os.path.join(BUNDLES, "pneumonia")
SHAPE = "_meta_#network_data_format#inputs#image#spatial_shape"
#: tiny trials of 32-pixel images (1 or 2 epochs)
FAST = {"epochs": 2, "batch_size": 8, "num_workers": 0, SHAPE: [32, 32]}
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "loss_kind": {"type": "categorical", "choices": ["cross_entropy", "focal"]},
}


def _space(tmp_path, space: dict, name: str = "space.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(space))
    return str(path)


def _tune(bundle_dir, out, n, data, space_file, epochs=2, **kwargs):
    from medkit.tune.study import tune_bundle

    fixed = {"dataset_dir": data, **FAST, "epochs": epochs}
    return tune_bundle(bundle_dir, str(out), n, fixed, space_file=space_file, **kwargs)


@pytest.mark.parametrize(
    "bundle", ["pneumonia", "covid", "brain_mri_classification", "brain_mri_segmentation", "abdominal_trauma"]
)
def test_default_space_of_each_bundle_is_settings_of_its_train_config(bundle):
    from medkit.bundle.templates import train_settings
    from medkit.tune.space import load_space

    path, params = load_space(os.path.join(BUNDLES, bundle))
    assert os.path.basename(path).endswith(".yaml") and params
    assert {p.name for p in params} <= train_settings(os.path.join(BUNDLES, bundle))


BAD = [
    ({"learnig_rate": {"type": "float", "low": 0.1, "high": 1}}, [], "learnig_rate: no such config id"),
    ({"learning_rate": {"type": "float", "low": 0.01, "high": 0.001}}, [], "learning_rate: empty range"),
    ({"loss_kind": {"type": "categorical", "choices": []}}, [], "loss_kind: empty range"),
    ({"network": {"type": "categorical", "choices": [1, 2]}}, [], "network: not a setting of train.json"),
    ({"batch_size": {"type": "int", "low": 0, "high": 8}}, [], "batch_size=0: out of range"),
    ({"learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}}, [], "a log range needs low > 0"),
    ({"learning_rate": {"type": "uniform", "low": 0, "high": 1}}, [], "type float, int or categorical"),
    (SPACE, ["--metric", "val_dice"], "does not log the validation metric 'val_dice' (it logs val_auc, val_accuracy)"),
    (SPACE, ["--set", "learning_rate=0.1"], "learning_rate: both searched and fixed by --set"),
    (SPACE, ["--set", "all_patients=true"], "all_patients=true leaves no validation patients"),
]


@pytest.mark.parametrize("space,extra,message", BAD)
def test_bad_input_is_one_line_before_any_trial(tmp_path, synthetic_cxr, space, extra, message):
    out = tmp_path / "out"
    args = ["tune", PNEUMONIA, "--data", synthetic_cxr, "--trials", "3", "--out", str(out)]
    result = CliRunner().invoke(cli, args + ["--search", _space(tmp_path, space)] + extra)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert not out.exists()  # nothing started


def test_yaml_space_and_default_space(tmp_path):
    from medkit.tune.space import load_space

    path = tmp_path / "space.yaml"
    path.write_text(
        "learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\nepochs: {type: int, low: 1, high: 3}\n"
    )
    _, params = load_space(PNEUMONIA, str(path))
    assert [(p.name, p.kind, p.log) for p in params] == [("learning_rate", "float", True), ("epochs", "int", False)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: [1\n")
    with pytest.raises(MedkitError, match="bad.yaml: not valid YAML"):
        load_space(PNEUMONIA, str(bad))


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, synthetic_cxr) -> dict:
    """A 2-trial search, a third trial left RUNNING as a killed process leaves it, then the same search asked for 3
    trials; with the model files of the first two trials as they were before the resume."""
    tmp = tmp_path_factory.mktemp("tune")
    out, space = tmp / "out", _space(tmp, SPACE)
    keep = optuna.pruners.NopPruner()  # the trials' states must not hang on their metrics (pruning: its own test)
    _tune(PNEUMONIA, out, 2, synthetic_cxr, space, epochs=1, pruner=keep)
    study = optuna.load_study(study_name="medkit-tune", storage=f"sqlite:///{out / 'study.db'}")
    cut = study.ask()
    cut.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    cut.suggest_categorical("loss_kind", ["cross_entropy", "focal"])  # the trial a kill cut short
    models = {n: os.stat(out / "trials" / f"{n:03d}" / "models" / "model.pt").st_mtime_ns for n in (0, 1)}
    lines = []
    best = _tune(PNEUMONIA, out, 3, synthetic_cxr, space, epochs=1, on_trial=lines.append, pruner=keep)
    return {"out": out, "best": best, "models": models, "cut": cut.params, "ran": lines, "data": synthetic_cxr}


def test_stopped_search_resumes_without_repeating_finished_trials(resumed):
    out = resumed["out"]
    study = optuna.load_study(study_name="medkit-tune", storage=f"sqlite:///{out / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert study.trials[2].user_attrs["interrupted"] and study.trials[3].params == resumed["cut"]
    assert [r["trial"] for r in resumed["ran"]] == [3]  # only the cut-short settings ran again
    for n, mtime in resumed["models"].items():
        assert os.stat(out / "trials" / f"{n:03d}" / "models" / "model.pt").st_mtime_ns == mtime


def test_search_writes_report_and_best_overlay(resumed):
    out, best = resumed["out"], resumed["best"]
    overlay = json.loads((out / "best.json").read_text())
    assert set(overlay) == set(SPACE) and overlay == best["params"]
    study = optuna.load_study(study_name="medkit-tune", storage=f"sqlite:///{out / 'study.db'}")
    assert best["best_value"] == study.best_value and best["metric"] == "val_auc"
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert "| trial | state | val_auc |" in (out / "trials.md").read_text()
    for name in ("optimization_history.png", "param_importances.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_best_overlay_trains_the_bundle_with_monai_runner(resumed, tmp_path):
    overlay = str(resumed["out"] / "best.json")
    configs = f"['{os.path.join(PNEUMONIA, 'configs', 'train.json')}','{overlay}']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs, "--dataset_dir", resumed["data"]]
    cmd += ["--ckpt_dir", str(tmp_path / "models"), "--output_dir", str(tmp_path / "runs"), "--epochs", "1"]
    cmd += ["--batch_size", "8", "--num_workers", "0", f"--{SHAPE}", "[32,32]"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()
    import torch

    last = torch.load(tmp_path / "models" / "checkpoint_last.pt", weights_only=False)
    study = optuna.load_study(study_name="medkit-tune", storage=f"sqlite:///{resumed['out'] / 'study.db'}")
    assert last["metrics"]["val_auc"] == pytest.approx(
        study.best_trial.intermediate_values[1], abs=1e-6
    )  # the same run
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(eval(configs))
    for key, value in json.loads(open(overlay).read()).items():
        assert parser[key] == value  # the overlay's settings are what the runner trained with


def test_pruning_stops_a_trial(tmp_path, synthetic_cxr):
    lines = []
    with pytest.raises(MedkitError, match="no trial completed"):
        _tune(
            PNEUMONIA,
            tmp_path / "out",
            1,
            synthetic_cxr,
            _space(tmp_path, SPACE),
            pruner=optuna.pruners.ThresholdPruner(lower=2.0),
            on_trial=lines.append,
        )  # any AUC is below 2: prune
    assert [(r["state"], r["epochs"]) for r in lines] == [("PRUNED", 1)]  # of 2 epochs
    import torch

    last = torch.load(tmp_path / "out" / "trials" / "000" / "models" / "checkpoint_last.pt", weights_only=False)
    assert last["trainer"]["epoch"] == 1  # the second epoch never ran
    with open(tmp_path / "out" / "trials.csv") as f:
        assert [r["state"] for r in csv.DictReader(f)] == ["PRUNED"]


def test_reporter_stops_training_at_the_epoch_it_says():
    from ignite.engine import Engine, Events

    from medkit.tune.trial import TrialReporter, TrialStopped

    evaluator = Engine(lambda e, b: None)
    trainer = Engine(lambda e, b: None)

    @trainer.on(Events.EPOCH_COMPLETED)
    def validate(engine):
        evaluator.state.epoch = engine.state.epoch
        evaluator.state.metrics = {"val_auc": 0.1 * engine.state.epoch}

    seen = []
    TrialReporter(evaluator, "val_auc", lambda e, v: seen.append((e, round(v, 3))) or e == 3).attach(trainer)
    with pytest.raises(TrialStopped, match="after epoch 3 \\(val_auc 0.3000\\)"):
        trainer.run([0, 1], max_epochs=6)
    assert seen == [(1, 0.1), (2, 0.2), (3, 0.3)] and trainer.state.epoch == 3


def test_without_optuna_it_is_one_line_naming_the_extra(monkeypatch, tmp_path, synthetic_cxr):
    monkeypatch.setitem(sys.modules, "optuna", None)
    args = ["tune", PNEUMONIA, "--data", synthetic_cxr, "--trials", "1", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args + ["--search", _space(tmp_path, SPACE)])
    assert result.exit_code == 1 and "pip install 'medkit[tune]'" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.multiprocess
def test_ray_backend_writes_the_same_overlay(tmp_path, synthetic_cxr):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        space = _space(tmp_path, SPACE)
        best = _tune(PNEUMONIA, tmp_path / "out", 2, synthetic_cxr, space, epochs=1, ray_address="local")
    finally:
        ray.shutdown()
    overlay = json.loads((tmp_path / "out" / "best.json").read_text())
    assert set(overlay) == set(SPACE) and overlay == best["params"]
    assert 1e-4 <= overlay["learning_rate"] <= 1e-2 and overlay["loss_kind"] in ("cross_entropy", "focal")
    with open(tmp_path / "out" / "trials.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (tmp_path / "out" / "optimization_history.png").is_file()
