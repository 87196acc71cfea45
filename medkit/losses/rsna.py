"""The RSNA 2023 score as a training loss: per-target softmax, the competition's sample weights and any_injury."""

from __future__ import annotations

import torch
from torch import nn

from medkit.metrics.rsna import weighted_log_loss

__all__ = ["RSNAWeightedLoss"]


class RSNAWeightedLoss(nn.Module):
    """Mean of the six sample-weighted log losses of ``medkit.metrics.rsna`` on a batch of logits.

    Class weights follow the metric (healthy 1, low 2, high 4, bowel injury 2, extravasation 6, any injury 6), so
    lowering this loss lowers the competition score; ``any_weight`` scales the any_injury term (0 leaves it out).

    Args:
        eps: probability clip inside the logs (float32-safe).
        any_weight: weight of the any_injury term relative to the five targets.
    """

    def __init__(self, eps: float = 1e-7, any_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = float(eps)
        self.any_weight = float(any_weight)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        parts = weighted_log_loss(logits.float(), labels, logits=True, eps=self.eps)
        organs = [v for k, v in parts.items() if k not in ("any_injury", "score")]
        return (torch.stack(organs).sum() + self.any_weight * parts["any_injury"]) / (len(organs) + self.any_weight)
