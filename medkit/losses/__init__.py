"""Losses medkit adds to MONAI's."""

from __future__ import annotations

from medkit.losses.focal import FocalLoss, classification_loss
from medkit.losses.rsna import MaskedDiceCELoss, RSNAWeightedLoss
from medkit.losses.tversky import SEGMENTATION_LOSSES, FocalTverskyLoss, segmentation_loss

__all__ = [
    "MaskedDiceCELoss",
    "RSNAWeightedLoss",
    "FocalLoss",
    "classification_loss",
    "FocalTverskyLoss",
    "segmentation_loss",
    "SEGMENTATION_LOSSES",
]
