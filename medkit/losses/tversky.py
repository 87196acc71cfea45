"""Focal Tversky loss (Abraham & Khan 2019) and the segmentation-loss selector of the brain bundles."""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss, DiceFocalLoss, DiceLoss, TverskyLoss
from torch import nn

__all__ = ["FocalTverskyLoss", "segmentation_loss", "SEGMENTATION_LOSSES"]


class FocalTverskyLoss(nn.Module):
    """``FTL = (1 - TI) ** gamma`` with ``TI = (TP + s) / (TP + w_fn FN + w_fp FP + s)``, on sigmoid probabilities.

    ``w_fn > w_fp`` trades precision for recall (missed tumour costs more), and ``gamma < 1`` raises the
    gradient when ``TI`` is already high, focusing on the hard, small lesions. The defaults (0.7, 0.3, 0.75,
    smoothing 1) are those of the paper and of the earlier notebook; with ``batch=True`` (default) TP/FP/FN are
    summed over the whole batch, as the notebook did, so patches without tumour do not each score 0 or 1.

    Args:
        fn_weight: weight of false negatives (the paper's alpha).
        fp_weight: weight of false positives (the paper's 1 - alpha).
        gamma: exponent applied to ``1 - TI`` (the paper's ``1 / gamma``, 0.75 there).
        smooth: added to numerator and denominator.
        sigmoid: apply a sigmoid to the input logits.
        batch: sum over the batch before the ratio; else one ratio per sample, then the mean.
    """

    def __init__(
        self,
        fn_weight: float = 0.7,
        fp_weight: float = 0.3,
        gamma: float = 0.75,
        smooth: float = 1.0,
        sigmoid: bool = True,
        batch: bool = True,
    ) -> None:
        super().__init__()
        if gamma <= 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        # MONAI's TverskyLoss: alpha weighs false positives, beta false negatives
        self.tversky = TverskyLoss(
            sigmoid=sigmoid,
            alpha=fp_weight,
            beta=fn_weight,
            smooth_nr=smooth,
            smooth_dr=smooth,
            batch=batch,
            reduction="none",
        )
        self.gamma = float(gamma)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's name
        return self.tversky(input, target).clamp_min(0).pow(self.gamma).mean()


#: loss names a bundle config may select
SEGMENTATION_LOSSES = ("focal_tversky", "tversky", "dice", "dice_ce", "dice_focal")


def segmentation_loss(
    kind: str = "focal_tversky", fn_weight: float = 0.7, fp_weight: float = 0.3, gamma: float = 0.75
) -> nn.Module:
    """The loss a segmentation config selects by name; all take one-channel logits and 0/1 masks.

    ``fn_weight``/``fp_weight`` apply to the Tversky losses, ``gamma`` to focal Tversky (exponent) and
    Dice-focal (focusing parameter).

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "focal_tversky":
        return FocalTverskyLoss(fn_weight=fn_weight, fp_weight=fp_weight, gamma=gamma)
    if kind == "tversky":
        return TverskyLoss(sigmoid=True, alpha=fp_weight, beta=fn_weight, batch=True)
    if kind == "dice":
        return DiceLoss(sigmoid=True, batch=True)
    if kind == "dice_ce":
        return DiceCELoss(sigmoid=True, batch=True)
    if kind == "dice_focal":
        return DiceFocalLoss(sigmoid=True, batch=True, gamma=gamma)
    raise ValueError(f"segmentation loss kind must be one of {list(SEGMENTATION_LOSSES)}, got '{kind}'")
