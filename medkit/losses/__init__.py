"""Losses medkit adds to MONAI's."""

from __future__ import annotations

from medkit.losses.focal import FocalLoss, classification_loss

__all__ = ["FocalLoss", "classification_loss"]
