"""Patient-level k-fold cross-validation of a bundle's training recipe, each fold in a process of its own.

A handful of validation patients cannot rank training recipes, so this scores a recipe on every patient once: the
patients are dealt into ``folds`` folds (stratified by their share of positive slices,
``medkit.data.splits.kfold_patients``), and for each fold every stage of the bundle's training recipe
(``medkit.bundle.train_stages``) trains on the other folds with no checkpoint choice (the only validation runs
after each stage's last epoch, on the held-out fold, and the last stage's weights are the fold's model); then the
bundle's evaluate.json scores the held-out fold (a segmenter alone, without its classifier stage). The pooled
figures over all folds are ``medkit.workflows.crossval_report``'s, the post-processing study
``medkit.workflows.crossval_study``'s.

Layout of ``out``: ``fold_K/`` (``datalist.json``, ``models/model.pt``, ``runs/stage_<k>/``, ``eval/``,
``result.json``), ``all/`` for the final model on every patient (fold ``-1``), ``fold_K.log`` per fold run side
by side, ``summary.json`` and ``study.json``. A fold with its ``result.json`` is finished and kept, so a stopped
run resumes.
"""

from __future__ import annotations

import inspect
import json
import multiprocessing
import os
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from medkit.errors import MedkitError

__all__ = ["CrossvalSettings", "fold_name", "fold_datalist", "evaluate_fold", "run_fold", "run_folds", "crossval"]


@dataclass
class CrossvalSettings:
    """What a cross-validation is: the same settings give the same folds and the same fold models.

    Args:
        bundle: the bundle folder.
        data: the data set folder as published.
        out: the cross-validation's folder.
        folds: number of folds (at least 2).
        seed: seed of the fold assignment.
        epochs: epochs of every training stage; ``None``: the recipe's own.
        overrides: config ids to values for training and evaluation alike.
        pretrained_from: an earlier cross-validation over the same folds; the first training stage of each fold
            starts from that fold's model there (e.g. a classifier fine-tuned from the segmenter's folds).
        gate: a classifier cross-validation over the same folds, for a segmenter's two-stage figures.
    """

    bundle: str
    data: str
    out: str
    folds: int = 3
    seed: int = 0
    epochs: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    pretrained_from: str | None = None
    gate: str | None = None

    def __post_init__(self) -> None:
        if int(self.folds) < 2:
            raise MedkitError(f"folds must be at least 2, got {self.folds}")
        if self.epochs is not None and int(self.epochs) < 1:
            raise MedkitError(f"epochs must be at least 1, got {self.epochs}")
        for name in ("pretrained_from", "gate"):
            path = getattr(self, name)
            if path and not os.path.isdir(path):
                raise MedkitError(f"{path}: {name} is not a cross-validation folder")
        self.bundle, self.data, self.out = (os.path.abspath(p) for p in (self.bundle, self.data, self.out))
        _check_folds_dealt(self.bundle)
        _check_overrides(self.bundle, self.overrides)
        self.pretrained_from = os.path.abspath(self.pretrained_from) if self.pretrained_from else None
        self.gate = os.path.abspath(self.gate) if self.gate else None


def _check_overrides(bundle: str, overrides: dict[str, Any]) -> None:
    """Raises ``MedkitError`` for an override that neither the training stages nor evaluate.json define (each
    workflow then takes the ones it has)."""
    from medkit.bundle import checked_overrides, train_stages

    names = sorted({n for stage in train_stages(bundle) for n in stage} | {"evaluate.json"})
    checked_overrides(bundle, names, overrides)


def _check_folds_dealt(bundle: str) -> None:
    """Raises ``MedkitError`` unless the bundle's data source deals patient-level folds (``n_folds``, ``fold``)."""
    from medkit.bundle import load_metadata
    from medkit.data import BUILDERS

    source = load_metadata(bundle).get("medkit", {}).get("data", {}).get("source")
    if source not in BUILDERS or "n_folds" not in inspect.signature(BUILDERS[source]).parameters:
        raise MedkitError(f"{bundle}: its data source '{source}' deals no patient-level folds (lgg does)")


def fold_name(fold: int) -> str:
    """The folder (and log) name of a fold: ``fold_K``, or ``all`` for the final model (``-1``)."""
    return "all" if fold < 0 else f"fold_{fold}"


def result_file(out: str, fold: int) -> str:
    """Where a finished fold's ``result.json`` is."""
    return os.path.join(out, fold_name(fold), "result.json")


def fold_datalist(settings: CrossvalSettings, fold: int) -> dict:
    """The bundle's datalist with fold ``fold`` as the test side (and as validation, for the end-of-stage check)
    and every other patient in training; fold ``-1``: every patient in training (validation then repeats it)."""
    from medkit.bundle import load_metadata
    from medkit.data import make_datalist

    cfg = dict(load_metadata(settings.bundle)["medkit"]["data"])
    if fold < 0:
        cfg.update(val_fraction=0.0, test_fraction=0.0)
        datalist = make_datalist(dataset_dir=settings.data, **cfg)
        datalist["validation"] = list(datalist["training"])
        return datalist
    cfg.update(n_folds=settings.folds, fold=fold, seed=settings.seed, val_fraction=0.0)
    datalist = make_datalist(dataset_dir=settings.data, **cfg)
    datalist["validation"] = list(datalist["test"])
    return datalist


def _train(settings: CrossvalSettings, fold_dir: str, common: dict, pretrained: dict) -> tuple[list, list]:
    """Every stage of the bundle's training recipe (``medkit.workflows.stages.train_bundle``), each logging to
    ``runs/stage_<k>``; ``pretrained`` starts the first (later ones start from the stage before). Returns the
    stages' config files and their epochs."""
    from medkit.bundle import train_stages
    from medkit.workflows.stages import train_bundle

    stages, epochs = train_stages(settings.bundle), []

    def record(wf: Any, stage: int) -> None:
        epochs.append(int(wf.parser.get_parsed_content("epochs")))

    for k in range(1, len(stages) + 1):
        overrides = {
            **common,
            **(pretrained if k == 1 else {}),
            **({"epochs": settings.epochs} if settings.epochs else {}),
            "val_interval": "@epochs",  # one validation, after the last epoch: no checkpoint choice
            "early_stop_patience": 10**6,
            "output_dir": os.path.join(fold_dir, "runs", f"stage_{k}"),
            "ckpt_dir": os.path.join(fold_dir, "models"),
            "overwrite": True,  # the fold's own folder: an unfinished fold is trained again
        }
        train_bundle(settings.bundle, overrides, stages=[k], on_workflow=record, ignore_unknown=True)
    return stages, epochs


def evaluate_fold(settings: CrossvalSettings, fold: int) -> dict:
    """Score fold ``fold``'s model on its held-out patients with the bundle's evaluate.json (a segmenter without
    its classifier stage), writing ``<fold>/eval``; returns the figures a fold's result keeps."""
    from medkit.bundle import create_workflow, task_type

    fold_dir = os.path.join(settings.out, fold_name(fold))
    segmentation = task_type(settings.bundle) == "segmentation"
    overrides = {
        "dataset_dir": settings.data,
        "datalist_file": os.path.join(fold_dir, "datalist.json"),
        **settings.overrides,
        "split": "test",
        "ckpt_path": os.path.join(fold_dir, "models", "model.pt"),
        "output_dir": os.path.join(fold_dir, "eval"),
        **({"classifier_bundle": ""} if segmentation else {}),
    }
    wf = create_workflow(settings.bundle, "evaluate", overrides, ignore_unknown=True)
    wf.run()
    report = wf.parser.get_parsed_content("report").report
    return {k: report[k] for k in (("dice_patient_mean", "per_case") if segmentation else ("auc",))}


def run_fold(settings: CrossvalSettings, fold: int) -> dict:
    """Train (and, but for fold ``-1``, evaluate) one fold in this process; writes ``<fold>/result.json``."""
    from medkit.io.atomic import write_json_atomic

    if not -1 <= fold < settings.folds:
        raise MedkitError(f"fold must be -1 (every patient) or 0 to {settings.folds - 1}, got {fold}")
    name = fold_name(fold)
    fold_dir = os.path.join(settings.out, name)
    datalist = fold_datalist(settings, fold)
    datalist_file = os.path.join(fold_dir, "datalist.json")
    write_json_atomic(datalist, datalist_file)
    common = {"dataset_dir": settings.data, "datalist_file": datalist_file, **settings.overrides}
    pretrained = {}
    if settings.pretrained_from:
        pretrained = {"pretrained": os.path.join(settings.pretrained_from, name, "models", "model.pt")}
    t0 = time.perf_counter()
    stages, epochs = _train(settings, fold_dir, common, pretrained)
    result = {
        "fold": fold,
        "test_patients": sorted({i["patient"] for i in datalist["test"]}),
        "training_patients": len({i["patient"] for i in datalist["training"]}),
        "stages": stages,
        "epochs": epochs,
        "train_s": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "overrides": {**settings.overrides, **pretrained},
    }
    if fold >= 0:
        result.update(evaluate_fold(settings, fold))
    write_json_atomic(result, os.path.join(fold_dir, "result.json"))
    return result


def _fold_process(settings: CrossvalSettings, fold: int, log: str | None) -> None:
    """A fold's process: with ``log``, its output (Python's and the libraries') goes to that file."""
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    print(json.dumps(run_fold(settings, fold)), flush=True)


def run_folds(settings: CrossvalSettings, folds: list[int], parallel: int = 1) -> None:
    """Run each of ``folds`` (``-1``: the final model) in a process of its own, ``parallel`` at a time. One at a
    time, a fold's output goes to this console; side by side, each to ``<out>/<fold>.log``.

    Raises:
        MedkitError: naming the folds that failed, after the others have finished.
    """
    if int(parallel) < 1:
        raise MedkitError(f"parallel must be at least 1, got {parallel}")
    os.makedirs(settings.out, exist_ok=True)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter per fold, as a new command would be
    pending, running, failed = list(folds), {}, []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                k = pending.pop(0)
                log = os.path.join(settings.out, f"{fold_name(k)}.log") if parallel > 1 else None
                proc = spawn.Process(target=_fold_process, args=(settings, k, log), name=fold_name(k))
                proc.start()
                running[k] = (proc, log)
            wait([proc.sentinel for proc, _ in running.values()])
            for k, (proc, log) in list(running.items()):
                if proc.exitcode is None:
                    continue
                proc.join()
                del running[k]
                if proc.exitcode != 0:
                    failed.append(k)
                status = "done" if proc.exitcode == 0 else "failed" + (f" (see {log})" if log else "")
                print(f"{fold_name(k)} {status}", flush=True)
    finally:
        for proc, _ in running.values():  # only on an error here (e.g. Ctrl-C): stop the folds still running
            proc.terminate()
            proc.join()
    if failed:
        raise MedkitError(f"{settings.out}: {', '.join(fold_name(k) for k in failed)} failed")


def crossval(settings: CrossvalSettings, parallel: int = 1, final: bool = False, study: bool = False) -> dict:
    """Run the folds not finished yet (and with ``final`` the final model on every patient), then write the pooled
    held-out figures to ``summary.json`` and, with ``study``, the post-processing study to ``study.json``.

    Returns:
        ``{"summary": ..., "study": ...}`` (``study`` ``None`` unless asked for).
    """
    from medkit.bundle import task_type
    from medkit.io.atomic import write_json_atomic
    from medkit.workflows.crossval_report import summarise
    from medkit.workflows.crossval_study import study_options

    if (study or settings.gate) and task_type(settings.bundle) != "segmentation":
        raise MedkitError(f"{settings.bundle}: the study and the gate apply to segmentation bundles only")
    folds = [*range(settings.folds), *([-1] if final else [])]
    run_folds(settings, [k for k in folds if not os.path.isfile(result_file(settings.out, k))], parallel)
    results = []
    for k in range(settings.folds):
        with open(result_file(settings.out, k)) as f:
            results.append(json.load(f))
    summary = summarise(settings, results)
    write_json_atomic(summary, os.path.join(settings.out, "summary.json"))
    studied = study_options(settings) if study else None
    if studied is not None:
        write_json_atomic(studied, os.path.join(settings.out, "study.json"))
    return {"summary": summary, "study": studied}
