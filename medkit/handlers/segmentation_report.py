"""Ignite handler that collects a segmenter's outputs (and a gating classifier's) and writes the evaluation report."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import numpy as np

from medkit.explain.overlay import mask_outline_overlay
from medkit.handlers.report_writer import EpochCollector, _to_numpy, decollated, item_threshold
from medkit.io.atomic import write_json_atomic, write_table_atomic
from medkit.metrics.classification import classification_report, slice_order
from medkit.metrics.plots import plot_image_grid
from medkit.metrics.segmentation import dice_from_counts, segmentation_report, slice_record
from medkit.transforms.segmentation import classifier_weights, largest_component

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["SegmentationReportWriter"]

logger = logging.getLogger(__name__)

CLASSIFICATION_KEYS = ("accuracy", "auc", "sensitivity", "specificity")


def _unpack(bits: np.ndarray, shape: tuple) -> np.ndarray:
    return np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)


class SegmentationReportWriter(EpochCollector):
    """Per-slice Dice counts, per-patient 3D Dice, and (two-stage) slice classification figures.

    Files written to ``output_dir``: ``metrics.json`` (``segmentation_report`` figures; with a gating classifier
    also ``accuracy``, ``auc``, ``sensitivity``, ``specificity`` of its slice decisions against "the true mask is
    not empty", and the full ``classification`` report), ``per_slice.csv`` and ``worst_cases.png`` (for the
    ``n_worst`` patients with the lowest Dice, the slice with the most tumour, truth green, prediction red).

    Args:
        output_dir: folder for the report.
        threshold: the gating classifier's decision threshold (only for the classification figures), where the
            output has none of its own under ``threshold_key`` (``GatedInferer`` gives each item its threshold).
        stack_threshold, slice_window: the gate's threshold of slices of a stack and its window (see
            ``GatedInferer``), recorded in the report.
        n_worst: patients in the worst-cases grid.
        case_key: key of the case id in each item.
        path_key: key of the image path kept by the preprocessing.
        prob_key: engine output key of the classifier's tumour probability (see ``GatedInferer``).
        threshold_key: engine output key of the threshold that probability was decided against.
        largest_component_3d: score each case's masks after keeping only their largest 26-connected component in
            slice order (``medkit.transforms.largest_component``), as ``SegmentationWriter`` writes them; when
            every slice of a case has a classifier probability (two-stage), a component's pixels count by it.
        display_channel: the input channel shown in ``worst_cases.png`` (``None``: the input as it is).
    """

    def __init__(
        self,
        output_dir: str,
        threshold: float | None = None,
        stack_threshold: float | None = None,
        slice_window: int = 1,
        n_worst: int = 8,
        case_key: str = "case",
        path_key: str = "image_path",
        prob_key: str = "tumour_probability",
        threshold_key: str = "gate_threshold",
        largest_component_3d: bool = False,
        display_channel: int | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.threshold = threshold
        self.stack_threshold = stack_threshold
        self.slice_window = int(slice_window)
        self.n_worst = n_worst
        self.case_key = case_key
        self.path_key = path_key
        self.prob_key = prob_key
        self.threshold_key = threshold_key
        self.largest_component_3d = bool(largest_component_3d)
        self.display_channel = display_channel
        self.report: dict | None = None
        self._reset()

    def _reset(self, engine: Engine | None = None) -> None:
        self.records: list[dict] = []
        self._masks: list[tuple[np.ndarray, np.ndarray, tuple]] = []  # per record: packed pred, truth, shape
        #: case -> its slice with the most tumour: (pixels, image, record index, prediction, truth)
        self._shown: dict[str, tuple[int, np.ndarray, int, np.ndarray, np.ndarray]] = {}

    def _collect(self, engine: Engine) -> None:
        for out, item in decollated(engine):
            pred, truth = _to_numpy(out["pred"]), _to_numpy(out["label"])
            case = str(item.get(self.case_key, ""))
            record = slice_record(pred, truth, case)
            record.update(slice=item.get("slice", ""), image=str(item.get(self.path_key, "")))
            g, p = record["true_pixels"], record["pred_pixels"]
            if self.prob_key in out:
                record["tumour_probability"] = float(_to_numpy(out[self.prob_key]).ravel()[0])
                record["gate_threshold"] = item_threshold(out, self.threshold_key, self.threshold)
            self.records.append(record)
            if self.largest_component_3d:
                self._masks.append((np.packbits(pred > 0.5), np.packbits(truth > 0.5), pred.shape))
            if self.n_worst > 0 and (case not in self._shown or g + p > self._shown[case][0]):
                image = _to_numpy(item["image"])
                if self.display_channel is not None:
                    image = image[self.display_channel : self.display_channel + 1]
                index = len(self.records) - 1
                self._shown[case] = (
                    g + p,
                    image.astype(np.float16),
                    index,
                    pred.astype(np.uint8),
                    truth.astype(np.uint8),
                )

    def _apply_largest_component(self) -> None:
        """Recount each case's records on its largest 3D component (slices in ``slice`` order)."""
        by_case: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            by_case.setdefault(str(r["case"]), []).append(i)
        for case, indices in by_case.items():
            indices.sort(key=lambda i: (slice_order(self.records[i].get("slice"), -1), i))
            shapes = {self._masks[i][2] for i in indices}
            if len(shapes) != 1:
                logger.error("%s: slices of different sizes %s, masks kept per slice", case, sorted(shapes))
                continue
            shape = shapes.pop()
            weights = classifier_weights([self.records[i].get("tumour_probability") for i in indices])
            preds = largest_component(np.stack([_unpack(self._masks[i][0], shape) for i in indices]), weights)
            for j, i in enumerate(indices):
                truth = _unpack(self._masks[i][1], shape)
                self.records[i].update(slice_record(preds[j], truth, case))
                shown = self._shown.get(case)
                if shown is not None and shown[2] == i:
                    self._shown[case] = (*shown[:3], preds[j].astype(np.uint8), shown[4])

    def _finish(self, engine: Engine | None = None) -> dict:
        if not self.records:
            raise RuntimeError("no predictions were collected; is the data list empty?")
        if self.largest_component_3d:
            self._apply_largest_component()
        report = segmentation_report(self.records)
        probs = [r.get("tumour_probability") for r in self.records]
        if all(p is not None for p in probs):
            p = np.asarray(probs, dtype=np.float64)
            labels = np.asarray([int(r["true_pixels"] > 0) for r in self.records])
            thresholds = [r.get("gate_threshold") for r in self.records]
            per_item = None if any(t is None for t in thresholds) else np.asarray(thresholds, dtype=np.float64)
            names = ["no_tumour", "tumour"]
            cls = classification_report(np.stack([1 - p, p], axis=1), labels, names, per_item)
            report.update({k: cls[k] for k in CLASSIFICATION_KEYS})
            report["classification"] = {**cls, "threshold": self.threshold}
            if self.stack_threshold is not None:
                report["classification"].update(stack_threshold=self.stack_threshold, slice_window=self.slice_window)
        os.makedirs(self.output_dir, exist_ok=True)
        for r in self.records:
            counts = (r["intersection"], r["pred_pixels"], r["true_pixels"])
            r["dice"] = round(dice_from_counts(*counts), 6) if r["true_pixels"] else ""
        columns = [
            "case",
            "slice",
            "image",
            "true_pixels",
            "pred_pixels",
            "intersection",
            "dice",
            "tumour_probability",
            "gate_threshold",
        ]
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
        images = [mask_outline_overlay(self._shown[c][1], self._shown[c][3], self._shown[c][4]) for c in worst]
        titles = [f"{c}\npatient Dice {per_case[c]:.3f}" for c in worst]
        plot_image_grid(images, titles, os.path.join(self.output_dir, "worst_cases.png"))
