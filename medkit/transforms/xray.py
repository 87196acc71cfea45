"""Preprocessing and augmentation chains for radiographs, defined once and referenced by every bundle config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import (
    EnsureTyped,
    HistogramNormalized,
    MapTransform,
    RandAdjustContrastd,
    RandAffined,
    RandCoarseDropoutd,
    RandScaleIntensityd,
    Resized,
    ScaleIntensityd,
    Transform,
)

from medkit.transforms.check_inputd import CheckInputd
from medkit.transforms.keep_pathd import KeepPathd
from medkit.transforms.load_xrayd import LoadXRayd

__all__ = ["CropMargind", "xray_preprocessing", "xray_augmentation"]


class CropMargind(MapTransform):
    """Cut the same share of the rows and of the columns off each edge of channel-first 2D images.

    The edges of a radiograph carry the acquisition more than the patient: collimation, black framing, burnt-in
    side markers and text. Cutting them at training and at inference alike keeps the network from using them.

    Args:
        keys: keys of the images (``(C, H, W)``).
        fraction: share of each side cut off each edge, in ``[0, 0.5)``; 0 leaves the image as it is.
    """

    def __init__(self, keys: KeysCollection, fraction: float, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0.0 <= float(fraction) < 0.5:
            raise ValueError(f"crop_margin must be in [0, 0.5), got {fraction}")
        self.fraction = float(fraction)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            rows, cols = image.shape[-2:]
            r, c = int(round(rows * self.fraction)), int(round(cols * self.fraction))
            d[key] = image[..., r : rows - r, c : cols - c]
        return d


def xray_preprocessing(
    keys: str | Sequence[str] = "image",
    spatial_size: Sequence[int] = (160, 160),
    equalize: bool = False,
    accepts: Mapping[str, Any] | None = None,
    crop_margin: float = 0.0,
) -> list[Transform]:
    """Keep each path under ``<key>_path``, load (PNG/JPEG/DICOM), check, optionally cut the margins
    (``CropMargind``), scale each image to ``[0, 1]``, resize.

    Args:
        keys: keys of the image paths.
        spatial_size: output ``(rows, columns)``; area interpolation, so downsizing does not alias.
        equalize: histogram-equalize each image (MONAI's ``HistogramNormalized``, 256 bins) before scaling.
        accepts: what the bundle accepts (its ``medkit.accepts``): an image outside it fails by name
            (``CheckInputd``); ``None``: no check.
        crop_margin: share of the rows and of the columns cut off each edge before the resize (``CropMargind``).

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
        *([CropMargind(keys, crop_margin)] if crop_margin else []),
        *([HistogramNormalized(keys, num_bins=256, min=0.0, max=1.0)] if equalize else []),
        ScaleIntensityd(keys, minv=0.0, maxv=1.0),
        Resized(keys, spatial_size=[int(s) for s in spatial_size], mode="area"),
        EnsureTyped(keys, dtype="float32", track_meta=False),
    ]


def xray_augmentation(
    keys: str | Sequence[str] = "image",
    prob: float = 0.5,
    rotate: float = 0.17,
    scale: float | Sequence[float] = 0.1,
    translate: float = 8,
    gamma: Sequence[float] = (0.8, 1.25),
    intensity: float = 0.1,
    intensity_prob: float | None = None,
    erase_prob: float = 0.0,
    erase_size: Sequence[int] = (16, 48),
    erase_holes: int = 1,
) -> list[Transform]:
    """Augmentations suited to frontal radiographs: small rotation, zoom and shift, contrast and exposure, and
    optionally random erasing.

    No flips: laterality (heart on the left) is part of the anatomy. The defaults are the recipe the bundles shipped
    with.

    Args:
        keys: keys of the images.
        prob: probability of the geometric augmentation.
        rotate: largest rotation, radians.
        scale: largest relative zoom; MONAI's ``scale_range``: one value scales the first axis only, one value per
            axis scales each axis by its own draw.
        translate: largest shift, pixels, along each axis.
        gamma: range of the contrast gamma.
        intensity: largest relative change of exposure (intensity scale).
        intensity_prob: probability of each intensity change; ``None``: ``prob / 2``.
        erase_prob: probability of random erasing (``RandCoarseDropoutd``): ``erase_holes`` rectangles of zeros
            anywhere in the image; 0 leaves it out. Covers burnt-in markers and borders at random so the network
            cannot rely on them.
        erase_size: smallest and largest side of an erased rectangle, pixels (each side drawn on its own).
        erase_holes: rectangles per erased image.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    p_intensity = prob / 2 if intensity_prob is None else float(intensity_prob)
    chain: list[Transform] = [
        RandAffined(
            keys,
            prob=prob,
            rotate_range=float(rotate),
            scale_range=float(scale) if isinstance(scale, (int, float)) else [float(s) for s in scale],
            translate_range=(float(translate), float(translate)),
            padding_mode="zeros",
            mode="bilinear",
        ),
        RandAdjustContrastd(keys, prob=p_intensity, gamma=(float(gamma[0]), float(gamma[1]))),
        RandScaleIntensityd(keys, factors=float(intensity), prob=p_intensity),
    ]
    if erase_prob > 0:
        chain.append(
            RandCoarseDropoutd(
                keys,
                holes=int(erase_holes),
                spatial_size=int(erase_size[0]),
                max_spatial_size=int(erase_size[1]),
                fill_value=0.0,
                prob=float(erase_prob),
            )
        )
    return chain
