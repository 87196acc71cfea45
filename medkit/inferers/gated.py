"""``GatedInferer``: the two-stage pipeline. A slice classifier decides which images the segmenter sees."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from torch import nn

__all__ = ["GatedInferer"]


class GatedInferer(Inferer):
    """Run ``inferer`` with the segmentation network only on images a classifier calls positive.

    Images whose positive-class probability is below ``threshold`` get an all-background output (logits of
    ``background_logit``), so they cost one classifier pass and no segmentation. Without a ``gate`` it is
    ``inferer`` unchanged, so one config serves one- and two-stage use.

    Attached to an engine (it is an Ignite handler too), it adds the classifier's probability of each item to
    the engine output under ``prob_key`` before the output is decollated, for writers and reports.

    Args:
        inferer: the segmentation inferer (e.g. ``SlidingWindowInferer``).
        gate: the classifier network, or ``None`` for no gating.
        threshold: the classifier's decision threshold on the positive class.
        gate_size: ``(rows, columns)`` the classifier was trained at; inputs are area-resized to it.
        positive_index: output channel of the positive class.
        out_channels: channels of the segmentation output (for all-background batches).
        prob_key: engine output key of the classifier probability.
        background_logit: logit given to gated-out pixels (sigmoid about 0).
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
        self.last_probability: torch.Tensor | None = None
        if gate is not None:
            gate.eval()

    @torch.no_grad()
    def probability(self, inputs: torch.Tensor) -> torch.Tensor:
        """The classifier's positive-class probability of each image, shape ``(B,)``."""
        x = inputs
        if self.gate_size is not None and list(x.shape[2:]) != self.gate_size:
            x = F.interpolate(x, size=self.gate_size, mode="area")
        return torch.softmax(self.gate(x).float(), dim=1)[:, self.positive_index]

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        if self.gate is None:
            self.last_probability = None
            return self.inferer(inputs, network, *args, **kwargs)
        prob = self.probability(inputs)
        self.last_probability = prob
        keep = prob >= self.threshold
        out = inputs.new_full((inputs.shape[0], self.out_channels, *inputs.shape[2:]), self.background_logit)
        if keep.any():
            out[keep] = self.inferer(inputs[keep], network, *args, **kwargs).to(out.dtype)
        return out

    def attach(self, engine) -> None:
        """Copy each iteration's classifier probabilities into ``engine.state.output[prob_key]``."""
        engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self._store)

    def _store(self, engine) -> None:
        if self.last_probability is not None and isinstance(engine.state.output, dict):
            engine.state.output[self.prob_key] = self.last_probability.detach()
