"""Preprocessing and augmentation chains for radiographs, defined once and referenced by every bundle config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monai.transforms import (
    EnsureTyped,
    HistogramNormalized,
    RandAdjustContrastd,
    RandAffined,
    RandScaleIntensityd,
    Resized,
    ScaleIntensityd,
    Transform,
)

from medkit.transforms.check_inputd import CheckInputd
from medkit.transforms.keep_pathd import KeepPathd
from medkit.transforms.load_xrayd import LoadXRayd

__all__ = ["xray_preprocessing", "xray_augmentation"]


def xray_preprocessing(
    keys: str | Sequence[str] = "image",
    spatial_size: Sequence[int] = (160, 160),
    equalize: bool = False,
    accepts: Mapping[str, Any] | None = None,
) -> list[Transform]:
    """Keep each path under ``<key>_path``, load (PNG/JPEG/DICOM), check, scale each image to ``[0, 1]``, resize.

    Args:
        keys: keys of the image paths.
        spatial_size: output ``(rows, columns)``; area interpolation, so downsizing does not alias.
        equalize: histogram-equalize each image (MONAI's ``HistogramNormalized``, 256 bins) before scaling.
        accepts: what the bundle accepts (its ``medkit.accepts``): an image outside it fails by name
            (``CheckInputd``); ``None``: no check.

    Returns:
        list of dictionary transforms; deterministic, hence cacheable by ``CacheDataset``.
    """
    if len(spatial_size) != 2 or any(int(s) < 8 for s in spatial_size):
        raise ValueError(f"spatial_size must be two sizes of at least 8 pixels, got {spatial_size}")
    keys = [keys] if isinstance(keys, str) else list(keys)
    return [
        KeepPathd(keys),
        LoadXRayd(keys),
        *([CheckInputd(keys, accepts)] if accepts else []),
        *([HistogramNormalized(keys, num_bins=256, min=0.0, max=1.0)] if equalize else []),
        ScaleIntensityd(keys, minv=0.0, maxv=1.0),
        Resized(keys, spatial_size=[int(s) for s in spatial_size], mode="area"),
        EnsureTyped(keys, dtype="float32", track_meta=False),
    ]


def xray_augmentation(keys: str | Sequence[str] = "image", prob: float = 0.5) -> list[Transform]:
    """Augmentations suited to frontal radiographs: small rotation, zoom and shift, contrast and exposure.

    No flips: laterality (heart on the left) is part of the anatomy.

    Args:
        keys: keys of the images.
        prob: probability of the geometric augmentation; the intensity ones use ``prob / 2``.
    """
    return [
        RandAffined(
            keys,
            prob=prob,
            rotate_range=0.17,
            scale_range=0.1,
            translate_range=(8, 8),
            padding_mode="zeros",
            mode="bilinear",
        ),
        RandAdjustContrastd(keys, prob=prob / 2, gamma=(0.8, 1.25)),
        RandScaleIntensityd(keys, factors=0.1, prob=prob / 2),
    ]
