"""Ignite handler that writes one row per inference input (CSV or JSON), failures included."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medkit.handlers.report_writer import RowWriter, _to_numpy, decollated
from medkit.io.atomic import write_table_atomic
from medkit.metrics.classification import averages_stacks, predict_labels, stack_scores, stack_windows_marked

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["PredictionWriter"]

logger = logging.getLogger(__name__)


class PredictionWriter(RowWriter):
    """Collect class probabilities per input and write ``output_file`` (``.csv`` or ``.json``) on completion.

    Each row has ``image``, ``label`` (predicted class name), ``prob_<class>`` for each class and
    ``error`` (empty when the input was read). Inputs that failed to load (see ``TolerantDataset``)
    get a row with the error and no prediction; ``n_failed`` counts them.

    Args:
        output_file: where to write; the suffix picks the format.
        class_names: names in output-channel order.
        threshold: decision threshold on the second class for two classes (``None``: argmax).
        path_key: key of the input path in each item.
        slice_window, stack_threshold: two classes only: slices of a stack (the images of one patient folder,
            ``inference_datalist(..., with_case=True)``) are labelled on the mean positive probability of
            ``slice_window`` neighbouring slices against ``stack_threshold``
            (``medkit.metrics.classification.stack_scores``); that mean is the ``prob_<positive>_stack`` column.
            A slice that could not be read keeps its place in its stack but is never averaged (the nearest readable
            slice stands in for it). Rows then also have ``neighbour_missing``: ``True`` when a slice of the row's
            own 2.5D input window (``NeighbourSlicesd``, the input's ``neighbour_missing``) or of its stack window
            could not be read (or, in the stack window, missed a neighbour of its own): its result is then the one
            it would have at the end of the volume; rows whose windows were all read are exactly as with every slice
            read. And ``case_incomplete``: ``True`` when some slice of the case could not be read, so the
            per-patient intensity scale (``CaseChannelScaled``, the input's ``case_missing``) was computed without
            it and every slice of the case may differ slightly from its result on the complete case.
        case_key, slice_key: item keys of the case and the slice number.
        neighbour_key, case_missing_key: item keys of an input's unreadable neighbours and of its case's unreadable
            slices (``"neighbour_missing"``, ``"case_missing"``).
    """

    def __init__(
        self,
        output_file: str,
        class_names: Sequence[str],
        threshold: float | None = None,
        path_key: str = "image_path",
        slice_window: int = 1,
        stack_threshold: float | None = None,
        case_key: str = "case",
        slice_key: str = "slice",
        neighbour_key: str = "neighbour_missing",
        case_missing_key: str = "case_missing",
    ) -> None:
        self.output_file = self.table_name(output_file)
        self.class_names = list(class_names)
        self.threshold = threshold
        self.path_key = path_key
        self.slice_window = int(slice_window)
        self.stack_threshold = None if stack_threshold is None else float(stack_threshold)
        self.case_key, self.slice_key = case_key, slice_key
        self.neighbour_key, self.case_missing_key = neighbour_key, case_missing_key
        self.rows: list[dict] = []

    @property
    def smooths(self) -> bool:
        """Whether slices of a stack are labelled on the mean over neighbouring slices."""
        return len(self.class_names) == 2 and averages_stacks(self.slice_window, self.stack_threshold)

    def _reset(self, engine: Engine | None = None) -> None:
        self.rows.clear()

    def _finish(self, engine: Engine | None = None) -> str:
        return self.write()

    def _collect(self, engine: Engine) -> None:
        for out, item in decollated(engine):
            row = {"image": str(item.get(self.path_key, "")), "label": "", "error": str(item.get("error", ""))}
            probs = _to_numpy(out["pred"]).astype(np.float64).ravel()
            row["error"] = row["error"] or self.output_error(row["image"], probs)
            if not row["error"]:
                row["label"] = self.class_names[int(predict_labels(probs[None], self.threshold)[0])]
            for name, p in zip(self.class_names, probs):
                row[f"prob_{name}"] = "" if row["error"] else round(float(p), 6)
            if self.smooths:
                row.update(case=str(item.get(self.case_key, "") or ""), slice=str(item.get(self.slice_key, "")))
                row["_input_missing"] = bool(item.get(self.neighbour_key))
                row["_case_missing"] = bool(item.get(self.case_missing_key))
            self.rows.append(row)

    def _label_stacks(self) -> None:
        """Relabel the read slices of stacks on the mean probability of their neighbourhood (unreadable slices hold
        their place but are not averaged) and flag the rows whose windows or case miss a slice."""
        if not self.rows:
            return
        positive = f"prob_{self.class_names[1]}"
        failed = [bool(r["error"]) for r in self.rows]
        cases, slices = [r["case"] for r in self.rows], [r["slice"] for r in self.rows]
        scores, thresholds, stacked = stack_scores(
            [0.0 if bad else r[positive] for r, bad in zip(self.rows, failed)],
            cases,
            slices,
            0.5 if self.threshold is None else self.threshold,
            self.slice_window,
            self.stack_threshold,
            failed,
        )
        marked = [bad or r.get("_input_missing", False) for r, bad in zip(self.rows, failed)]
        touched = stack_windows_marked(cases, slices, self.slice_window, marked)
        incomplete = {c for c, r, bad in zip(cases, self.rows, failed) if c and (bad or r.get("_case_missing"))}
        for row, score, threshold, in_stack, near in zip(self.rows, scores, thresholds, stacked, touched):
            if row["error"]:
                continue
            row["neighbour_missing"] = bool(row.get("_input_missing")) or (bool(in_stack) and bool(near))
            row["case_incomplete"] = row["case"] in incomplete
            if in_stack:
                row[f"{positive}_stack"] = round(float(score), 6)
                row["label"] = self.class_names[int(score >= threshold)]

    def write(self, engine: Engine | None = None) -> str:
        """Write the rows collected so far; returns the output path."""
        if self.smooths:
            self._label_stacks()
        stack = [f"prob_{self.class_names[-1]}_stack", "neighbour_missing", "case_incomplete"] if self.smooths else []
        columns = ["image", "label", *[f"prob_{n}" for n in self.class_names], *stack, "error"]
        write_table_atomic(self.rows, columns, self.output_file)
        logger.info("%d predictions, %d failed -> %s", len(self.rows) - self.n_failed, self.n_failed, self.output_file)
        return self.output_file
