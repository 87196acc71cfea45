"""Ignite handler that collects a segmenter's outputs (and a gating classifier's) and writes the evaluation report."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import numpy as np

from medkit.explain.overlay import mask_outline_overlay
from medkit.handlers.report_writer import EpochCollector, _to_numpy, decollated
from medkit.io.atomic import write_json_atomic, write_table_atomic
from medkit.metrics.classification import classification_report
from medkit.metrics.plots import plot_image_grid
from medkit.metrics.segmentation import dice_from_counts, segmentation_report, slice_record

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["SegmentationReportWriter"]

logger = logging.getLogger(__name__)

CLASSIFICATION_KEYS = ("accuracy", "auc", "sensitivity", "specificity")


class SegmentationReportWriter(EpochCollector):
    """Per-slice Dice counts, per-patient 3D Dice, and (two-stage) slice classification figures.

    Files written to ``output_dir``: ``metrics.json`` (``segmentation_report`` figures; with a gating classifier
    also ``accuracy``, ``auc``, ``sensitivity``, ``specificity`` of its slice decisions against "the true mask is
    not empty", and the full ``classification`` report), ``per_slice.csv`` and ``worst_cases.png`` (for the
    ``n_worst`` patients with the lowest Dice, the slice with the most tumour, truth green, prediction red).

    Args:
        output_dir: folder for the report.
        threshold: the gating classifier's decision threshold (only for the classification figures).
        n_worst: patients in the worst-cases grid.
        case_key: key of the case id in each item.
        path_key: key of the image path kept by the preprocessing.
        prob_key: engine output key of the classifier's tumour probability (see ``GatedInferer``).
    """

    def __init__(
        self,
        output_dir: str,
        threshold: float | None = None,
        n_worst: int = 8,
        case_key: str = "case",
        path_key: str = "image_path",
        prob_key: str = "tumour_probability",
    ) -> None:
        self.output_dir = output_dir
        self.threshold = threshold
        self.n_worst = n_worst
        self.case_key = case_key
        self.path_key = path_key
        self.prob_key = prob_key
        self.report: dict | None = None
        self._reset()

    def _reset(self, engine: Engine | None = None) -> None:
        self.records: list[dict] = []
        self._shown: dict[str, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = {}  # case -> most tumour slice

    def _collect(self, engine: Engine) -> None:
        for out, item in decollated(engine):
            pred, truth = _to_numpy(out["pred"]), _to_numpy(out["label"])
            case = str(item.get(self.case_key, ""))
            record = slice_record(pred, truth, case)
            record.update(slice=item.get("slice", ""), image=str(item.get(self.path_key, "")))
            g, p = record["true_pixels"], record["pred_pixels"]
            if self.prob_key in out:
                record["tumour_probability"] = float(_to_numpy(out[self.prob_key]).ravel()[0])
            self.records.append(record)
            if self.n_worst > 0 and (case not in self._shown or g + p > self._shown[case][0]):
                image = _to_numpy(item["image"]).astype(np.float16)
                self._shown[case] = (g + p, image, pred.astype(np.uint8), truth.astype(np.uint8))

    def _finish(self, engine: Engine | None = None) -> dict:
        if not self.records:
            raise RuntimeError("no predictions were collected; is the data list empty?")
        report = segmentation_report(self.records)
        probs = [r.get("tumour_probability") for r in self.records]
        if all(p is not None for p in probs):
            p = np.asarray(probs, dtype=np.float64)
            labels = np.asarray([int(r["true_pixels"] > 0) for r in self.records])
            cls = classification_report(np.stack([1 - p, p], axis=1), labels, ["no_tumour", "tumour"], self.threshold)
            report.update({k: cls[k] for k in CLASSIFICATION_KEYS})
            report["classification"] = {**cls, "threshold": self.threshold}
        os.makedirs(self.output_dir, exist_ok=True)
        for r in self.records:
            counts = (r["intersection"], r["pred_pixels"], r["true_pixels"])
            r["dice"] = round(dice_from_counts(*counts), 6) if r["true_pixels"] else ""
        columns = ["case", "slice", "image", "true_pixels", "pred_pixels", "intersection", "dice", "tumour_probability"]
        write_table_atomic(self.records, columns, os.path.join(self.output_dir, "per_slice.csv"))
        self._plot_worst(report["per_case"])
        write_json_atomic(report, os.path.join(self.output_dir, "metrics.json"))
        logger.info(
            "%d patients, %d slices: per-patient Dice %.4f, slice Dice %.4f -> %s",
            report["n_cases"],
            report["n_slices"],
            report["dice_patient_mean"],
            report["dice_slice_mean"],
            self.output_dir,
        )
        self.report = report
        return report

    def _plot_worst(self, per_case: dict[str, float]) -> None:
        if self.n_worst <= 0:
            return
        worst = sorted(per_case, key=lambda c: (per_case[c], c))[: self.n_worst]
        images = [mask_outline_overlay(self._shown[c][1], self._shown[c][2], self._shown[c][3]) for c in worst]
        titles = [f"{c}\npatient Dice {per_case[c]:.3f}" for c in worst]
        plot_image_grid(images, titles, os.path.join(self.output_dir, "worst_cases.png"))
