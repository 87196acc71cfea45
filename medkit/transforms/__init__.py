"""Dictionary transforms and transform chains medkit adds to MONAI."""

from __future__ import annotations

from medkit.transforms.batch import BatchAugmentation, split_batch_augmentation
from medkit.transforms.check_inputd import CheckInputd
from medkit.transforms.classification import ClassFromMaskd, classification_postprocessing
from medkit.transforms.ct import (
    ABDOMINAL_WINDOWS,
    CTWindowsd,
    FillMissingLabeld,
    GroupSoftmaxd,
    ct_augmentation,
    ct_preprocessing,
    rsna_postprocessing,
)
from medkit.transforms.keep_pathd import KeepPathd
from medkit.transforms.load_xrayd import LoadWithReaderd, LoadXRayd
from medkit.transforms.mri import mri_slice_augmentation, mri_slice_preprocessing, segmentation_augmentation
from medkit.transforms.segmentation import RemoveSmallIslandsd, segmentation_postprocessing
from medkit.transforms.xray import CropMargind, xray_augmentation, xray_preprocessing

__all__ = [
    "BatchAugmentation",
    "split_batch_augmentation",
    "ABDOMINAL_WINDOWS",
    "CTWindowsd",
    "FillMissingLabeld",
    "ct_preprocessing",
    "ct_augmentation",
    "GroupSoftmaxd",
    "rsna_postprocessing",
    "KeepPathd",
    "CheckInputd",
    "LoadWithReaderd",
    "LoadXRayd",
    "CropMargind",
    "xray_preprocessing",
    "xray_augmentation",
    "mri_slice_preprocessing",
    "mri_slice_augmentation",
    "segmentation_augmentation",
    "ClassFromMaskd",
    "classification_postprocessing",
    "segmentation_postprocessing",
    "RemoveSmallIslandsd",
]
