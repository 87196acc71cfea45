"""``GatedInferer``: the two-stage pipeline. A slice classifier decides which images the segmenter sees."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from torch import nn

from medkit.metrics.classification import averages_stacks, stack_scores, stack_windows_marked

logger = logging.getLogger(__name__)

__all__ = ["GatedInferer", "passes_gate"]


def passes_gate(scores: np.ndarray | torch.Tensor, thresholds: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """The gate's rule: a slice goes to the segmenter when its score reaches its threshold (``score >= threshold``;
    arrays or tensors alike). With scores and thresholds from ``stack_scores`` it decides slices whose classifier
    probabilities are already known (a cross-validation's held-out predictions) as ``GatedInferer`` gates them."""
    return scores >= thresholds


class GatedInferer(Inferer):
    """Run ``inferer`` with the segmentation network only on images a classifier calls positive.

    Images whose positive-class probability is below ``threshold`` get an all-background output (logits of
    ``background_logit``), so they cost one classifier pass and no segmentation. Without a ``gate`` it is
    ``inferer`` unchanged, so one config serves one- and two-stage use.

    Attached to an engine (it is an Ignite handler too), it adds the classifier's probability of each item to
    the engine output under ``prob_key``, and the threshold it was decided against under ``threshold_key``, before
    the output is decollated, for writers and reports.

    With ``slice_window`` > 1 and a ``stack_threshold``, slices of a stack (items of one ``case_key`` with
    ``slice_key`` numbers, as a patient folder gives) are gated on the mean probability of the ``slice_window``
    slices centred on them (``medkit.metrics.classification.stack_scores``): when attached, the inferer first reads
    the engine's whole data loader once with the classifier alone (the segmenter sees no slice before every slice
    of its case is scored), then gates each batch on those means. The probability reported is then that mean.
    Lone slices, and calls outside an engine, keep their own probability and ``threshold``. A slice that could not be
    read (its ``error_key`` set) keeps its place in its stack, but its (placeholder) probability is never averaged:
    windows take the nearest readable slice instead (``stack_scores(failed=...)``). Each item's
    ``neighbour_missing_key`` output says whether its window holds a slice that could not be read or whose own input
    missed a neighbour (its ``neighbour_key``, ``NeighbourSlicesd``).

    Args:
        inferer: the segmentation inferer (e.g. ``SlidingWindowInferer``).
        gate: the classifier network, or ``None`` for no gating.
        threshold: the classifier's decision threshold on the positive class.
        gate_size: ``(rows, columns)`` the classifier was trained at; inputs are area-resized to it.
        positive_index: output channel of the positive class.
        out_channels: channels of the segmentation output (for all-background batches).
        prob_key: engine output key of the classifier probability.
        background_logit: logit given to gated-out pixels (sigmoid about 0).
        slice_window: odd number of neighbouring slices whose probabilities are averaged (1: none).
        stack_threshold: threshold of that mean (slices of a stack); ``None``: no averaging.
        threshold_key: engine output key of each item's threshold.
        image_key, case_key, slice_key, error_key: batch keys of the input, its case, its slice number and its
            read error (``TolerantDataset``: failed items are left out of their case's means).
        neighbour_key: batch key of the unreadable neighbours of an item's input (``"neighbour_missing"``).
        neighbour_missing_key: engine output key of whether an item's stack window depends on an unreadable slice.
    """

    def __init__(
        self,
        inferer: Inferer,
        gate: nn.Module | None = None,
        threshold: float = 0.5,
        gate_size: Sequence[int] | None = None,
        positive_index: int = 1,
        out_channels: int = 1,
        prob_key: str = "tumour_probability",
        background_logit: float = -20.0,
        slice_window: int = 1,
        stack_threshold: float | None = None,
        threshold_key: str = "gate_threshold",
        image_key: str = "image",
        case_key: str = "case",
        slice_key: str = "slice",
        error_key: str = "error",
        neighbour_key: str = "neighbour_missing",
        neighbour_missing_key: str = "stack_neighbour_missing",
    ) -> None:
        super().__init__()
        self.inferer = inferer
        self.gate = gate
        self.threshold = float(threshold)
        self.gate_size = None if gate_size is None else [int(s) for s in gate_size]
        self.positive_index = positive_index
        self.out_channels = out_channels
        self.prob_key = prob_key
        self.background_logit = background_logit
        self.slice_window = int(slice_window)
        if self.slice_window < 1 or self.slice_window % 2 == 0:
            raise ValueError(f"slice_window must be an odd number of slices >= 1, got {slice_window}")
        self.stack_threshold = None if stack_threshold is None else float(stack_threshold)
        self.threshold_key = threshold_key
        self.image_key, self.case_key, self.slice_key, self.error_key = image_key, case_key, slice_key, error_key
        self.neighbour_key, self.neighbour_missing_key = neighbour_key, neighbour_missing_key
        self.last_probability: torch.Tensor | None = None
        self.last_threshold: torch.Tensor | None = None
        self.last_neighbour_missing: torch.Tensor | None = None
        #: (case, slice) -> (mean probability, stack threshold), from the pass over the data loader
        self._stack: dict[tuple[str, str], tuple[float, float]] = {}
        #: (case, slice) of the slices whose window holds an unreadable slice or one that missed a neighbour
        self._touched: set[tuple[str, str]] = set()
        self._batch_keys: list[tuple[str, str]] | None = None
        if gate is not None:
            gate.eval()

    @property
    def smooths(self) -> bool:
        """Whether slices of a stack are gated on the mean over neighbouring slices."""
        return self.gate is not None and averages_stacks(self.slice_window, self.stack_threshold)

    @torch.no_grad()
    def probability(self, inputs: torch.Tensor) -> torch.Tensor:
        """The classifier's positive-class probability of each image, shape ``(B,)``."""
        x = inputs
        if self.gate_size is not None and list(x.shape[2:]) != self.gate_size:
            x = F.interpolate(x, size=self.gate_size, mode="area")
        return torch.softmax(self.gate(x).float(), dim=1)[:, self.positive_index]

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        if self.gate is None:
            self.last_probability = self.last_threshold = self.last_neighbour_missing = None
            return self.inferer(inputs, network, *args, **kwargs)
        keys = self._batch_keys if self._batch_keys is not None and len(self._batch_keys) == len(inputs) else None
        known = [k in self._stack for k in keys] if keys else [False] * len(inputs)
        prob = torch.zeros(len(inputs), device=inputs.device)
        threshold = torch.full((len(inputs),), self.threshold, device=inputs.device)
        if not all(known):
            prob = self.probability(inputs).to(prob.dtype)
        touched = torch.zeros(len(inputs), dtype=torch.bool, device=inputs.device)
        for i, k in enumerate(known):
            if k:
                prob[i], threshold[i] = self._stack[keys[i]]
                touched[i] = keys[i] in self._touched
        self.last_probability, self.last_threshold, self.last_neighbour_missing = prob, threshold, touched
        keep = passes_gate(prob, threshold)
        out = inputs.new_full((inputs.shape[0], self.out_channels, *inputs.shape[2:]), self.background_logit)
        if keep.any():
            out[keep] = self.inferer(inputs[keep], network, *args, **kwargs).to(out.dtype)
        return out

    def attach(self, engine) -> None:
        """Copy each iteration's classifier probabilities and thresholds into ``engine.state.output``; with slice
        averaging, score every stack of the engine's data first (``score_stacks``) and gate on those means."""
        from ignite.engine import Events

        engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self._store)
        if self.smooths:
            engine.add_event_handler(Events.EPOCH_STARTED, self._score_engine_data)
            engine.add_event_handler(Events.ITERATION_STARTED, self._select)
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._deselect)

    def _score_engine_data(self, engine) -> None:
        self.score_stacks(engine.state.dataloader, getattr(engine.state, "device", None))

    @staticmethod
    def _column(batch: dict, key: str, n: int) -> list[str]:
        values = batch.get(key)
        if values is None:
            return [""] * n
        values = values.tolist() if hasattr(values, "tolist") else list(values)
        return ["" if v is None else str(v) for v in values]

    def _keys(self, batch: dict) -> list[tuple[str, str]]:
        n = len(batch[self.image_key])
        return list(zip(self._column(batch, self.case_key, n), self._column(batch, self.slice_key, n)))

    @torch.no_grad()
    def score_stacks(self, data, device=None) -> dict[tuple[str, str], tuple[float, float]]:
        """Read ``data`` (batches of dicts, e.g. a ``DataLoader``) with the classifier and keep, per slice of a
        stack, its mean probability over ``slice_window`` slices and the stack threshold (keyed by case and slice
        number); returns that table, which gates the following calls from the same engine."""
        self._stack, self._touched = {}, set()
        probs, cases, slices, failed, marked = [], [], [], [], []
        for batch in data:
            x = torch.as_tensor(batch[self.image_key])
            if device is not None:
                x = x.to(device)
            errors = self._column(batch, self.error_key, len(x))
            missing = self._column(batch, self.neighbour_key, len(x))
            for (case, number), p, err, miss in zip(self._keys(batch), self.probability(x).tolist(), errors, missing):
                if case:  # failed slices hold their place in the stack; their placeholder's probability is not used
                    probs.append(p)
                    cases.append(case)
                    slices.append(number)
                    failed.append(bool(err))
                    marked.append(bool(err) or bool(miss))
        if probs:
            scores, thresholds, stacked = stack_scores(
                probs, cases, slices, self.threshold, self.slice_window, self.stack_threshold, failed
            )
            touched = stack_windows_marked(cases, slices, self.slice_window, marked)
            for i in np.flatnonzero(stacked):
                self._stack[(cases[i], slices[i])] = (float(scores[i]), float(thresholds[i]))
                if touched[i]:
                    self._touched.add((cases[i], slices[i]))
        n_cases = len({case for case, _ in self._stack})
        logger.info(
            "gate: %d slices of %d stacks scored on %d-slice means", len(self._stack), n_cases, self.slice_window
        )
        return self._stack

    def _select(self, engine) -> None:
        batch = engine.state.batch
        self._batch_keys = self._keys(batch) if isinstance(batch, dict) and self.image_key in batch else None

    def _deselect(self, engine) -> None:
        self._batch_keys = None

    def _store(self, engine) -> None:
        if self.last_probability is not None and isinstance(engine.state.output, dict):
            engine.state.output[self.prob_key] = self.last_probability.detach()
            engine.state.output[self.threshold_key] = self.last_threshold.detach()
            if self.last_neighbour_missing is not None:
                engine.state.output[self.neighbour_missing_key] = self.last_neighbour_missing.detach()
