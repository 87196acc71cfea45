"""Focal loss for single-label classification (Lin et al. 2017), with optional class weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FocalLoss", "classification_loss"]


class FocalLoss(nn.Module):
    """``FL = -w_y (1 - p_y)^gamma log p_y``, averaged like ``CrossEntropyLoss`` (weighted mean over the batch).

    With ``gamma=0`` it equals ``torch.nn.CrossEntropyLoss(weight=weight)``.

    Args:
        gamma: focusing parameter, at least 0; larger values down-weight easy examples more.
        weight: optional per-class weights, shape ``(C,)``.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | Sequence[float] | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be at least 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits``: ``(B, C)``; ``target``: ``(B,)`` or ``(B, 1)`` class indices."""
        target = target.reshape(-1).long()
        if logits.ndim != 2 or logits.shape[0] != target.shape[0]:
            raise ValueError(f"expected logits (B, C) and B targets, got {tuple(logits.shape)} and {target.shape[0]}")
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -((1.0 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is None:
            return loss.mean()
        w = self.weight.to(loss.device)[target]
        return (w * loss).sum() / w.sum().clamp_min(1e-12)


def classification_loss(
    kind: str = "cross_entropy",
    weight: torch.Tensor | Sequence[float] | None = None,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """The loss a bundle config selects by name: ``"cross_entropy"`` or ``"focal"``, each with optional class weights.

    ``label_smoothing`` (cross-entropy only) mixes each one-hot target with the uniform distribution by that
    amount, so the network is not pushed to probabilities of exactly 0 and 1.

    Raises:
        ValueError: unknown ``kind``; label smoothing with the focal loss, or outside [0, 1).
    """
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if kind == "cross_entropy":
        return nn.CrossEntropyLoss(
            weight=None if weight is None else torch.as_tensor(weight, dtype=torch.float32),
            label_smoothing=float(label_smoothing),
        )
    if label_smoothing:
        raise ValueError("label_smoothing applies to the cross_entropy loss only")
    if kind == "focal":
        return FocalLoss(gamma=gamma, weight=weight)
    raise ValueError(f"loss kind must be 'cross_entropy' or 'focal', got '{kind}'")
