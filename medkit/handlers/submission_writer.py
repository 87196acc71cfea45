"""Ignite handler that writes RSNA 2023 predictions per patient in the competition's submission format."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from medkit.handlers.report_writer import RowWriter, _to_numpy, decollated
from medkit.io.atomic import write_json_atomic, write_table_atomic
from medkit.metrics.rsna import SUBMISSION_COLUMNS, best_constant, prior_probabilities, rsna_report, rsna_score

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["SubmissionWriter"]

logger = logging.getLogger(__name__)


class SubmissionWriter(RowWriter):
    """Collect per-target probabilities per CT volume; write one row per patient as in ``sample_submission.csv``.

    A patient's row is the mean over its volumes that were read (the competition has one or two series per
    patient). ``rows`` keeps one entry per input (``image``, ``patient``, ``error``) for reporting; inputs that
    failed to load (``TolerantDataset``) have an error and no share in the patient's row, and a patient none of
    whose inputs was read gets no row. With ``metrics_file`` and labelled items (``"label"``, five class indices),
    the per-patient figures of ``medkit.metrics.rsna.rsna_report`` are written there too, with the scores of two
    baselines fitted on ``prior_labels`` (the training labels) when given: the class frequencies
    (``prior_baseline_weighted_log_loss``) and the constant that minimises the weighted score
    (``best_constant_baseline_weighted_log_loss``).

    Args:
        output_file: the submission table (``.csv`` or ``.json``).
        metrics_file: optional ``metrics.json`` path (evaluation).
        prior_labels: training labels ``(N, 5)`` for the prior-probability baseline.
        path_key: key of the input path kept by the preprocessing.
        patient_key: key of the patient id in each item.
    """

    def __init__(
        self,
        output_file: str,
        metrics_file: str | None = None,
        prior_labels: list | None = None,
        path_key: str = "image_path",
        patient_key: str = "patient",
    ) -> None:
        self.output_file = self.table_name(output_file)
        self.metrics_file = os.fspath(metrics_file) if metrics_file else None
        self.prior_labels = None if prior_labels is None else np.asarray(prior_labels, dtype=np.int64)
        self.path_key = path_key
        self.patient_key = patient_key
        self.rows: list[dict] = []
        self._probs: dict[str, list[np.ndarray]] = defaultdict(list)
        self._labels: dict[str, np.ndarray] = {}
        self.report: dict = {}

    def _reset(self, engine: Engine | None = None) -> None:
        self.rows.clear()
        self._probs.clear()
        self._labels.clear()
        self.report = {}

    def _collect(self, engine: Engine) -> None:
        for out, item in decollated(engine):
            patient = str(item.get(self.patient_key, "")) or os.path.basename(str(item.get(self.path_key, "")))
            row = {"image": str(item.get(self.path_key, "")), "patient": patient, "error": str(item.get("error", ""))}
            self.rows.append(row)
            probs = _to_numpy(out["pred"]).astype(np.float64).ravel()
            row["error"] = row["error"] or self.output_error(row["image"], probs)
            if row["error"]:
                continue
            self._probs[patient].append(probs)
            if "label" in item:
                self._labels[patient] = _to_numpy(item["label"]).astype(np.int64).ravel()

    def patient_predictions(self) -> tuple[list[str], np.ndarray]:
        """Patients in first-seen order and their ``(P, 13)`` mean probabilities."""
        patients = list(self._probs)
        if not patients:
            return [], np.zeros((0, len(SUBMISSION_COLUMNS)))
        return patients, np.stack([np.mean(self._probs[p], axis=0) for p in patients])

    def _finish(self, engine: Engine | None = None) -> str:
        patients, probs = self.patient_predictions()
        table = [
            {"patient_id": p, **{c: round(float(v), 6) for c, v in zip(SUBMISSION_COLUMNS, row)}}
            for p, row in zip(patients, probs)
        ]
        write_table_atomic(table, ["patient_id", *SUBMISSION_COLUMNS], self.output_file)
        logger.info(
            "%d patients (%d inputs, %d failed) -> %s", len(table), len(self.rows), self.n_failed, self.output_file
        )
        if self.metrics_file and patients and all(p in self._labels for p in patients):
            labels = np.stack([self._labels[p] for p in patients])
            self.report = rsna_report(probs, labels)
            if self.prior_labels is not None and len(self.prior_labels):
                for name, row in (("prior", prior_probabilities), ("best_constant", best_constant)):
                    constant = np.repeat(row(self.prior_labels)[None], len(patients), axis=0)
                    self.report[f"{name}_baseline_weighted_log_loss"] = rsna_score(constant, labels)
            self.report["n_inputs_failed"] = self.n_failed
            write_json_atomic(self.report, self.metrics_file)
            logger.info(
                "weighted log loss %.4f over %d patients -> %s",
                self.report["weighted_log_loss"],
                len(patients),
                self.metrics_file,
            )
        return self.output_file
