"""Post-processing of binary segmentation logits shared by training, evaluation and inference."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    CastToTyped,
    Compose,
    EnsureTyped,
    FillHolesd,
    MapTransform,
    SqueezeDimd,
    Transposed,
)

__all__ = [
    "FlagNonFinited",
    "NONFINITE_KEY",
    "RemoveSmallIslandsd",
    "segmentation_postprocessing",
    "largest_component",
    "classifier_weights",
    "HOLE_CONNECTIVITY",
]

# ``FillHoles`` connectivity of ``fill_holes``: background that no 4-connected path joins to the border is a hole
# (as ``scipy.ndimage.binary_fill_holes`` decides)
HOLE_CONNECTIVITY = 1
#: output key of ``segmentation_postprocessing``: whether the logits held NaN or Inf (thresholding would make them 0)
NONFINITE_KEY = "pred_nonfinite"


class FlagNonFinited(MapTransform):
    """Set ``flag_key`` to whether any value under ``keys`` is NaN or Inf, before thresholding hides it (a NaN
    logit binarises to background, which would read as "no tumour")."""

    def __init__(self, keys: KeysCollection, flag_key: str = NONFINITE_KEY, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.flag_key = flag_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        d[self.flag_key] = any(not bool(torch.isfinite(torch.as_tensor(d[k])).all()) for k in self.key_iterator(d))
        return d


def _islands(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``scipy.ndimage.label`` with full connectivity (8 in 2D, 26 in 3D): the islands' labels and their number."""
    from scipy import ndimage

    return ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))


class RemoveSmallIslandsd(MapTransform):
    """Clear the foreground islands of fewer than ``min_size`` pixels (voxels) in each channel of binary masks.

    Islands are 8-connected in 2D (26-connected in 3D). Written on ``scipy.ndimage.label`` rather than MONAI's
    ``RemoveSmallObjectsd``, whose scikit-image call changed meaning in scikit-image 0.26 (``min_size`` there now
    also removes islands of exactly that size).

    Args:
        keys: keys of channel-first 0/1 masks.
        min_size: smallest island kept, in pixels.
    """

    def __init__(self, keys: KeysCollection, min_size: int) -> None:
        super().__init__(keys)
        if int(min_size) < 0:
            raise ValueError(f"min_size must be >= 0 pixels, got {min_size}")
        self.min_size = int(min_size)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            mask = d[key]
            array = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask) > 0
            keep = np.zeros_like(array)
            for c in range(array.shape[0]):
                islands, n = _islands(array[c])
                if n:
                    sizes = np.bincount(islands.ravel())
                    big = sizes >= self.min_size
                    big[0] = False
                    keep[c] = big[islands]
            kept = torch.as_tensor(keep, device=mask.device) if isinstance(mask, torch.Tensor) else keep
            d[key] = mask * kept
        return d


def largest_component(mask: np.ndarray, slice_weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """The largest foreground component of a boolean mask (8-connected in 2D, 26-connected in 3D).

    On a patient's slice masks stacked in slice order it keeps the one lesion a lower-grade glioma is and drops
    the islands elsewhere in the volume (false positives along bright cortex). Equal sizes keep the first in
    scan order; an empty mask stays empty.

    Args:
        mask: the masks, slices along the first axis.
        slice_weights: one weight per slice (first axis), e.g. the classifier's tumour probability of each slice
            in the two-stage pipeline: a component's size then counts each of its pixels by its slice's weight,
            so a bright false positive in slices the classifier doubts loses to the lesion it is sure of.
            ``None``: pixels count alike.
    """
    mask = np.asarray(mask).astype(bool)
    weights = None
    if slice_weights is not None:
        weights = np.asarray(slice_weights, dtype=np.float64).ravel()
        if weights.shape != mask.shape[:1] or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"slice_weights must be {mask.shape[0]} finite values >= 0, got {slice_weights!r}")
    labels, n = _islands(mask)
    if n <= 1:
        return mask
    if weights is None:
        sizes = np.bincount(labels.ravel())
    else:
        sizes = np.bincount(
            labels.ravel(), weights=np.broadcast_to(weights.reshape(-1, *[1] * (mask.ndim - 1)), mask.shape).ravel()
        )
    return labels == int(np.argmax(sizes[1:])) + 1


def classifier_weights(probabilities: Sequence[float | None]) -> np.ndarray | None:
    """``largest_component``'s ``slice_weights`` from the classifier's tumour probability of each slice of a case
    (two-stage pipeline); ``None`` (pixels count alike) unless every slice has one."""
    if not len(probabilities) or any(p is None for p in probabilities):
        return None
    return np.asarray(probabilities, dtype=np.float64)


def segmentation_postprocessing(
    threshold: float = 0.5, for_writers: bool = False, min_size: int = 0, fill_holes: bool = False
) -> Compose:
    """Sigmoid the one-channel logits in ``pred`` and binarise them at ``threshold`` (``pred`` becomes 0/1);
    ``NONFINITE_KEY`` says whether the logits held NaN or Inf (``FlagNonFinited``).

    Args:
        threshold: probability above which a pixel is foreground.
        min_size: remove foreground islands of fewer pixels than this (8-connected, per slice; 0 keeps all).
        fill_holes: fill background enclosed by foreground in each slice (``FillHolesd``; a hole is background
            that no 4-connected path joins to the border, as ``scipy.ndimage.binary_fill_holes`` decides).
        for_writers: also shape ``pred`` the way MONAI's image writers (and MONAI Label's) expect a 2D label:
            no channel axis, MONAI's ``(x, y)`` axis order (medkit reads slices as ``(rows, columns)``), uint8.
            ``medkit.handlers.SegmentationWriter(pred_layout="xy")`` reads it back.
    """
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    transforms = [
        EnsureTyped(keys="pred", track_meta=False),
        FlagNonFinited(keys="pred"),
        Activationsd(keys="pred", sigmoid=True),
        AsDiscreted(keys="pred", threshold=float(threshold)),
    ]
    if int(min_size):  # RemoveSmallIslandsd rejects a negative size
        transforms.append(RemoveSmallIslandsd(keys="pred", min_size=int(min_size)))
    if fill_holes:
        transforms.append(FillHolesd(keys="pred", connectivity=HOLE_CONNECTIVITY))
    if for_writers:
        transforms += [
            SqueezeDimd(keys="pred", dim=0),
            Transposed(keys="pred", indices=(1, 0)),
            CastToTyped(keys="pred", dtype=np.uint8),
        ]
    return Compose(transforms)
