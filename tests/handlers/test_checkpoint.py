"""Checkpoints are written atomically, never with non-finite weights; a non-finite loss stops training with one line;
a run does not replace a model it did not write unless told to."""

from __future__ import annotations

import os

import pytest
import torch
from ignite.engine import Engine, Events

from medkit.errors import MedkitError
from medkit.handlers import AtomicCheckpointSaver, NonFiniteLossHandler
from medkit.handlers.checkpoint import as_flag, check_overwrite


def _evaluator_with_metric(values):
    """An engine whose key metric takes ``values`` in turn, one per run."""
    engine = Engine(lambda e, b: None)
    scores = iter(values)

    @engine.on(Events.EPOCH_COMPLETED)
    def _metric(e):
        e.state.metrics = {"val": next(scores)}
        e.state.key_metric_name = "val"

    return engine


def _saver(tmp_path, net):
    return AtomicCheckpointSaver(
        save_dir=str(tmp_path), save_dict={"model": net}, save_key_metric=True, key_metric_filename="model.pt"
    )


def test_a_failed_save_leaves_the_previous_model_whole(tmp_path, monkeypatch):
    net = torch.nn.Linear(3, 2)
    engine = _evaluator_with_metric([0.5, 0.9])
    _saver(tmp_path, net).attach(engine)
    engine.run([0], max_epochs=1)
    model = tmp_path / "model.pt"
    first = model.read_bytes()
    assert torch.load(model, weights_only=True).keys() == net.state_dict().keys()

    def broken_save(obj, f, **kwargs):  # a full disk: some bytes, then an error
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with torch.no_grad():
        net.weight.add_(1.0)
    engine.state.max_epochs = None
    with pytest.raises(OSError, match="No space left"):
        engine.run([0], max_epochs=1)
    assert model.read_bytes() == first  # MONAI's own saver would have removed or truncated it
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]  # no temporary file left behind


def test_an_improved_model_replaces_the_file(tmp_path):
    net = torch.nn.Linear(3, 2)
    engine = _evaluator_with_metric([0.5, 0.9])
    _saver(tmp_path, net).attach(engine)
    engine.run([0], max_epochs=1)
    with torch.no_grad():
        net.weight.fill_(7.0)
    engine.state.max_epochs = None
    engine.run([0], max_epochs=1)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert torch.equal(saved["weight"], torch.full((2, 3), 7.0))
    assert oct(os.stat(tmp_path / "model.pt").st_mode & 0o777) == "0o644"


def test_non_finite_weights_are_never_saved(tmp_path):
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.bias[0] = float("nan")
    engine = _evaluator_with_metric([0.5])
    _saver(tmp_path, net).attach(engine)
    with pytest.raises(MedkitError, match="non-finite values"):
        engine.run([0], max_epochs=1)
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("output", [{"loss": torch.tensor(float("nan"))}, [{"loss": torch.tensor(float("inf"))}]])
def test_a_non_finite_loss_stops_training_with_one_line(output):
    engine = Engine(lambda e, b: output)
    NonFiniteLossHandler().attach(engine)
    with pytest.raises(MedkitError, match=r"training diverged: the loss is (nan|inf) at epoch 1, iteration 1"):
        engine.run([0, 1], max_epochs=3)
    assert engine.state.iteration == 1


def test_a_finite_loss_trains_on():
    engine = Engine(lambda e, b: [{"loss": torch.tensor(0.3)}])
    NonFiniteLossHandler().attach(engine)
    engine.run([0, 1], max_epochs=2)
    assert engine.state.iteration == 4


def test_a_model_already_there_is_replaced_only_when_allowed(tmp_path):
    check_overwrite(str(tmp_path), False)  # nothing there
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(MedkitError, match=r"model.pt: a model is already there"):
        check_overwrite(str(tmp_path), False)
    with pytest.raises(MedkitError, match="model is already there"):
        check_overwrite(str(tmp_path), "false")  # MONAI's runner passes --overwrite false as text
    check_overwrite(str(tmp_path), True)
    check_overwrite(str(tmp_path), "true")
    with pytest.raises(MedkitError, match="expected true or false"):
        as_flag("maybe")


@pytest.mark.parametrize("error", [MedkitError("x.png: not a radiograph"), KeyboardInterrupt()])
def test_medkit_errors_and_ctrl_c_are_logged_as_one_line(error):
    import logging

    from medkit.handlers import StatsHandler

    records = []
    collector = logging.Handler()
    collector.emit = records.append
    logger = logging.getLogger(f"medkit-test-{type(error).__name__}")
    logger.addHandler(collector)

    def step(engine, batch):
        raise error

    engine = Engine(step)
    StatsHandler(name=logger.name).attach(engine)
    with pytest.raises(type(error)):
        engine.run([0], max_epochs=1)
    assert records and all(r.exc_info is None for r in records)
    assert records[-1].getMessage() in ("x.png: not a radiograph", "interrupted (Ctrl-C)")


def test_stats_lines_go_to_the_log_not_to_stdout(caplog, capsys):
    """MONAI's StatsHandler writes through a logger of its own with a stdout handler; medkit's sends its lines
    (the training loss, the metrics) to the log, which the bundle's logging.conf puts on stderr."""
    import logging

    from medkit.handlers import StatsHandler

    handler = StatsHandler(name="medkit.tests.stats")
    with caplog.at_level(logging.INFO):
        handler.logger.info("Epoch: 1/1, Iter: 1/1 -- train_loss: 0.5000")
    assert "train_loss: 0.5000" in caplog.text
    assert "train_loss" not in capsys.readouterr().out
