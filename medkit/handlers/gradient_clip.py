"""Gradient-norm clipping for MONAI's SupervisedTrainer, between its backward pass and its optimizer step."""

from __future__ import annotations

import logging
import math

import torch
from ignite.engine import Events
from monai.engines.utils import IterationEvents

__all__ = ["GradientClipHandler"]

logger = logging.getLogger(__name__)


class GradientClipHandler:
    """Clip the trainer network's gradient norm to ``max_norm`` after every backward pass.

    MONAI's trainer fires ``IterationEvents.BACKWARD_COMPLETED`` before ``optimizer.step()``; this handler clips
    there (unscaling first when the engine trains with a CUDA ``GradScaler``). A guard against the rare step that
    throws a model off at the peak of a one-cycle schedule (a brain segmentation fold diverged to NaN that way).

    Args:
        max_norm: the largest gradient norm allowed; ``None`` or ``<= 0`` disables clipping.
        norm_type: the p of the p-norm.
    """

    def __init__(self, max_norm: float | None = 1.0, norm_type: float = 2.0) -> None:
        self.max_norm = float(max_norm) if max_norm else 0.0
        self.norm_type = float(norm_type)
        self.norms: list[float] = []  # the current epoch's gradient norms before clipping

    @property
    def clipped(self) -> int:
        """Steps of the current epoch whose (finite) gradient norm was above ``max_norm``."""
        return sum(1 for n in self.norms if math.isfinite(n) and n > self.max_norm)

    def attach(self, engine) -> None:
        if self.max_norm > 0:
            engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.log_epoch)

    def log_epoch(self, engine) -> None:
        clipped = self.clipped
        if clipped:
            norms = sorted(self.norms)
            logger.info(
                "epoch %d: gradient norm clipped to %g in %d of %d steps (median norm %.3g, max %.3g)",
                engine.state.epoch,
                self.max_norm,
                clipped,
                len(norms),
                norms[len(norms) // 2],
                norms[-1],
            )
        self.norms = []

    def __call__(self, engine) -> None:
        scaler = getattr(engine, "scaler", None)
        if scaler is not None:
            scaler.unscale_(engine.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(engine.network.parameters(), self.max_norm, self.norm_type)
        self.norms.append(float(norm))
