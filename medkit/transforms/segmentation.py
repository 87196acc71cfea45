"""Post-processing of binary segmentation logits shared by training, evaluation and inference."""

from __future__ import annotations

import numpy as np
from monai.transforms import Activationsd, AsDiscreted, CastToTyped, Compose, EnsureTyped, SqueezeDimd, Transposed

__all__ = ["segmentation_postprocessing"]


def segmentation_postprocessing(threshold: float = 0.5, for_writers: bool = False) -> Compose:
    """Sigmoid the one-channel logits in ``pred`` and binarise them at ``threshold`` (``pred`` becomes 0/1).

    Args:
        threshold: probability above which a pixel is foreground.
        for_writers: also shape ``pred`` the way MONAI's image writers (and MONAI Label's) expect a 2D label:
            no channel axis, MONAI's ``(x, y)`` axis order (medkit reads slices as ``(rows, columns)``), uint8.
            ``medkit.handlers.SegmentationWriter(pred_layout="xy")`` reads it back.
    """
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    transforms = [
        EnsureTyped(keys="pred", track_meta=False),
        Activationsd(keys="pred", sigmoid=True),
        AsDiscreted(keys="pred", threshold=float(threshold)),
    ]
    if for_writers:
        transforms += [
            SqueezeDimd(keys="pred", dim=0),
            Transposed(keys="pred", indices=(1, 0)),
            CastToTyped(keys="pred", dtype=np.uint8),
        ]
    return Compose(transforms)
