"""One trial of ``medkit tune``: the bundle's own training (stage 1 of its recipe, ``train.json`` with the trial's
settings) through ``medkit.workflows.stages.train_bundle``, its per-epoch validation metric reported as it goes.

Shared by the Optuna and the Ray Tune backends; what differs is the ``report`` callback the ``TrialReporter``
handler calls after each validation.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from medkit.errors import MedkitError

__all__ = ["TrialStopped", "TrialReporter", "logged_metrics", "tune_settings", "write_datalist", "run_trial"]

logger = logging.getLogger(__name__)


class TrialStopped(MedkitError):
    """Raised by ``TrialReporter`` when the search stops a trial early (pruned); a MedkitError, so the bundle's
    ``StatsHandler`` logs it as one line, not a traceback."""

    def __init__(self, epoch: int, metric: str, value: float):
        super().__init__(f"trial stopped after epoch {epoch} ({metric} {value:.4f}): pruned by the search")
        self.epoch = epoch


class TrialReporter:
    """Ignite handler on the trainer: after each epoch that ran validation it reads the validation metric,
    records it and hands it to ``report(epoch, value)``; when ``report`` answers True the trial is to stop and
    the handler raises ``TrialStopped`` (the Optuna backend turns it into ``optuna.TrialPruned``).

    Args:
        evaluator: the bundle's validation engine (``validate#evaluator``).
        metric: the metric name in the evaluator's ``state.metrics`` (``val_auc``...).
        report: called with the (1-based) epoch and the value; True stops the trial.
    """

    def __init__(self, evaluator: Any, metric: str, report: Callable[[int, float], bool]):
        self.evaluator = evaluator
        self.metric = metric
        self.report = report
        self.values: dict[int, float] = {}

    def attach(self, trainer: Any) -> None:
        from ignite.engine import Events

        trainer.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, trainer: Any) -> None:
        epoch = trainer.state.epoch
        if self.evaluator.state.epoch != epoch or self.metric not in self.evaluator.state.metrics:
            return  # no validation in this epoch (val_interval)
        value = float(self.evaluator.state.metrics[self.metric])
        self.values[epoch] = value
        if self.report(epoch, value):
            raise TrialStopped(epoch, self.metric, value)


def _train_config(bundle_dir: str) -> dict:
    with open(os.path.join(bundle_dir, "configs", "train.json")) as f:
        return json.load(f)


def logged_metrics(bundle_dir: str) -> list[str]:
    """The validation metrics the bundle's ``train.json`` logs each validation, the key metric first."""
    validate = _train_config(bundle_dir).get("validate", {})
    names = []
    for block in ("key_metric", "additional_metrics"):
        if isinstance(validate.get(block), Mapping):
            names.extend(validate[block])
    return names


def tune_settings(bundle_dir: str, fixed: Mapping[str, Any], metric: str | None) -> tuple[dict, str, str]:
    """The settings every trial shares, the metric to score and its direction, checked before any trial.

    Trials validate every epoch (``val_interval`` 1 unless fixed) on held-out patients (``all_patients`` false).

    Raises:
        MedkitError: a metric the bundle does not log, ``all_patients`` true, a bad ``--set`` id or value.
    """
    from medkit.bundle import checked_overrides

    logged = logged_metrics(bundle_dir)
    metric = metric or (logged[0] if logged else None)
    if metric not in logged:
        raise MedkitError(
            f"{os.path.join(bundle_dir, 'configs', 'train.json')}: the bundle does not log the validation metric "
            f"'{metric}' (it logs {', '.join(logged) or 'none'})"
        )
    if fixed.get("all_patients") is True:
        raise MedkitError("all_patients=true leaves no validation patients to score a trial on")
    settings = checked_overrides(bundle_dir, ["train.json"], {"val_interval": 1, **fixed, "all_patients": False})
    direction = "minimize" if "loss" in metric else "maximize"
    return settings, metric, direction


def write_datalist(bundle_dir: str, settings: Mapping[str, Any], path: str, subset: float = 1.0, seed: int = 0) -> dict:
    """Build the bundle's own datalist (its data source, patient-level split) once, keep ``subset`` of the patients
    of each side (stratified by class, ``medkit.data.splits.split_by_patient``), and write it to ``path``; every
    trial then reads this file (``datalist_file``), so all trials see the same patients.

    Returns:
        the number of items and patients on each side.

    Raises:
        MedkitError: no training or validation items; a subset of a datalist without patient ids.
    """
    from monai.bundle import ConfigParser

    from medkit.data.splits import split_by_patient
    from medkit.io.atomic import write_json_atomic

    parser = ConfigParser()
    parser.read_config(os.path.join(bundle_dir, "configs", "train.json"))
    parser.read_meta(os.path.join(bundle_dir, "configs", "metadata.json"))
    parser.update({"bundle_root": bundle_dir, **settings})
    datalist = dict(parser.get_parsed_content("datalist"))
    counts = {}
    for side in ("training", "validation"):
        items = list(datalist.get(side) or [])
        if subset < 1.0:
            if not all("patient" in item for item in items):
                raise MedkitError(f"{bundle_dir}: the datalist's items name no patient, so --subset cannot keep them")
            items = split_by_patient(items, val_fraction=subset, seed=seed)[1]
        if not items:
            raise MedkitError(f"{bundle_dir}: no {side} images for the search (check --data and --subset)")
        datalist[side] = items
        counts[side] = {"items": len(items), "patients": len({item.get("patient", id(item)) for item in items})}
    write_json_atomic(datalist, path)
    return counts


def run_trial(
    bundle_dir: str,
    settings: Mapping[str, Any],
    trial_dir: str,
    metric: str,
    report: Callable[[int, float], bool],
    threads: int | None = None,
) -> dict[int, float]:
    """Train the bundle's first stage with ``settings`` into ``trial_dir`` (``models/``, ``runs/``), reporting the
    validation ``metric`` after each epoch.

    Returns:
        the metric of each validated epoch.

    Raises:
        TrialStopped: ``report`` stopped the trial (found in the exception's causes: MONAI wraps it).
    """
    import torch

    from medkit.errors import medkit_cause
    from medkit.workflows.stages import train_bundle

    if threads:
        torch.set_num_threads(threads)
    reporters = []

    def attach(wf: Any, _stage: int) -> None:
        get = wf.parser.get_parsed_content
        trainer = get("train#trainer")  # first, as the run does: the validation loader would reseed the augmentation
        reporter = TrialReporter(get("validate#evaluator"), metric, report)
        reporter.attach(trainer)
        reporters.append(reporter)

    overrides = {
        **settings,
        "ckpt_dir": os.path.join(trial_dir, "models"),
        "output_dir": os.path.join(trial_dir, "runs"),
        "overwrite": True,  # the trial's own folder: a trial run again after an interruption replaces its model
    }
    try:
        train_bundle(bundle_dir, overrides, stages=[1], on_workflow=attach)
    except Exception as e:
        stopped = medkit_cause(e)
        if isinstance(stopped, TrialStopped):
            raise stopped from None
        raise
    values = reporters[0].values if reporters else {}
    if not values:
        raise MedkitError(f"{bundle_dir}: the trial ran no validation (is val_interval above epochs?)")
    return values
