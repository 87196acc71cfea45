"""The RSNA 2023 score as a training loss: per-target softmax, the competition's sample weights and any_injury."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor
from torch import nn

from medkit.metrics.rsna import weighted_log_loss

__all__ = ["RSNAWeightedLoss", "RSNASegLoss", "MaskedDiceCELoss", "pool_labels", "masked_dice_ce"]


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


def pool_labels(labels: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Shrink an ``(N, 1, *spatial)`` integer label map to ``size`` keeping the highest label of each block.

    With ``medkit.data.rsna.SEGMENTATION_LABELS`` the injuries (6-10) outrank the organs (1-5), so a lesion of a
    single voxel still marks its block; -1 (unlabelled) survives only where the whole block is unlabelled.
    Sizes that are not whole multiples are brought to ``size`` by nearest-neighbour afterwards.
    """
    if tuple(labels.shape[2:]) == tuple(size):
        return labels
    dims = labels.ndim - 2
    factor = [max(1, s // t) for s, t in zip(labels.shape[2:], size)]
    pool = F.max_pool3d if dims == 3 else F.max_pool2d
    out = pool(labels.float(), kernel_size=factor, stride=factor, ceil_mode=True)
    if tuple(out.shape[2:]) != tuple(size):
        out = F.interpolate(out, size=size, mode="nearest")
    return out.long()


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


class RSNASegLoss(nn.Module):
    """``RSNAWeightedLoss`` on the class logits plus ``seg_weight`` x (cross-entropy + Dice) on the segmentation.

    For networks that also segment (``medkit.networks.SegGuidedClassifier``): ``preds`` is ``(class_logits,
    seg_logits)`` and ``targets`` ``(labels, seg)`` (``medkit.workflows.PrepareBatchWithSeg``), the label map
    pooled to the logits' size (``pool_labels``), -1 voxels ignored. Plain logits or plain labels (evaluation,
    or a data set without masks) give the classification loss alone.

    Args:
        seg_weight: weight of the segmentation term.
        eps: probability clip of the classification loss.
        any_weight: weight of the any_injury term (see ``RSNAWeightedLoss``).
        seg_class_weights: cross-entropy weight of each segmentation label (``None``: equal), e.g. 10 for the
            injury labels, a few voxels in a hundred thousand.
    """

    def __init__(
        self,
        seg_weight: float = 1.0,
        eps: float = 1e-7,
        any_weight: float = 1.0,
        seg_class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.seg_weight = float(seg_weight)
        self.seg_class_weights = None if seg_class_weights is None else [float(w) for w in seg_class_weights]
        self.classification = RSNAWeightedLoss(eps=eps, any_weight=any_weight)

    def forward(self, preds: torch.Tensor | tuple, targets: torch.Tensor | tuple) -> torch.Tensor:
        logits, seg_logits = preds if isinstance(preds, (tuple, list)) else (preds, None)
        labels, seg = targets if isinstance(targets, (tuple, list)) else (targets, None)
        loss = self.classification(logits, labels)
        if seg_logits is None or seg is None or not self.seg_weight:
            return loss
        seg = pool_labels(convert_to_tensor(seg, track_meta=False), tuple(seg_logits.shape[2:]))
        return loss + self.seg_weight * masked_dice_ce(seg_logits, seg, class_weights=self.seg_class_weights)
