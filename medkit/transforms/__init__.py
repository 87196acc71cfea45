"""Dictionary transforms and transform chains medkit adds to MONAI."""

from __future__ import annotations

from medkit.transforms.classification import classification_postprocessing
from medkit.transforms.load_xrayd import LoadXRayd
from medkit.transforms.xray import xray_augmentation, xray_preprocessing

__all__ = ["LoadXRayd", "xray_preprocessing", "xray_augmentation", "classification_postprocessing"]
