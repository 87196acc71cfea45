"""The pooled held-out figures of a cross-validation (``medkit.workflows.crossval``): every patient tested once.

A segmenter's held-out slices of all folds make one ``medkit.metrics.segmentation_report`` (mean per-patient 3D
Dice over all patients, slice Dice, slice detection); with a classifier cross-validation over the same folds as a
gate, the two-stage figures too. A classifier's held-out probabilities give its AUC, the threshold reaching the
bundle's ``target_recall`` on them and the slice figures there, and with the bundle's ``slice_window`` above 1 the
same for each slice scored by the mean probability of that many neighbouring slices of its patient.
"""

from __future__ import annotations

import csv
import json
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from medkit.workflows.crossval import CrossvalSettings

__all__ = ["REPORTED", "held_out_gate", "pooled_classification", "pooled_segmentation", "summarise"]

#: figures of the pooled segmentation report kept for each variant (two-stage, study options)
REPORTED = ("dice_patient_mean", "dice_slice_mean", "dice_global", "slice_detection")


def fold_rows(out: str, folds: int, name: str) -> list[dict]:
    """The rows of every fold's ``eval/<name>`` table, each with its ``fold``."""
    rows = []
    for k in range(folds):
        with open(os.path.join(out, f"fold_{k}", "eval", name), newline="") as f:
            rows += [{**r, "fold": k} for r in csv.DictReader(f)]
    return rows


def held_out_items(out: str, folds: int) -> dict[str, dict]:
    """Image path -> its datalist item (case, slice number...) over the held-out sides of all folds."""
    items = {}
    for k in range(folds):
        with open(os.path.join(out, f"fold_{k}", "datalist.json")) as f:
            items.update({i["image"]: i for i in json.load(f)["test"]})
    return items


def pooled_classification(out: str, folds: int, recall: float, slice_window: int = 1) -> dict:
    """AUC of the held-out slices of all folds (their ``eval/predictions.csv``), the threshold reaching ``recall``
    of the positive slices on them and the slice figures at it (``medkit.metrics.classification_report``). With
    ``slice_window`` > 1, the same under ``"stack"`` for each slice scored by the mean of that many neighbouring
    slices of its patient (``stack_threshold``). ``nested_threshold``: the figures when each fold's slices are
    decided at the threshold picked on the other folds alone (a threshold that sees none of the slices it decides).
    """
    from medkit.metrics.classification import classification_report, stack_means, threshold_for_recall

    rows = fold_rows(out, folds, "predictions.csv")
    names = ["no_tumour", "tumour"]
    p = np.asarray([float(r["prob_tumour"]) for r in rows])
    labels = np.asarray([names.index(r["label"]) for r in rows])
    fold = np.asarray([r["fold"] for r in rows])
    keys = ("accuracy", "auc", "sensitivity", "specificity", "confusion_matrix")

    def figures(scores: np.ndarray, truth: np.ndarray, fold: np.ndarray) -> dict:
        threshold = threshold_for_recall(scores, truth, recall)
        both = np.stack([1 - scores, scores], axis=1)
        report = classification_report(both, truth, names, threshold)
        chosen = {k: threshold_for_recall(scores[fold != k], truth[fold != k], recall) for k in set(fold.tolist())}
        nested = classification_report(both, truth, names, np.array([chosen[k] for k in fold.tolist()]))
        return {
            "n_slices": len(scores),
            "threshold": threshold,
            **{k: report[k] for k in keys},
            "nested_threshold": {k: nested[k] for k in ("accuracy", "sensitivity", "specificity")},
        }

    summary = {"target_recall": recall, **figures(p, labels, fold)}
    if slice_window > 1:
        items = held_out_items(out, folds)
        cases = [items[r["image"]]["case"] for r in rows]
        slices = [items[r["image"]]["slice"] for r in rows]
        scores, stacked = stack_means(p, cases, slices, slice_window)
        stack = figures(scores[stacked], labels[stacked], fold[stacked])
        stack["stack_threshold"] = stack.pop("threshold")
        summary["stack"] = {"slice_window": slice_window, **stack}
        summary.update(stack_threshold=stack["stack_threshold"], slice_window=slice_window)
    return summary


def held_out_gate(gate: str, folds: int) -> tuple[dict[str, tuple[float, bool]], dict]:
    """A classifier cross-validation's held-out decision per slice path, ``(score, passed)``, as ``GatedInferer``
    decides (``stack_scores`` and ``passes_gate`` on its summary's ``threshold``, ``slice_window`` and
    ``stack_threshold``), and those settings."""
    from medkit.inferers.gated import passes_gate
    from medkit.metrics.classification import stack_scores

    with open(os.path.join(gate, "summary.json")) as f:
        summary = json.load(f)
    settings = {k: summary.get(k) for k in ("threshold", "stack_threshold", "slice_window") if summary.get(k)}
    rows = fold_rows(gate, folds, "predictions.csv")
    items = held_out_items(gate, folds)
    scores, thresholds, _ = stack_scores(
        [float(r["prob_tumour"]) for r in rows],
        [items[r["image"]]["case"] for r in rows],
        [items[r["image"]]["slice"] for r in rows],
        settings["threshold"],
        int(settings.get("slice_window", 1)),
        settings.get("stack_threshold"),
    )
    passed = passes_gate(scores, thresholds)
    return {r["image"]: (float(s), bool(k)) for r, s, k in zip(rows, scores, passed)}, settings


def pooled_segmentation(out: str, folds: int, gate: str | None = None) -> dict:
    """``segmentation_report`` over the held-out slices of all folds (their ``eval/per_slice.csv``); with ``gate``
    (a classifier cross-validation over the same folds), the two-stage figures too under ``"two_stage"``: slices
    the held-out classifier does not pass get an empty mask."""
    from medkit.metrics.segmentation import segmentation_report

    records = []
    for row in fold_rows(out, folds, "per_slice.csv"):
        counts = {c: int(row[c]) for c in ("intersection", "pred_pixels", "true_pixels")}
        records.append({"case": row["case"], "image": row["image"], **counts})
    report = segmentation_report(records)
    if gate:
        decision, settings = held_out_gate(gate, folds)
        gated = [r if decision[r["image"]][1] else {**r, "intersection": 0, "pred_pixels": 0} for r in records]
        two_stage = segmentation_report(gated)
        report["two_stage"] = {k: two_stage[k] for k in (*REPORTED, "per_case")}
        report["two_stage"]["gate"] = {"classifier_cv": gate, **settings}
    return report


def summarise(settings: CrossvalSettings, results: list[dict]) -> dict:
    """The pooled held-out figures of all folds, and per fold what it tested and its cost.

    Args:
        settings: the cross-validation.
        results: each fold's ``result.json``, in fold order.
    """
    from medkit.bundle import load_metadata, task_type
    from medkit.workflows.crossval import fold_name, result_file

    out = settings.out
    summary = {"bundle": os.path.basename(settings.bundle), "folds": settings.folds}
    summary.update(stages=results[0].get("stages"), epochs=results[0]["epochs"])
    summary.update(seed=settings.seed, overrides=settings.overrides, pretrained_from=settings.pretrained_from)
    per_fold = ("fold", "test_patients", "train_s", "peak_rss_mb")
    if task_type(settings.bundle) == "segmentation":
        pooled = pooled_segmentation(out, settings.folds, settings.gate)
        summary["n_patients"] = pooled["n_cases"]
        summary.update({k: pooled[k] for k in (*REPORTED, "per_case", *(["two_stage"] if settings.gate else []))})
        per_fold += ("dice_patient_mean",)
    else:
        meta = load_metadata(settings.bundle)["medkit"]
        recall = float(meta.get("target_recall", 0.95))
        summary.update(pooled_classification(out, settings.folds, recall, int(meta.get("slice_window", 1))))
        per_fold += ("auc",)
    summary["per_fold"] = [{k: r[k] for k in per_fold} for r in results]
    summary["train_s_total"] = round(sum(r["train_s"] for r in results), 1)
    final = result_file(out, -1)
    if os.path.isfile(final):
        with open(final) as f:
            done = json.load(f)
        keys = ("training_patients", "epochs", "train_s", "peak_rss_mb")
        model = os.path.join(out, fold_name(-1), "models", "model.pt")
        summary["final_model"] = {"path": model, **{k: done[k] for k in keys}}
    return summary
