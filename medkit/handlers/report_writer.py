"""Ignite handler that collects a classifier's outputs and writes the evaluation report."""

from __future__ import annotations

import csv
import heapq
import io
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medkit.explain.gradcam import gradcam_maps
from medkit.io.atomic import write_json_atomic, write_text_atomic
from medkit.metrics.classification import (
    averages_stacks,
    classification_report,
    predict_labels,
    roc_curve,
    stack_scores,
)
from medkit.metrics.plots import plot_confusion_matrix, plot_image_grid, plot_roc

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = [
    "ClassificationReportWriter",
    "EpochCollector",
    "RowWriter",
    "decollated",
    "exit_if_failed",
    "report_failures",
    "item_threshold",
]

logger = logging.getLogger(__name__)


def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class EpochCollector:
    """Base of the handlers that collect per-item results over a run: ``_reset`` when the engine starts,
    ``_collect`` after each iteration, ``_finish`` (writing the outputs) when it completes."""

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._finish)

    def _reset(self, engine: Engine | None = None) -> None:
        raise NotImplementedError

    def _collect(self, engine: Engine) -> None:
        raise NotImplementedError

    def _finish(self, engine: Engine | None = None) -> object:
        raise NotImplementedError


class RowWriter(EpochCollector):
    """An ``EpochCollector`` that keeps one row per input in ``rows``, each with an ``"error"`` (empty if read)."""

    rows: list[dict]

    @staticmethod
    def table_name(output_file: str | os.PathLike) -> str:
        """``output_file`` as a string, checked to end in ``.csv`` or ``.json`` (the formats rows are written in)."""
        if not str(output_file).lower().endswith((".csv", ".json")):
            raise ValueError(f"output_file must end in .csv or .json, got {output_file}")
        return os.fspath(output_file)

    @property
    def n_failed(self) -> int:
        """Inputs that could not be read."""
        return sum(1 for r in self.rows if r["error"])

    @staticmethod
    def output_error(path: str, output: np.ndarray) -> str:
        """``"<path>: ..."`` when the network's ``output`` for it holds NaN or Inf (never written as a prediction),
        else ``""``."""
        if np.isfinite(output).all():
            return ""
        message = f"{path}: the network's output is NaN or Inf; no prediction"
        logger.debug(message)  # reported with the other failed rows at the end (report_failures)
        return message


def report_failures(writer: RowWriter) -> int:
    """Print ``failed: <path>: <problem>`` on stderr for each row of an input that failed, once per input and after
    the run (the dataset and the writers only record the reason in the row); returns how many failed."""
    for row in writer.rows:
        if row["error"]:
            print(f"failed: {row['error']}", file=sys.stderr)
    return writer.n_failed


def exit_if_failed(writer: RowWriter) -> None:
    """End the process with exit status 1 when ``writer`` holds rows of inputs that failed (they were written with
    their error; the good inputs were predicted): a ``failed:`` line per input (``report_failures``), then one line.
    The last step of a bundle's inference.json, so
    ``python -m monai.bundle run`` reports failures as ``medkit infer`` does, without a traceback.

    Raises:
        SystemExit: some inputs failed.
    """
    if report_failures(writer):
        where = getattr(writer, "output_file", "")
        print(
            f"Error: {writer.n_failed} of {len(writer.rows)} input(s) failed (their rows in {where} say why)",
            file=sys.stderr,
        )
        raise SystemExit(1)


def item_threshold(out: dict, key: str, default: float | None) -> float | None:
    """The decision threshold an output item carries under ``key`` (``GatedInferer`` gives each its own), else
    ``default``."""
    value = out.get(key)
    return default if value is None else float(_to_numpy(value).ravel()[0])


def decollated(engine: Engine) -> zip:
    """Pairs ``(output, batch item)`` of the engine's last iteration, whether or not it decollated them."""
    outputs, batch = engine.state.output, engine.state.batch
    if isinstance(outputs, dict):
        outputs, batch = [outputs], [batch]
    return zip(outputs, batch)


class ClassificationReportWriter(EpochCollector):
    """Collect ``pred`` probabilities, labels and image paths; on completion write the report.

    Files written to ``output_dir``: ``metrics.json`` (see ``classification_report``),
    ``predictions.csv`` (one row per image, with its loss), ``confusion_matrix.png``, ``roc.png`` and
    ``worst_mistakes.png`` (the ``n_worst`` images with the highest cross-entropy, "top losses").

    Args:
        output_dir: folder for the report.
        class_names: names in output-channel order.
        path_key: key of the image path kept by the preprocessing.
        threshold: decision threshold for two classes (``None``: argmax).
        n_worst: number of images in the worst-mistakes grid.
        network: with ``cam_layer``, the grid shows Grad-CAM overlays of the predicted class.
        cam_layer: module name for Grad-CAM (the bundle's ``medkit.gradcam_layer``).
        display_channel: the input channel shown in the grid (the slice itself of a 2.5D input).
        slice_window, stack_threshold: two classes only: slices of a stack (items of one case with slice numbers,
            as the LGG data list gives) are decided on the mean positive probability of ``slice_window``
            neighbouring slices against ``stack_threshold`` (``medkit.metrics.classification.stack_scores``); the
            report, the predictions' ``prediction`` and ``prob_<positive>_stack`` columns and the grid follow
            those decisions. The grid then picks its mistakes among the ``4 * n_worst`` highest-loss images.
        case_key, slice_key: item keys of the case and the slice number.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        path_key: str = "image_path",
        threshold: float | None = None,
        n_worst: int = 16,
        network=None,
        cam_layer: str | None = None,
        display_channel: int = 0,
        slice_window: int = 1,
        stack_threshold: float | None = None,
        case_key: str = "case",
        slice_key: str = "slice",
    ) -> None:
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.path_key = path_key
        self.threshold = threshold
        self.n_worst = n_worst
        self.display_channel = int(display_channel)
        self.network = network
        self.cam_layer = cam_layer
        self.slice_window = int(slice_window)
        self.stack_threshold = None if stack_threshold is None else float(stack_threshold)
        self.case_key, self.slice_key = case_key, slice_key
        self.report: dict | None = None
        self._reset()

    @property
    def smooths(self) -> bool:
        """Whether slices of a stack are decided on the mean over neighbouring slices."""
        return len(self.class_names) == 2 and averages_stacks(self.slice_window, self.stack_threshold)

    def decisions(self) -> tuple[np.ndarray, np.ndarray | float | None, np.ndarray]:
        """``(probs, threshold, stacked)`` the collected items are decided on: ``probs`` ``(N, C)`` with a stack's
        slices given their mean positive probability (when ``smooths``), the threshold (per item when
        ``smooths``; ``None``: argmax) and whether each item was scored as part of a stack."""
        probs = np.stack(self.probs)
        if not self.smooths:
            return probs, self.threshold, np.zeros(len(probs), dtype=bool)
        threshold = 0.5 if self.threshold is None else self.threshold
        scores, thresholds, stacked = stack_scores(
            probs[:, 1], self.cases, self.slices, threshold, self.slice_window, self.stack_threshold
        )
        return np.stack([1 - scores, scores], axis=1), thresholds, stacked

    def _reset(self, engine: Engine | None = None) -> None:
        self.probs: list[np.ndarray] = []
        self.labels: list[int] = []
        self.paths: list[str] = []
        self.cases: list[str] = []
        self.slices: list[str] = []
        self._worst: list[tuple[float, int, np.ndarray]] = []  # min-heap of (loss, index, network input)

    def _collect(self, engine: Engine) -> None:
        for out, item in decollated(engine):
            probs = _to_numpy(out["pred"]).astype(np.float64).ravel()
            label = int(_to_numpy(out.get("label", item.get("label"))).ravel()[0])
            self.probs.append(probs)
            self.labels.append(label)
            self.paths.append(str(item.get(self.path_key, "")))
            self.cases.append(str(item.get(self.case_key, "") or ""))
            self.slices.append(str(item.get(self.slice_key, "")))
            # keep the network inputs of the worst mistakes only (of the highest losses when a stack's mean decides)
            kept = 4 * self.n_worst if self.smooths else self.n_worst
            mistake = self.smooths or int(predict_labels(probs[None], self.threshold)[0]) != label
            if mistake and self.n_worst > 0:
                loss = -float(np.log(max(probs[label], 1e-12)))
                entry = (loss, len(self.paths) - 1, _to_numpy(item["image"]).astype(np.float32))
                if len(self._worst) < kept:
                    heapq.heappush(self._worst, entry)
                elif loss > self._worst[0][0]:
                    heapq.heapreplace(self._worst, entry)

    def _finish(self, engine: Engine | None = None) -> dict:
        if not self.probs:
            raise RuntimeError("no predictions were collected; is the data list empty?")
        labels = np.asarray(self.labels)
        probs, per_item, stacked = self.decisions()
        report = classification_report(probs, labels, self.class_names, per_item)
        report["threshold"] = self.threshold
        if self.smooths:
            report.update(stack_threshold=self.stack_threshold, slice_window=self.slice_window)
            report["n_stacked"] = int(stacked.sum())
        preds = predict_labels(probs, per_item)
        losses = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))
        os.makedirs(self.output_dir, exist_ok=True)
        self._write_predictions(np.stack(self.probs), labels, preds, losses, probs[:, -1], stacked)
        plot_confusion_matrix(
            np.asarray(report["confusion_matrix"]), self.class_names, self._out("confusion_matrix.png")
        )
        plot_roc(self._roc_curves(probs, labels, report), self._out("roc.png"))
        self._plot_worst(probs, labels, preds, losses)
        write_json_atomic(report, self._out("metrics.json"))
        logger.info(
            "evaluation of %d cases: accuracy %.4f, AUC %.4f, F1 macro %.4f -> %s",
            report["n_cases"],
            report["accuracy"],
            report["auc"],
            report["f1_macro"],
            self.output_dir,
        )
        self.report = report
        return report

    def _out(self, name: str) -> str:
        return os.path.join(self.output_dir, name)

    def _roc_curves(self, probs: np.ndarray, labels: np.ndarray, report: dict) -> dict:
        classes = [1] if len(self.class_names) == 2 else range(len(self.class_names))
        curves = {}
        for c in classes:
            name = self.class_names[c]
            if 0 < (labels == c).sum() < len(labels):
                fpr, tpr, _ = roc_curve(probs[:, c], labels == c)
                curves[name] = (fpr, tpr, report["per_class"][name]["auc"])
        return curves

    def _write_predictions(self, probs, labels, preds, losses, scores, stacked) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        extra = [f"prob_{self.class_names[-1]}_stack"] if self.smooths else []
        writer.writerow(["image", "label", "prediction", *[f"prob_{n}" for n in self.class_names], *extra, "loss"])
        for i, (path, y, p, pr, loss) in enumerate(zip(self.paths, labels, preds, probs, losses)):
            means = [f"{scores[i]:.6f}" if stacked[i] else ""] if self.smooths else []
            row = [path, self.class_names[y], self.class_names[p], *[f"{v:.6f}" for v in pr], *means, f"{loss:.6f}"]
            writer.writerow(row)
        write_text_atomic(buf.getvalue(), self._out("predictions.csv"))

    def _plot_worst(self, probs, labels, preds, losses) -> None:
        if self.n_worst <= 0:
            return
        worst = [e for e in self._worst if preds[e[1]] != labels[e[1]]]  # mistakes under the final decisions
        worst = sorted(worst, key=lambda e: (-losses[e[1]], e[1]))[: self.n_worst]
        images = [e[2][self.display_channel] for e in worst]
        if worst and self.network is not None and self.cam_layer:
            import torch

            from medkit.explain.gradcam import overlay_heatmap

            device = next(self.network.parameters()).device
            batch = torch.as_tensor(np.stack([e[2] for e in worst])).to(device)
            maps = gradcam_maps(self.network, batch, self.cam_layer, class_idx=[int(preds[e[1]]) for e in worst])
            images = [overlay_heatmap(img, heat) for img, heat in zip(images, maps)]
        titles = [
            f"{os.path.basename(self.paths[i])}\ntrue {self.class_names[labels[i]]}, "
            f"pred {self.class_names[preds[i]]} ({probs[i, preds[i]]:.2f})"
            for _, i, _ in worst
        ]
        plot_image_grid(images, titles or ["no mistakes"], self._out("worst_mistakes.png"))
