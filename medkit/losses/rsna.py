"""RSNA 2023 trauma losses: the competition score as a training loss; masked Dice + cross-entropy for voxel labels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor
from torch import nn

from medkit.metrics.rsna import weighted_log_loss

__all__ = ["RSNAWeightedLoss", "MaskedDiceCELoss", "masked_dice_ce"]


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


def masked_dice_ce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    smooth: float = 1.0,
    class_weights: torch.Tensor | Sequence[float] | None = None,
) -> torch.Tensor:
    """Cross-entropy plus soft Dice on the voxels labelled >= 0, for rare small structures.

    ``logits`` ``(N, C, *spatial)``; ``labels`` ``(N, 1, *spatial)`` with -1 where a case has no segmentation.
    Dice is pooled over the batch and averaged over the foreground labels present in it: a label absent from
    the batch (most batches hold no extravasation) adds no Dice term, which would otherwise push its
    probability to zero everywhere and teach the network never to predict it; cross-entropy (weighted per
    class by ``class_weights``, mean over labelled voxels) covers absent labels. Returns 0 (with a gradient
    path) when no voxel is labelled.
    """
    target = labels[:, 0].long()
    valid = target >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    logits = logits.float()
    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
    ce = F.cross_entropy(logits, target.clamp(min=0), weight=weight, reduction="none")[valid]
    if weight is not None:
        ce = ce.sum() / weight[target[valid]].sum()
    else:
        ce = ce.mean()
    probs = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target.clamp(min=0), logits.shape[1]).movedim(-1, 1).float()
    mask = valid.unsqueeze(1).float()
    dims = [0, *range(2, logits.ndim)]
    inter = (probs * onehot * mask).sum(dims)[1:]
    truth = (onehot * mask).sum(dims)[1:]
    denom = (probs * mask).sum(dims)[1:] + truth
    present = truth > 0
    if not bool(present.any()):
        return ce
    dice = 1.0 - (2.0 * inter + smooth) / (denom + smooth)
    return ce + dice[present].mean()


class MaskedDiceCELoss(nn.Module):
    """``masked_dice_ce`` as a loss module: segmentation logits against an ``(N, 1, *spatial)`` label map, -1 ignored.

    Args:
        class_weights: cross-entropy weight of each label (``None``: equal).
        smooth: Dice smoothing.
    """

    def __init__(self, class_weights: Sequence[float] | None = None, smooth: float = 1.0) -> None:
        super().__init__()
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.smooth = float(smooth)

    def forward(self, seg_logits: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = convert_to_tensor(seg, track_meta=False)
        if tuple(seg.shape[2:]) != tuple(seg_logits.shape[2:]):
            raise ValueError(
                f"label map of size {tuple(seg.shape[2:])} for logits of size {tuple(seg_logits.shape[2:])}"
            )
        return masked_dice_ce(seg_logits, seg, smooth=self.smooth, class_weights=self.class_weights)
