"""Ignite handler that writes one row per inference input (CSV or JSON), failures included."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medkit.handlers.report_writer import RowWriter, _to_numpy, decollated
from medkit.io.atomic import write_table_atomic
from medkit.metrics.classification import predict_labels

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
    """

    def __init__(
        self, output_file: str, class_names: Sequence[str], threshold: float | None = None, path_key: str = "image_path"
    ) -> None:
        self.output_file = self.table_name(output_file)
        self.class_names = list(class_names)
        self.threshold = threshold
        self.path_key = path_key
        self.rows: list[dict] = []

    def _reset(self, engine: Engine | None = None) -> None:
        self.rows.clear()

    def _finish(self, engine: Engine | None = None) -> str:
        return self.write()

    def _collect(self, engine: Engine) -> None:
        for out, item in decollated(engine):
            row = {"image": str(item.get(self.path_key, "")), "label": "", "error": str(item.get("error", ""))}
            probs = _to_numpy(out["pred"]).astype(np.float64).ravel()
            if not row["error"]:
                row["label"] = self.class_names[int(predict_labels(probs[None], self.threshold)[0])]
            for name, p in zip(self.class_names, probs):
                row[f"prob_{name}"] = "" if row["error"] else round(float(p), 6)
            self.rows.append(row)

    def write(self, engine: Engine | None = None) -> str:
        """Write the rows collected so far; returns the output path."""
        columns = ["image", "label", *[f"prob_{n}" for n in self.class_names], "error"]
        write_table_atomic(self.rows, columns, self.output_file)
        logger.info("%d predictions, %d failed -> %s", len(self.rows) - self.n_failed, self.n_failed, self.output_file)
        return self.output_file
